"""The ASGI application (Starlette on uvicorn).

For now it serves the health check; the FPS endpoint, the hosted pages and metrics mount here
as they are built. ``/healthz`` answers 200 with the store's dialect and schema revision when
the database answers, 503 otherwise.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from penny import __version__
from penny.storage.database import Database, current_revision


def create_app(database: Database) -> Starlette:
    """Build the application over an open ``database``."""

    async def healthz(_request: Request) -> JSONResponse:
        try:
            revision = current_revision(database)
        except SQLAlchemyError:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "store": database.dialect,
                "schema": revision,
            }
        )

    return Starlette(routes=[Route("/healthz", healthz)])
