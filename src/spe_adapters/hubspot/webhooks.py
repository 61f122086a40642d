"""A framework-neutral receiver for HubSpot webhooks (signatures v3, v2 and v1).

HubSpot signs each webhook request with the app's client secret
(https://developers.hubspot.com/docs/api/webhooks/validating-requests):

- **v3** (``X-HubSpot-Signature-v3`` with ``X-HubSpot-Request-Timestamp``): the
  base64 HMAC-SHA256 of ``method + URI + body + timestamp``, the URI with a few
  percent-escapes decoded. Requests to apps that get v3 headers carry them;
  a timestamp older than five minutes is refused, one up to ``max_future``
  (60 s) ahead of this server's clock is accepted (clock skew).
- **v2** (``X-HubSpot-Signature`` with ``X-HubSpot-Signature-Version: v2``): the
  hex SHA-256 of ``secret + method + URI + body``, the URI exactly as HubSpot
  called it.
- **v1** (``X-HubSpot-Signature-Version: v1``, what webhook-API subscriptions
  send): the hex SHA-256 of ``secret + body``.

:class:`WebhookHandler` verifies v3 when its headers are present, else v2 or v1
(``min_version`` refuses older versions), all in constant time, and only then
turns the object events into a near-real-time inbound sync of those record ids
(:class:`InboundSync`: a batch read of the ids, applied through the sync engine
with its usual quarantine and conflict rules). A refused request is a 401 with
the reason and nothing is applied.

Mount it in any framework: call :meth:`WebhookHandler.handle` with the method,
the URI exactly as HubSpot called it (``+`` and percent-escapes untouched), the
headers and the raw body; or use the handler itself as a WSGI application, or
:meth:`WebhookHandler.asgi` as an ASGI one: both take the URI from the raw
request line, never from a decoded path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import attrs

from spe_core.errors import ConfigError, SpeError, TransientError
from spe_core.inbound import OPEN

if TYPE_CHECKING:
    from spe_adapters.hubspot.adapter import HubSpotAdapter
    from spe_adapters.hubspot.settings import HubSpotSettings
    from spe_core.model import Opportunity
    from spe_core.sync import StreamReport, SyncEngine

__all__ = [
    "InboundSync",
    "WebhookHandler",
    "WebhookResponse",
    "asgi_uri",
    "object_ids",
    "sign_v1",
    "sign_v2",
    "sign_v3",
    "wsgi_uri",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
LEGACY_SIGNATURE_HEADER = "X-HubSpot-Signature"
VERSION_HEADER = "X-HubSpot-Signature-Version"
#: v3: reject a timestamp older than five minutes (HubSpot's validating-requests page).
MAX_AGE = timedelta(minutes=5)
#: v3: how far ahead of this server's clock a timestamp may be (the two clocks differ).
MAX_FUTURE = timedelta(seconds=60)
VERSIONS = ("v1", "v2", "v3")
#: Object type names and ids (as ``subscriptionType`` prefixes and ``objectTypeId``).
OBJECT_TYPE_IDS = {"0-1": "contacts", "0-3": "deals", "0-27": "tasks", "0-47": "meetings"}
OBJECT_NAMES = {"contact": "contacts", "deal": "deals", "task": "tasks", "meeting": "meetings"}
# HubSpot decodes these percent-encoded characters in the URI before signing.
_DECODED = {quote(c, safe=""): c for c in ":/?@!$'(),*;"}

Apply = Callable[..., Any]
"""Applies the records of one stream named by a webhook: called as
``apply(stream, crm_ids)`` for created or changed records and as
``apply(stream, crm_ids, archived=True)`` for deleted ones."""


def _signed_uri(uri: str) -> str:
    for encoded, char in _DECODED.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature of one request (what ``X-HubSpot-Signature-v3`` must hold)."""
    message = method.upper().encode() + _signed_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    """HubSpot's v2 signature (``X-HubSpot-Signature`` with version ``v2``): the URI exactly
    as called, including the protocol and the query string in its order."""
    message = secret.encode() + method.upper().encode() + uri.encode() + body
    return hashlib.sha256(message).hexdigest()


