"""The hub's ASGI application: Starlette routes from :data:`sensor.hub.api.ENDPOINTS`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sensor.hub.api import ENDPOINTS, ApiError, Endpoint, authorize, error_response
from sensor.hub.core import Hub
from sensor.hub.settings import HubSettings
from sensor.hub.store import Store, StoreError

__all__ = ["create_app"]

_log = logging.getLogger("sensor.hub")


def _route(endpoint: Endpoint) -> Route:
    # imported here: `python -m sensor.hub.openapi` must not find itself imported already
    from sensor.hub.openapi import query_parameters

    has_body = endpoint.method in ("POST", "PUT")
    allowed = query_parameters(endpoint.operation_id)

    async def handle(request: Request) -> Response:
        try:
            token = await authorize(request, endpoint.scope) if endpoint.scope else None
            _check_query(request, allowed)
            if has_body and _is_large(request):
                async with request.app.state.hub.large_bodies():
                    return await endpoint.handler(request, token)
            return await endpoint.handler(request, token)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except StoreError as exc:
            _log.error("store error on %s %s: %s", request.method, request.url.path, exc)
            return error_response(503, "store_error", str(exc))

    return Route(endpoint.path, handle, methods=[endpoint.method], name=endpoint.operation_id)


def _check_query(request: Request, allowed: dict[str, bool]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:  # a misspelt filter must not silently list everything
        raise ApiError(
            400,
            "invalid_query",
            f"query parameter(s) {unknown!r}: unknown, expected only {sorted(allowed)!r}",
        )
    for name, repeatable in allowed.items():
        values = request.query_params.getlist(name)
        if len(values) > 1 and not repeatable:
            raise ApiError(
                400,
                "invalid_query",
                f"query parameter {name!r}: given {len(values)} times, expected once",
            )


def _is_large(request: Request) -> bool:
    """A body over the hub's ``large_body``, or of unknown length (chunked)."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return request.headers.get("transfer-encoding") is not None
    large: int = request.app.state.hub.settings.large_body
    return int(declared) >= large


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "not_found", f"{request.url.path!r}: no such endpoint")
    if exc.status_code == 405:
        return error_response(
            405, "method_not_allowed", f"{request.method} {request.url.path}: method not allowed"
        )
    return error_response(exc.status_code, "http_error", str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    _log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", f"the hub failed: {type(exc).__name__}")


def create_app(
    settings: HubSettings | None = None, *, store: Store | None = None, hub: Hub | None = None
) -> Starlette:
    """Build the hub's app (the store is opened now, so a bad database fails before serving).

    The app's ``state.hub`` is the :class:`~sensor.hub.core.Hub`; its lifespan runs the sweeper
    that expires probes and applies retention.
    """
    if hub is None:
        hub = Hub(settings or HubSettings.from_env(), store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.start_watching()
        tasks = [
            asyncio.create_task(hub.sweeper(), name="sensor-hub-sweeper"),
            asyncio.create_task(hub.toucher(), name="sensor-hub-toucher"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await hub.flush_touches()

    handlers: dict[int | type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: _http_error,
        Exception: _server_error,
    }
    app = Starlette(
        routes=[_route(endpoint) for endpoint in ENDPOINTS],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.hub = hub
    return app
