"""Starlette (or FastAPI) under uvicorn: ``uvicorn asgi_app:app``.

uvicorn re-raises SIGTERM once the lifespan shutdown has run, so ``atexit``
never runs: the lifespan is where queued events get sent. ``flush()`` blocks,
so it runs on the default executor's thread while the event loop goes on with
the rest of the shutdown. For FastAPI, pass the same function:
``FastAPI(lifespan=lifespan)``.
"""

import asyncio
import contextlib
import os

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from trace_telemetry import TelemetryClient, TelemetryOptions

telemetry = TelemetryClient(
    TelemetryOptions(
        endpoint_url=os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
        queue_path=os.environ.get("TELEMETRY_QUEUE", "/var/lib/myapp/telemetry-queue.ndjson"),
        application_name="asgi-shop",
    )
)


def _send_and_stop():
    telemetry.flush(timeout=5)  # what is not sent in 5 s stays queued for the next run
    telemetry.close()


@contextlib.asynccontextmanager
async def lifespan(app):
    telemetry.start()
    yield
    await asyncio.get_running_loop().run_in_executor(None, _send_and_stop)


async def buy(request):
    telemetry.track("purchase", "sku", request.path_params["sku"])  # appends, never waits
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/buy/{sku}", buy)], lifespan=lifespan)