def sign_v1(secret: str, body: bytes) -> str:
    """HubSpot's v1 signature (``X-HubSpot-Signature`` with version ``v1``)."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


@attrs.frozen
class WebhookResponse:
    """What to answer HubSpot: status, JSON body, headers."""

    status: int
    body: dict[str, Any]

    @property
    def content(self) -> bytes:
        """The body as JSON bytes."""
        return json.dumps(self.body).encode()


DELETION = "deletion"
#: A GDPR deletion: the record is purged, not moved to the recycling bin.
PRIVACY_DELETION = "privacyDeletion"


def object_ids(
    events: Iterable[Mapping[str, Any]],
    streams: Mapping[str, str],
    *,
    deleted: bool = False,
    purged: bool = False,
) -> dict[str, list[str]]:
    """Stream -> record ids changed (``deleted``: deleted into the recycling bin;
    ``purged``: deleted for good by a privacy deletion), from HubSpot's event list
    (merges, restores and object types no stream reads are left out); ``streams``
    maps object type to stream."""
    wanted = PRIVACY_DELETION if purged else DELETION if deleted else None
    out: dict[str, list[str]] = {}
    for event in events:
        kind = str(event.get("subscriptionType") or "")
        prefix, _, action = kind.partition(".")
        if action in ("merge", "restore"):
            continue
        if wanted is None and action in (DELETION, PRIVACY_DELETION):
            continue
        if wanted is not None and action != wanted:
            continue
        object_type = (
            OBJECT_TYPE_IDS.get(str(event.get("objectTypeId")))
            if prefix == "object"
            else OBJECT_NAMES.get(prefix)
        )
        stream = streams.get(object_type or "")
        object_id = event.get("objectId")
        if stream is None or object_id is None:
            continue
        ids = out.setdefault(stream, [])
        if str(object_id) not in ids:
            ids.append(str(object_id))
    return out


class WebhookHandler:
    """Verifies HubSpot's v3 signature, then syncs the records the events name.

    ``streams`` maps HubSpot object types (``deals``, ``contacts``, ``tasks``) to the
    SPE stream their changes belong to; ``apply`` is called once per stream with
    the ids. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        secret: str,
        apply: Apply,
        *,
        streams: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_age: timedelta = MAX_AGE,
        max_future: timedelta = MAX_FUTURE,
        min_version: str = "v1",
        base_url: str | None = None,
    ) -> None:
        if not secret:
            raise ConfigError(
                "the HubSpot webhook handler needs the app's client secret.",
                "pass the secret from your app's Auth settings (from the environment).",
            )
        if min_version not in VERSIONS:
            raise ConfigError(
                f"the HubSpot webhook handler's min_version {min_version!r} is not a "
                "signature version.",
                "use v1 (accept every version HubSpot sends), v2 or v3.",
            )
        self._secret = secret
        self.apply = apply
        self.streams = dict(streams or {"deals": "opportunities", "tasks": "tasks"})
        self.clock = clock
        self.max_age = max_age
        self.max_future = max_future
        self.min_version = min_version
        self.base_url = base_url.rstrip("/") if base_url else None

    def __repr__(self) -> str:  # never print the secret
        return f"WebhookHandler(streams={self.streams!r}, secret=<hidden>)"

    @classmethod
    def for_sync(
        cls, settings: HubSpotSettings, sync: SyncEngine, adapter: HubSpotAdapter, **kw: Any
    ) -> WebhookHandler:
        """A handler whose secret comes from ``app_secret_env``, whose signature rules come
        from ``webhook_min_signature_version`` and ``webhook_max_future_seconds``, and whose
        events are applied through ``sync`` (queued object, tasks, meetings)."""
        secret = settings.secret(settings.app_secret_env, "app client secret")
        streams: dict[str, str] = {str(settings.queued_object): "opportunities"}
        if settings.fields.task_kind_property:
            streams["tasks"] = "tasks"
        if settings.fields.calendar_meetings:
            streams["meetings"] = "busy"
        kw.setdefault("min_version", settings.webhook_min_signature_version)
        kw.setdefault("max_future", timedelta(seconds=settings.webhook_max_future_seconds))
        return cls(secret, InboundSync(sync, adapter), streams=streams, **kw)

    def verify(self, method: str, uri: str, headers: Mapping[str, str], body: bytes) -> str | None:
        """None when the request is HubSpot's (and, for v3, fresh), else the reason it is
        not. v3 when its headers are present, else v2 or v1 by ``X-HubSpot-Signature-Version``."""
        lower = {k.lower(): v for k, v in headers.items()}
        signature = lower.get(SIGNATURE_HEADER.lower())
        timestamp = lower.get(TIMESTAMP_HEADER.lower())
        if signature and timestamp:
            return self._verify_v3(method, uri, body, signature, timestamp)
        legacy = lower.get(LEGACY_SIGNATURE_HEADER.lower())
        if not legacy:
            return (
                f"the request has neither {SIGNATURE_HEADER} with {TIMESTAMP_HEADER} nor "
                f"{LEGACY_SIGNATURE_HEADER}"
            )
        version = (lower.get(VERSION_HEADER.lower()) or "").strip().lower()
        if version not in ("v1", "v2"):
            return f"{VERSION_HEADER} is {version or 'missing'!r}, not v1 or v2"
        if VERSIONS.index(version) < VERSIONS.index(self.min_version):
            return (
                f"the request is signed {version}; this receiver accepts {self.min_version} "
                "or later (min_version)"
            )
        if version == "v1":
            expected = sign_v1(self._secret, body)
        else:
            expected = sign_v2(self._secret, method, uri, body)
        if not hmac.compare_digest(expected.encode(), legacy.strip().lower().encode()):
            return (
                f"the {version} signature does not match (wrong app secret, or the body "
                "or URI changed)"
            )
        return None

    def _verify_v3(
        self, method: str, uri: str, body: bytes, signature: str, timestamp: str
    ) -> str | None:
        if not timestamp.isdigit():
            return f"{TIMESTAMP_HEADER} is not epoch milliseconds"
        now_ms = int(self.clock().timestamp() * 1000)
        age_ms = now_ms - int(timestamp)
        if age_ms > self.max_age.total_seconds() * 1000:
            limit = int(self.max_age.total_seconds())
            return f"{TIMESTAMP_HEADER} is {age_ms // 1000} s old (limit: {limit} s)"
        if -age_ms > self.max_future.total_seconds() * 1000:
            limit = int(self.max_future.total_seconds())
            return (
                f"{TIMESTAMP_HEADER} is {-age_ms // 1000} s in the future (limit: {limit} s; "
                "check this server's clock)"
            )
        expected = sign_v3(self._secret, method, uri, body, timestamp)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return "the signature does not match (wrong app secret, or the body or URI changed)"
        return None

    def handle(
        self, method: str, uri: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookResponse:
        """Verify one webhook request and apply its events."""
        if self.base_url is not None:  # behind a proxy: the URI HubSpot called
            path = uri.split("://", 1)[-1]
            path = path[path.find("/") :] if "/" in path else "/"
            uri = self.base_url + path
        problem = self.verify(method, uri, headers, body)
        if problem is not None:
            log.warning("refused a HubSpot webhook: %s", problem)
            return WebhookResponse(
                401,
                {
                    "error": f"HubSpot webhook refused: {problem}.",
                    "fix": "check the app secret (app_secret_env), the public URL HubSpot "
                    "calls, and the server's clock.",
                },
            )
        try:
            events = json.loads(body or b"[]")
        except ValueError:
            return WebhookResponse(400, {"error": "the webhook body is not JSON."})
        if isinstance(events, dict):
            events = [events]
        if not isinstance(events, list):
            return WebhookResponse(400, {"error": "the webhook body is not a list of events."})
        events = [e for e in events if isinstance(e, dict)]
        changed = object_ids(events, self.streams)
        deleted = object_ids(events, self.streams, deleted=True)
        purged = object_ids(events, self.streams, purged=True)
        applied: dict[str, int] = {}
        gone: dict[str, int] = {}
        try:
            for stream, ids in changed.items():
                self.apply(stream, ids)
                applied[stream] = len(ids)
            for stream, ids in deleted.items():
                self.apply(stream, ids, archived=True)
                gone[stream] = len(ids)
            for stream, ids in purged.items():
                self.apply(stream, ids, archived=True, purged=True)
                gone[stream] = gone.get(stream, 0) + len(ids)
        except TransientError as exc:  # HubSpot retries failed deliveries
            return WebhookResponse(503, {"error": exc.problem, "fix": exc.fix})
        except SpeError as exc:
            return WebhookResponse(500, {"error": exc.problem, "fix": exc.fix})
        return WebhookResponse(200, {"events": len(events), "synced": applied, "deleted": gone})

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """The handler as a WSGI application."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {
            key[5:].replace("_", "-"): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        response = self.handle(
            str(environ.get("REQUEST_METHOD", "POST")), wsgi_uri(environ), headers, body
        )
        content = response.content
        start_response(
            f"{response.status} {_REASONS.get(response.status, 'Service Unavailable')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(content)))],
        )
        return [content]

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The handler as an ASGI application (``http`` scopes; mount ``handler.asgi``).

        Verifying and applying run in a worker thread: the sync engine and the
        adapter's HTTP calls block."""
        import asyncio
        import functools

        if scope.get("type") != "http":
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers") or []
        }
        method = str(scope.get("method", "POST"))
        uri = asgi_uri(scope)
        call = functools.partial(self.handle, method, uri, headers, b"".join(chunks))
        response = await asyncio.get_running_loop().run_in_executor(None, call)
        content = response.content
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def wsgi_uri(environ: Mapping[str, Any]) -> str:
    """The URI of a WSGI request exactly as the client sent it: the raw request target
    (``RAW_URI`` or ``REQUEST_URI``, which gunicorn, werkzeug and uWSGI set) on the
    scheme and host. Only without one is it rebuilt from the decoded path, re-escaping
    only what a URI cannot hold (``+`` and the other sub-delimiters stay as they are)."""
    target = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    if target.startswith(("http://", "https://")):
        return target
    if not target:
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        target = quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=~-._")
        query = str(environ.get("QUERY_STRING") or "")
        if query:
            target += "?" + query
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = environ.get("HTTP_HOST")
    if not host:
        host = str(environ.get("SERVER_NAME", "localhost"))
        port = str(environ.get("SERVER_PORT", ""))
        if port and port != {"https": "443", "http": "80"}.get(scheme):
            host += f":{port}"
    return f"{scheme}://{host}{target}"


