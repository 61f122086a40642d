"""The ASGI application: SPE's engine behind a JSON API under ``/api/v1``.

Build it with :func:`create_app` from an engine (tests, embedding) or with
:func:`app_from_config` from a ``spe.toml`` (``spe serve``). Engine calls block
(they are store transactions), so every handler runs in Starlette's thread pool;
the engine is safe to share between threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spe_core.engine import Engine
from spe_core.errors import (
    ConfigError,
    InvalidValue,
    MappingError,
    NotFound,
    RuleViolation,
    SpeError,
    StoreError,
    TransientError,
)
from spe_serve import api
from spe_serve.board import board_routes
from spe_serve.pages import page_routes
from spe_serve.scheduler import Scheduler
from spe_serve.schema import Operation, check
from spe_serve.tokens import TokenInfo, TokenKind, Tokens
from spe_serve.webhooks import Verify

__all__ = ["ApiError", "Call", "app_from_config", "create_app", "error_status"]

log = logging.getLogger("spe_serve")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PREFIX = "/api/v1"


class ApiError(Exception):
    """An HTTP error with the same body as an SPE error: ``error``, ``fix``, ``code``."""

    def __init__(self, status: int, code: str, error: str, fix: str | None) -> None:
        self.status, self.code, self.error, self.fix = status, code, error, fix
        super().__init__(error)


@attrs.frozen
class Call:
    """What a handler gets: the engine, the caller and the checked inputs."""

    engine: Engine
    tokens: Tokens
    principal: TokenInfo | None
    path: Mapping[str, str]
    query: Mapping[str, Any]
    body: Mapping[str, Any]


def _store_down(exc: BaseException) -> bool:
    """Whether ``exc`` says the store cannot be reached (not that a request was bad)."""
    if isinstance(exc, StoreError | TransientError | sqlite3.OperationalError):
        return True
    kind = type(exc)
    return kind.__module__.split(".")[0] in ("psycopg", "psycopg_pool") and any(
        part in kind.__name__ for part in ("Operational", "Interface", "Pool", "Connection")
    )


def error_status(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and ``code`` an exception maps to."""
    if _store_down(exc):
        return 503, "StoreUnavailable"
    if isinstance(exc, NotFound):
        return 404, type(exc).__name__
    if isinstance(exc, RuleViolation):
        return 409, type(exc).__name__
    if isinstance(exc, InvalidValue | ConfigError | MappingError):
        return 422, type(exc).__name__
    if isinstance(exc, SpeError):
        return 400, type(exc).__name__
    return 500, "Internal"


def _error(status: int, code: str, error: str, fix: str | None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "fix": fix, "code": code}, status, headers=headers)


def _from_exception(exc: BaseException, operation: str) -> JSONResponse:
    if isinstance(exc, ApiError):
        return _error(exc.status, exc.code, exc.error, exc.fix)
    status, code = error_status(exc)
    if status == 503:
        # the driver's text may name hosts or users: log the kind only, answer generically
        log.warning("%s: store unavailable (%s)", operation, type(exc).__name__)
        return _error(
            503,
            code,
            "the store is unavailable.",
            "try again shortly; if it lasts, check the database server.",
        )
    if status == 500:
        log.error("%s: unexpected %s", operation, type(exc).__name__, exc_info=exc)
        return _error(500, code, "unexpected server error.", "report it with the time of the call.")
    assert isinstance(exc, SpeError)
    log.info("%s: %s %s", operation, status, code)
    return _error(status, code, exc.problem, exc.fix)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _query(op: Operation, request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in op.params:
        if p.where == "query" and p.header and p.name not in request.query_params:
            if p.header in request.headers:
                out[p.name] = check(request.headers[p.header], p.schema, p.header)
            continue
        if p.where != "query" or p.name not in request.query_params:
            continue
        raw = request.query_params[p.name]
        value: Any = raw
        if p.schema.get("type") == "integer":
            try:
                value = int(raw)
            except ValueError:
                raise InvalidValue(
                    f"query parameter {p.name} must be an integer, got {raw[:40]!r}.",
                    "send a whole number.",
                ) from None
        out[p.name] = check(value, p.schema, p.name)
    return out


def _body(op: Operation, raw: bytes) -> dict[str, Any]:
    if op.body is None:
        return {}
    if not raw.strip():
        if op.body_required:
            raise ApiError(400, "BadRequest", "the request has no JSON body.", "send one.")
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            400, "BadRequest", "the request body is not valid JSON.", "send a JSON object."
        ) from None
    checked: dict[str, Any] = check(data, {"$ref": f"#/components/schemas/{op.body}"}, "body")
    return checked


