"""Webhook receivers mounted in the ``spe serve`` application.

``POST /webhooks/hubspot`` takes HubSpot's webhook deliveries for the app named in
``spe.toml``: :class:`spe_adapters.hubspot.webhooks.WebhookHandler` checks the v3
signature (HMAC-SHA256 with the app's client secret, from the environment variable
``app_secret_env`` names; timestamps five minutes old refused) and syncs the records
the events name at once, through the same sync rules as ``spe sync``. A request
that is not HubSpot's gets 401 and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spe_core.engine import Engine
from spe_core.errors import ConfigError
from spe_serve.scheduler import adapter_class, sync_settings

__all__ = ["hubspot_webhook"]

log = logging.getLogger("spe_serve.webhooks")


def hubspot_webhook(
    engine: Engine, cfg: Any, *, public_url: str | None = None
) -> tuple[Route, Any] | None:
    """The HubSpot webhook route and the adapter it uses (close it on shutdown), or None
    (with a warning in the log) when ``spe.toml`` names no HubSpot app or its client
    secret is not set. ``public_url``: the address HubSpot calls, when a proxy in front
    changes it (the signature covers the full URL)."""
    if cfg.adapter != "hubspot":
        return None
    from spe_adapters.hubspot.webhooks import WebhookHandler
    from spe_core.sync import SyncEngine

    adapter = adapter_class(cfg).from_config(cfg.adapter_options)
    try:
        handler = WebhookHandler.for_sync(
            adapter.settings,
            SyncEngine(engine, adapter, sync_settings(cfg)),
            adapter,
            clock=engine.clock.now,
            base_url=public_url,
        )
    except ConfigError as exc:
        adapter.close()
        log.warning("HubSpot webhooks are off: %s", exc.problem)
        return None

    async def receive(request: Request) -> Response:
        body = await request.body()
        reply = await run_in_threadpool(
            handler.handle, request.method, str(request.url), dict(request.headers), body
        )
        return Response(reply.content, reply.status, media_type="application/json")

    return Route("/webhooks/hubspot", receive, methods=["POST"]), adapter