def asgi_uri(scope: Mapping[str, Any]) -> str:
    """The URI of an ASGI request as the client sent it: ``raw_path`` and the raw
    ``query_string`` on the scheme and host."""
    raw = scope.get("raw_path")
    if raw:
        target = bytes(raw).decode("latin-1")
    else:
        path = str(scope.get("root_path", "")) + str(scope.get("path", "/"))
        target = quote(path.encode(), safe="/:@!$&'()*+,;=~-._")
    query = bytes(scope.get("query_string") or b"").decode("latin-1")
    if query:
        target += "?" + query
    scheme = str(scope.get("scheme", "http"))
    host = ""
    for key, value in scope.get("headers") or []:
        if key.lower() == b"host":
            host = value.decode("latin-1")
            break
    if not host and scope.get("server"):
        server_host, server_port = scope["server"]
        host = str(server_host)
        if server_port and int(server_port) != {"https": 443, "http": 80}.get(scheme):
            host += f":{server_port}"
    return f"{scheme}://{host or 'localhost'}{target}"


class InboundSync:
    """Applies the records a webhook names: reads their current version in batches of
    100 and applies them through the sync engine (no bookmark moves)."""

    def __init__(self, sync: SyncEngine, adapter: HubSpotAdapter) -> None:
        self.sync = sync
        self.adapter = adapter

    def __call__(
        self, stream: str, ids: list[str], archived: bool = False, purged: bool = False
    ) -> StreamReport:
        if purged:  # nothing left to read: the deletion applies to what SPE holds
            records = self.adapter.purged_records(stream, self._held(stream, ids))
        else:
            records = self.adapter.read_ids(stream, ids, archived=archived)
        report = self.sync.apply_records(stream, records)
        log.info(
            "webhook sync of %d %s: %d applied, %d quarantined",
            len(ids),
            stream,
            report.applied,
            report.quarantined,
        )
        return report

    def _held(self, stream: str, ids: list[str]) -> dict[str, Opportunity]:
        """The open opportunities SPE holds for these CRM ids (by their external id)."""
        if stream != "opportunities":
            return {}
        wanted = set(ids)
        crm = self.adapter.name
        held: dict[str, Opportunity] = {}
        for status in OPEN:
            for opp in self.sync.engine.store.opportunities(status):
                crm_id = opp.external_id(crm)
                if crm_id in wanted:
                    held[crm_id] = opp
        return held