HUBSPOT = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP = "X-HubSpot-Request-Timestamp"


THREADS = 40
"""Threads for the API's blocking calls (engine calls are store transactions): as many
as Starlette's own thread pool has."""


class _Blocking:
    """Runs the API's blocking calls in a thread pool of its own, one hop per call.

    ``loop.run_in_executor`` costs a fraction of ``run_in_threadpool`` (AnyIO's
    cancel scope, capacity limiter and worker hand-off); a call the client stops
    waiting for still runs to its end, as with ``run_in_threadpool``. Off asyncio (a
    Trio test), it falls back to ``run_in_threadpool``."""

    def __init__(self, threads: int = THREADS) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="spe-serve")

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return await run_in_threadpool(func, *args)
        call = functools.partial(contextvars.copy_context().run, func, *args)
        return await loop.run_in_executor(self._pool, call)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


async def _hubspot_principal(request: Request, verify: Verify) -> TokenInfo:
    body = await request.body()  # kept by Starlette: the handler reads it again
    problem = await run_in_threadpool(
        verify, request.method, str(request.url), dict(request.headers), body
    )
    if problem is not None:
        log.warning("refused a HubSpot-signed call: %s", problem)
        raise ApiError(
            401,
            "Unauthorized",
            f"the HubSpot signature was refused: {problem}.",
            "check the app secret (app_secret_env), the public URL (--public-url) and "
            "the server's clock.",
        )
    return TokenInfo("hubspot-app", TokenKind.INTEGRATION, None, "HubSpot app", _EPOCH)


def _no_token() -> ApiError:
    return ApiError(
        401,
        "Unauthorized",
        "this operation needs a bearer token.",
        "send 'Authorization: Bearer <token>' with a token from `spe token create`.",
    )


def _bad_token() -> ApiError:
    return ApiError(
        401,
        "Unauthorized",
        "the bearer token is unknown, malformed or revoked.",
        "create a new token with `spe token create`.",
    )


def _endpoint(
    op: Operation,
    engine: Engine,
    tokens: Tokens,
    blocking: _Blocking,
    hubspot: Verify | None = None,
) -> Callable[[Request], Any]:
    def serve(
        presented: str | None,
        principal: TokenInfo | None,
        path: dict[str, str],
        request: Request,
        raw: bytes,
    ) -> Any:
        # in the worker thread. The inputs are read and checked first, outside the store
        # transaction (it serialises writers: keep it short), but a bad token still
        # answers 401 before a bad input answers 400 or 422
        query: dict[str, Any] = {}
        body: dict[str, Any] = {}
        problem: Exception | None = None
        try:
            query, body = _query(op, request), _body(op, raw)
        except Exception as exc:
            problem = exc
        # the token's read joins the handler's unit of work when the operation allows it
        # (op.one_unit): then a call is one store transaction
        with engine.unit() if op.one_unit else nullcontext():
            if presented is not None:
                principal = tokens.verify(presented)
                if principal is None:
                    raise _bad_token()
            if problem is not None:
                raise problem
            return op.handler(Call(engine, tokens, principal, path, query, body))

    async def endpoint(request: Request) -> Response:
        try:
            presented = principal = None
            if op.authenticated:
                presented = _bearer(request)
                if presented is None:
                    if (
                        hubspot is None
                        or HUBSPOT not in request.headers
                        or HUBSPOT_TIMESTAMP not in request.headers  # else verify() tries v1/v2
                    ):
                        raise _no_token()
                    principal = await _hubspot_principal(request, hubspot)
            raw = b"" if op.body is None else await request.body()
            # one hop to the thread pool per call (engine calls block)
            result = await blocking.run(
                serve, presented, principal, dict(request.path_params), request, raw
            )
        except Exception as exc:
            return _from_exception(exc, op.operation_id)
        return JSONResponse(result)

    endpoint.__name__ = op.operation_id
    return endpoint


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _error(405, "MethodNotAllowed", "this path does not take that method.", None)
    return _error(
        exc.status_code,
        "NoSuchPath",
        f"no operation at {request.url.path[:200]}.",
        "see /openapi.json for the operations.",
    )


