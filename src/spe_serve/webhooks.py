"""Webhook receivers mounted in the ``spe serve`` application.

``POST /webhooks/hubspot`` takes HubSpot's webhook deliveries for the app named in
``spe.toml``: :class:`spe_adapters.hubspot.webhooks.WebhookHandler` checks the v3
signature (HMAC-SHA256 with the app's client secret, from the environment variable
``app_secret_env`` names; timestamps five minutes old refused) and syncs the records
the events name at once, through the same sync rules as ``spe sync``. A request
that is not HubSpot's gets 401 and changes nothing.

The same check lets HubSpot call the API itself without a bearer token (any request
it signs with v3): :func:`spe_serve.app.create_app` takes ``verify`` and treats such a
call like an integration token's. Workflow custom actions, which HubSpot signs with the
older v2 signature, and app cards have routes of their own
(:mod:`spe_serve.hubspot_app`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spe_core.engine import Engine
from spe_core.errors import ConfigError
from spe_serve.scheduler import adapter_class, sync_settings

__all__ = ["HubSpotApp", "Verify", "hubspot_webhook"]

log = logging.getLogger("spe_serve.webhooks")


Verify = Callable[[str, str, Mapping[str, str], bytes], "str | None"]
"""``verify(method, url, headers, body)``: None when HubSpot signed the request (v3,
fresh), else the reason it is refused."""


@attrs.frozen
class HubSpotApp:
    """What the HubSpot app of ``spe.toml`` adds to the service."""

    route: Route
    """``POST /webhooks/hubspot``."""
    adapter: Any
    """The adapter the receiver reads through (close it on shutdown)."""
    verify: Verify
    """Checks HubSpot's v3 signature of any request (for HubSpot-originated API calls)."""


def hubspot_webhook(
    engine: Engine, cfg: Any, *, public_url: str | None = None
) -> HubSpotApp | None:
    """The HubSpot webhook route, its adapter and the signature check, or None (with a
    warning in the log) when ``spe.toml`` names no HubSpot app or its client secret is not
    set. ``public_url``: the address HubSpot calls, when a proxy in front changes it (the
    signature covers the full URL)."""
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

    base = public_url.rstrip("/") if public_url else None

    def verify(method: str, url: str, headers: Mapping[str, str], body: bytes) -> str | None:
        if base is not None:  # behind a proxy: the address HubSpot called
            rest = url.split("://", 1)[-1]
            url = base + (rest[rest.find("/") :] if "/" in rest else "/")
        return handler.verify(method, url, headers, body)

    return HubSpotApp(Route("/webhooks/hubspot", receive, methods=["POST"]), adapter, verify)
