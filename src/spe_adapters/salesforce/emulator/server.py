"""The emulator's HTTPS server on 127.0.0.1, with its own test certificate authority.

simple-salesforce forces https; it accepts ``instance_url="https://127.0.0.1:PORT"``
and a ``session=`` whose ``verify`` is the CA file this server writes (and whose
``trust_env`` is False, or ``REQUESTS_CA_BUNDLE`` would silently win)::

    with EmulatorServer() as sf:
        login = sf.org.seed()
        ...  # sf.url, sf.ca_path, sf.org, sf.requests
"""

from __future__ import annotations

import argparse
import logging
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import trustme
from werkzeug.serving import BaseWSGIServer, make_server

from spe_adapters.salesforce.emulator.models import Org
from spe_adapters.salesforce.emulator.responses import EmulatorApp, RequestLog

__all__ = ["EmulatorServer", "main"]


class EmulatorServer:
    """A running emulator: ``url`` (https://127.0.0.1:PORT), ``ca_path``, ``org``, ``requests``."""

    def __init__(self, *, port: int = 0, clock: Callable[[], datetime] | None = None) -> None:
        self.org = Org(clock)
        self.app = EmulatorApp(self.org)
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="spe-sf-emulator-")
        self.ca_path = str(Path(self._tmp.name) / "emulator-ca.pem")

    @property
    def requests(self) -> RequestLog:
        """Every request served (``counts()``, ``reset_counts()``)."""
        return self.app.log

    @property
    def url(self) -> str:
        """The instance URL, e.g. ``https://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first.")
        return f"https://127.0.0.1:{self._server.server_port}"

    def start(self) -> EmulatorServer:
        """Start serving in a background thread (werkzeug's access log is silenced)."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = make_server(
            "127.0.0.1", self._port, self.app, threaded=True, ssl_context=context
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="spe-sf-emulator"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._tmp.cleanup()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with a seeded demo org until interrupted."""
    parser = argparse.ArgumentParser(prog="spe emulator salesforce")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    server = EmulatorServer(port=args.port).start()
    login = server.org.seed(args.seed)
    print(f"Salesforce emulator at {server.url}", flush=True)
    print(f"CA certificate: {server.ca_path}")
    print(
        f"login_url = {server.url!r}; username {login['username']}, password "
        f"{login['password']}, any client id"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