def create_app(
    engine: Engine,
    *,
    close_engine: bool = False,
    scheduler: Scheduler | None = None,
    adapter: str | None = None,
    token_cache_seconds: float = 0.0,
    extra_routes: Sequence[Route] = (),
    on_close: Sequence[Callable[[], object]] = (),
    hubspot_verify: Verify | None = None,
) -> Starlette:
    """The API over ``engine`` (closed on shutdown when ``close_engine``); ``scheduler``
    (:mod:`spe_serve.scheduler`) runs beside it from start-up to shutdown; ``adapter``
    names the CRM adapter whose sync the manager's page shows; ``token_cache_seconds``
    lets a valid token be trusted that long without reading the store (a token revoked
    elsewhere then works up to that long; see :class:`~spe_serve.tokens.Tokens`);
    ``extra_routes`` (webhook receivers) are mounted beside the API, and ``on_close``
    runs at shutdown, before the engine closes. With ``hubspot_verify``
    (:mod:`spe_serve.webhooks`), a call without a bearer token but signed by the HubSpot
    app (``X-HubSpot-Signature-v3``, under five minutes old) acts as an integration."""
    tokens = Tokens(engine, cache_seconds=token_cache_seconds)
    operations = api.operations()
    document = api.document()
    blocking = _Blocking()
    routes = [
        Route(op.path, _endpoint(op, engine, tokens, blocking, hubspot_verify), methods=[op.method])
        for op in operations
    ]

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    routes.append(Route("/openapi.json", openapi_json, methods=["GET"]))
    routes.extend(page_routes(engine, tokens, adapter))
    routes.extend(board_routes(engine, tokens))
    routes.extend(extra_routes)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                await run_in_threadpool(scheduler.stop)  # a job running finishes first
            await run_in_threadpool(blocking.close)
            for close in on_close:
                close()
            if close_engine:
                engine.close()

    app = Starlette(
        routes=routes,
        exception_handlers={404: _not_found, 405: _not_found},
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.openapi = document
    return app


def app_from_config(
    path: str | Path = "spe.toml", store_url: str | None = None, public_url: str | None = None
) -> Starlette:
    """The API for ``spe.toml`` at ``path`` (its defaults if ``spe.toml`` is absent), on
    ``store_url`` if given, else the store the file names; with the HubSpot webhook
    receiver when the file names a HubSpot app (``public_url``: the address HubSpot
    calls, behind a proxy; default: the file's ``[serve] public_url``). No scheduled
    jobs (``spe serve`` adds them)."""
    from spe_serve.hubspot_app import hubspot_app_routes
    from spe_serve.setup import engine_from_config, load_config
    from spe_serve.webhooks import hubspot_webhook

    cfg = load_config(Path(path))
    engine = engine_from_config(cfg, store_url)
    hook = hubspot_webhook(engine, cfg, public_url=public_url or cfg.serve.public_url)
    return create_app(
        engine,
        close_engine=True,
        adapter=cfg.adapter or None,
        extra_routes=[hook.route, *hubspot_app_routes(engine, hook.verify)] if hook else [],
        on_close=[hook.adapter.close] if hook else [],
        hubspot_verify=hook.verify if hook else None,
    )
