"""The emulator's HTTP server on 127.0.0.1 (plain HTTP: hubspot-api-client takes any ``host``)::

with EmulatorServer() as hs:
    token = hs.portal.seed()["access_token"]
    client = HubSpot(access_token=token, host=hs.url)
    ...  # hs.url, hs.portal, hs.requests
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from spe_adapters.hubspot.emulator.models import Portal
from spe_adapters.hubspot.emulator.responses import EmulatorApp, RequestLog

__all__ = ["EmulatorServer", "main"]


class EmulatorServer:
    """A running emulator: ``url`` (http://127.0.0.1:PORT), ``portal``, ``requests``."""

    def __init__(self, *, port: int = 0, clock: Callable[[], datetime] | None = None) -> None:
        self.portal = Portal(clock)
        self.app = EmulatorApp(self.portal)
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> RequestLog:
        """Every request served (``counts()``, ``reset_counts()``)."""
        return self.app.log

    @property
    def url(self) -> str:
        """The API host, e.g. ``http://127.0.0.1:54321`` (pass it as ``host=``)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first.")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> EmulatorServer:
        """Start serving in a background thread (werkzeug's access log is silenced)."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server("127.0.0.1", self._port, self.app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="spe-hubspot-emulator"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with a seeded demo portal until interrupted."""
    parser = argparse.ArgumentParser(prog="spe emulator hubspot")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    server = EmulatorServer(port=args.port).start()
    demo = server.portal.seed(args.seed)
    print(f"HubSpot emulator at {server.url}", flush=True)
    print(f'host = "{server.url}"; export HUBSPOT_ACCESS_TOKEN={demo["access_token"]}', flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
