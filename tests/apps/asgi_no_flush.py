"""The ASGI example without its shutdown send: what SIGTERM does to queued events."""

import contextlib

from asgi_app import app as recipe
from asgi_app import telemetry
from starlette.applications import Starlette


@contextlib.asynccontextmanager
async def lifespan(app):
    telemetry.start()
    yield


app = Starlette(routes=recipe.routes, lifespan=lifespan)
