"""Example: HubSpot webhooks keep SPE in step within seconds, in a small WSGI app.

Subscribe your HubSpot app to deal (or contact) and task property changes and
point the target URL at ``https://YOUR-HOST/hubspot/webhook``. Each signed
request names the records that changed; the app verifies the signature (v3
when HubSpot sends its headers, else v2 or v1; the app's client secret from
``HUBSPOT_APP_SECRET``) over the URI exactly as HubSpot called it, ``+`` and
percent-escapes included (the handler reads the raw request line), reads those
records through the adapter (``HUBSPOT_ACCESS_TOKEN``) and applies them through
the sync engine at once. The nightly ``spe sync`` still runs: it delivers SPE's
own changes and catches anything a webhook missed. Run it with::

    python examples/hubspot_webhook/webhook_app.py --store sqlite:///spe.db --port 8000 \\
        --public-url https://spe.acme.example

Endpoints: ``POST /hubspot/webhook`` (HubSpot's), ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from werkzeug.serving import run_simple

from spe_adapters.hubspot.adapter import HubSpotAdapter
from spe_adapters.hubspot.settings import HubSpotSettings
from spe_adapters.hubspot.webhooks import WebhookHandler
from spe_core import Engine, open_store
from spe_core.sync import SyncEngine


class WebhookApp:
    """A WSGI app mounting the HubSpot webhook handler at ``/hubspot/webhook``."""

    def __init__(self, handler: WebhookHandler, path: str = "/hubspot/webhook") -> None:
        self.handler = handler
        self.path = path

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == self.path and environ.get("REQUEST_METHOD") == "POST":
            return self.handler(environ, start_response)
        status, body = ("200 OK", {"ok": True}) if path == "/healthz" else ("404 Not Found", {})
        content = json.dumps(body).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(content)))]
        )
        return [content]


def make_app(store: str, settings: HubSpotSettings, public_url: str | None = None) -> WebhookApp:
    """The app over one store and one HubSpot portal (secrets from the environment)."""
    adapter = HubSpotAdapter(settings)
    sync = SyncEngine(Engine(open_store(store)), adapter)
    return WebhookApp(WebhookHandler.for_sync(settings, sync, adapter, base_url=public_url))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", default="sqlite:///spe.db")
    parser.add_argument("--hubspot-host", default="https://api.hubapi.com")
    parser.add_argument("--public-url", help="the base URL HubSpot calls (behind a proxy)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    app = make_app(args.store, HubSpotSettings(host=args.hubspot_host), args.public_url)
    run_simple("127.0.0.1", args.port, app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
