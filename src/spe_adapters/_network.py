"""Transport failures (no HTTP answer at all) as SPE's errors, for every adapter.

Both client libraries sit on urllib3 (simple-salesforce through requests,
hubspot-api-client directly), so one walk down the exception chain tells what
happened: the host name did not resolve, the connection was refused or timed
out, or the certificate could not be verified. The first two are
:class:`~spe_core.errors.CrmUnreachable` (transient for a long sync, a reason
to stop at once for an interactive command); a certificate problem never cures
itself and is a :class:`~spe_core.errors.CertificateProblem`. Anything else
without an HTTP answer (a reset mid-reply, a read timeout) is a plain
:class:`~spe_core.errors.TransientError`.

Messages name the CRM and the host, never a URL's query or credentials.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from spe_core.errors import CertificateProblem, CrmUnreachable, TransientError

__all__ = ["transport_error"]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (``__cause__``, ``__context__``, the
    ``reason`` and ``args`` urllib3 and requests use to carry the original)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested: list[object] = [current.__cause__, current.__context__]
        nested.append(getattr(current, "reason", None))
        nested.extend(getattr(current, "args", ()) or ())
        todo.extend(n for n in nested if isinstance(n, BaseException))


def _host(url: str | None) -> str:
    if not url:
        return "the CRM host"
    parts = urlsplit(url if "//" in url else f"//{url}")
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def transport_error(
    exc: BaseException, crm: str, url: str | None, *, ca_setting: str = "ca_bundle"
) -> TransientError | CertificateProblem:
    """The SPE error for a call that got no HTTP answer from ``url``.

    ``crm`` is the CRM's display name ("Salesforce", "HubSpot"); ``ca_setting``
    the adapter setting that names a CA file, used in the certificate fix.
    """
    host = _host(url)
    chain = list(_chain(exc))
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or any(
        "CERTIFICATE_VERIFY_FAILED" in str(e) for e in chain
    ):
        return CertificateProblem(
            f"{crm}'s TLS certificate at {host} could not be verified.",
            f"if a proxy or an emulator signs it, point {ca_setting} at its CA file; "
            "otherwise check the host name and the system's CA certificates.",
        )
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        "NameResolutionError" in type(e).__name__ or "Name or service not known" in str(e)
        for e in chain
    ):
        return CrmUnreachable(
            f"{crm}'s host {host} does not resolve (DNS).",
            "check the host name in spe.toml (a typo, or a My Domain / instance URL that "
            "changed) and the machine's DNS.",
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return CrmUnreachable(
            f"{crm} refused the connection at {host}.",
            "check the host and port in spe.toml; if it is the local emulator, start it "
            "(spe emulator ...).",
        )
    if any(isinstance(e, (TimeoutError, socket.timeout)) for e in chain) or any(
        "ConnectTimeout" in type(e).__name__ for e in chain
    ):
        return CrmUnreachable(
            f"{crm} at {host} did not answer in time.",
            "check the network path to the CRM (proxy, firewall); the sync retries.",
        )
    return TransientError(
        f"{crm} at {host} did not answer ({type(exc).__name__}).",
        "the sync retries with backoff.",
    )
