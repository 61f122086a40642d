"""The emulators' test certificate authority (trustme), kept in a folder or a temporary one.

A CA kept in a folder (``ca.pem`` and its key ``ca-key.pem``, readable by the
owner only) is loaded again on the next start, so a client told to trust
``ca.pem`` keeps trusting the emulator; a server certificate for 127.0.0.1 and
localhost is issued from it on every start. Without a folder the CA lives in
a temporary one, removed by :meth:`CertificateAuthority.close`.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["CertificateAuthority"]

CA_FILE = "ca.pem"
KEY_FILE = "ca-key.pem"


class CertificateAuthority:
    """A test CA: ``ca_path`` is the PEM file clients trust (``verify=``, ``ca_bundle``)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        import trustme  # only the TLS emulators need it

        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="spe-emulator-ca-")
            directory = self._tmp.name
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key = self.directory / CA_FILE, self.directory / KEY_FILE
        if cert.exists() and key.exists():
            self._ca: Any = trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
        else:
            self._ca = trustme.CA(organization_name="spe-sdk emulator")
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._ca.private_key_pem.bytes())
            self._ca.cert_pem.write_to_path(str(cert))

    @property
    def ca_path(self) -> str:
        """The CA certificate's PEM file."""
        return str(self.directory / CA_FILE)

    def server_context(self, *hosts: str) -> ssl.SSLContext:
        """A server TLS context with a fresh certificate for ``hosts`` (default 127.0.0.1 and
        localhost), issued by this CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert(*(hosts or ("127.0.0.1", "localhost"))).configure_cert(context)
        return context

    def close(self) -> None:
        """Remove a temporary CA's folder (a kept CA stays)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
