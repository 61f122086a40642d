"""A framework-neutral receiver for HubSpot webhooks (signature v3).

HubSpot signs each webhook request with the app's client secret: the header
``X-HubSpot-Signature-v3`` is the base64 HMAC-SHA256 of
``method + full URI + body + X-HubSpot-Request-Timestamp`` (milliseconds).
:class:`WebhookHandler` verifies it (constant-time), refuses timestamps five
minutes old or older and timestamps from the future, and only then turns the
object events into a near-real-time inbound sync of those record ids
(:class:`InboundSync`: a batch read of the ids, applied through the sync
engine with its usual quarantine and conflict rules). A bad signature is a
401 with the reason and nothing is applied.

Mount it in any framework: call :meth:`WebhookHandler.handle` with the
method, the URI HubSpot called, the headers and the raw body, or use the
handler itself as a WSGI application.
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

if TYPE_CHECKING:
    from spe_adapters.hubspot.adapter import HubSpotAdapter
    from spe_adapters.hubspot.settings import HubSpotSettings
    from spe_core.sync import StreamReport, SyncEngine

__all__ = [
    "InboundSync",
    "WebhookHandler",
    "WebhookResponse",
    "object_ids",
    "sign_v3",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_AGE = timedelta(minutes=5)
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


@attrs.frozen
class WebhookResponse:
    """What to answer HubSpot: status, JSON body, headers."""

    status: int
    body: dict[str, Any]

    @property
    def content(self) -> bytes:
        """The body as JSON bytes."""
        return json.dumps(self.body).encode()


DELETIONS = frozenset({"deletion", "privacyDeletion"})


def object_ids(
    events: Iterable[Mapping[str, Any]], streams: Mapping[str, str], *, deleted: bool = False
) -> dict[str, list[str]]:
    """Stream -> record ids changed (``deleted``: deleted), from HubSpot's event list
    (merges, restores and object types no stream reads are left out); ``streams``
    maps object type to stream."""
    out: dict[str, list[str]] = {}
    for event in events:
        kind = str(event.get("subscriptionType") or "")
        prefix, _, action = kind.partition(".")
        if action in ("merge", "restore") or (action in DELETIONS) != deleted:
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
        base_url: str | None = None,
    ) -> None:
        if not secret:
            raise ConfigError(
                "the HubSpot webhook handler needs the app's client secret.",
                "pass the secret from your app's Auth settings (from the environment).",
            )
        self._secret = secret
        self.apply = apply
        self.streams = dict(streams or {"deals": "opportunities", "tasks": "tasks"})
        self.clock = clock
        self.max_age = max_age
        self.base_url = base_url.rstrip("/") if base_url else None

    def __repr__(self) -> str:  # never print the secret
        return f"WebhookHandler(streams={self.streams!r}, secret=<hidden>)"

    @classmethod
    def for_sync(
        cls, settings: HubSpotSettings, sync: SyncEngine, adapter: HubSpotAdapter, **kw: Any
    ) -> WebhookHandler:
        """A handler whose secret comes from ``app_secret_env`` and whose events are
        applied through ``sync`` (queued object and tasks)."""
        secret = settings.secret(settings.app_secret_env, "app client secret")
        streams: dict[str, str] = {str(settings.queued_object): "opportunities"}
        if settings.fields.task_kind_property:
            streams["tasks"] = "tasks"
        if settings.fields.calendar_meetings:
            streams["meetings"] = "busy"
        return cls(secret, InboundSync(sync, adapter), streams=streams, **kw)

    def verify(self, method: str, uri: str, headers: Mapping[str, str], body: bytes) -> str | None:
        """None when the request is HubSpot's and fresh, else the reason it is not."""
        lower = {k.lower(): v for k, v in headers.items()}
        signature = lower.get(SIGNATURE_HEADER.lower())
        timestamp = lower.get(TIMESTAMP_HEADER.lower())
        if not signature or not timestamp:
            return f"the request has no {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header"
        if not timestamp.isdigit():
            return f"{TIMESTAMP_HEADER} is not epoch milliseconds"
        now_ms = int(self.clock().timestamp() * 1000)
        age_ms = now_ms - int(timestamp)
        if age_ms < 0:
            return f"{TIMESTAMP_HEADER} is in the future"
        if age_ms >= self.max_age.total_seconds() * 1000:
            return f"{TIMESTAMP_HEADER} is {age_ms // 1000} s old (limit: under 5 minutes)"
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
        applied: dict[str, int] = {}
        gone: dict[str, int] = {}
        try:
            for stream, ids in changed.items():
                self.apply(stream, ids)
                applied[stream] = len(ids)
            for stream, ids in deleted.items():
                self.apply(stream, ids, archived=True)
                gone[stream] = len(ids)
        except TransientError as exc:  # HubSpot retries failed deliveries
            return WebhookResponse(503, {"error": exc.problem, "fix": exc.fix})
        except SpeError as exc:
            return WebhookResponse(500, {"error": exc.problem, "fix": exc.fix})
        return WebhookResponse(200, {"events": len(events), "synced": applied, "deleted": gone})

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """The handler as a WSGI application."""
        from wsgiref.util import request_uri

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
            str(environ.get("REQUEST_METHOD", "POST")), request_uri(environ), headers, body
        )
        content = response.content
        reasons = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 500: "Internal Server Error"}
        start_response(
            f"{response.status} {reasons.get(response.status, 'Service Unavailable')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(content)))],
        )
        return [content]


class InboundSync:
    """Applies the records a webhook names: reads their current version in batches of
    100 and applies them through the sync engine (no bookmark moves)."""

    def __init__(self, sync: SyncEngine, adapter: HubSpotAdapter) -> None:
        self.sync = sync
        self.adapter = adapter

    def __call__(self, stream: str, ids: list[str], archived: bool = False) -> StreamReport:
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
