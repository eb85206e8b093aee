"""A plain WSGI application, served by gunicorn or uWSGI in the deployment recipes.

It configures no logging itself: the server's configuration does that.
"""

import logging

logger = logging.getLogger("myapp")


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/disk":
        logger.warning("disk %d%% full", 91)
    elif path == "/pay":
        logger.error("payment %s declined", "inv-7")
    elif path == "/broken":
        raise RuntimeError("out of stock")  # the server logs it with exc_info
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
