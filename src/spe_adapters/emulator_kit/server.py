"""A threaded werkzeug server on 127.0.0.1, plain HTTP or TLS from a test CA."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, make_server

from spe_adapters.emulator_kit.app import KitApp
from spe_adapters.emulator_kit.log import RequestLog
from spe_adapters.emulator_kit.tls import CertificateAuthority

__all__ = ["KitServer"]


class KitServer:
    """A running emulator: ``url``, ``port``, ``requests``, ``ca_path`` (TLS only).

    ``tls``: False for plain HTTP; True for HTTPS with a temporary CA; or a
    :class:`CertificateAuthority` (one kept in a folder, say). ``port`` 0 takes
    any free port. ``start()`` serves in a daemon thread; ``stop()`` (or the
    ``with`` block's end) stops serving and removes a temporary CA.
    """

    def __init__(
        self,
        app: KitApp,
        *,
        port: int = 0,
        tls: bool | CertificateAuthority = False,
        name: str = "spe-emulator",
    ) -> None:
        self.app = app
        self._port = port
        self._name = name
        self.ca: CertificateAuthority | None = None
        if isinstance(tls, CertificateAuthority):
            self.ca = tls
        elif tls:
            self.ca = CertificateAuthority()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> RequestLog:
        """Every request served (``counts()``, ``entries``, ``reset_counts()``)."""
        return self.app.log

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS."""
        return self.ca is not None

    @property
    def ca_path(self) -> str:
        """The PEM file of the CA that signed the server's certificate (TLS only)."""
        if self.ca is None:
            raise RuntimeError("this emulator serves plain HTTP: it has no CA file.")
        return self.ca.ca_path

    @property
    def port(self) -> int:
        """The port served."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first.")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget every record, credential and fault, and the request log."""
        self.app.reset()

    def start(self) -> Self:
        """Start serving in a background thread (werkzeug's access log is silenced).

        Raises :class:`OSError` when the port is taken."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        context = self.ca.server_context() if self.ca is not None else None
        # Bind here, so a taken port raises OSError (werkzeug would print and exit).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self._port))
            listener.listen(128)
            self._server = make_server(
                "127.0.0.1",
                self._port,
                self.app,
                threaded=True,
                ssl_context=context,
                fd=listener.fileno(),
            )
        finally:
            listener.close()  # the server holds its own duplicate of the socket
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name=self._name
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (and remove a temporary CA)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.ca is not None:
            self.ca.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
