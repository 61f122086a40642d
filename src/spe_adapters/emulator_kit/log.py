"""The request log: every request an emulator served, for call counting and replay."""

from __future__ import annotations

import threading
from collections import Counter

import attrs

__all__ = ["LoggedRequest", "RequestLog"]


@attrs.frozen
class LoggedRequest:
    """One request the emulator served."""

    method: str
    path: str
    endpoint: str
    status: int
    at: float


@attrs.define
class RequestLog:
    """Every request served (thread-safe): ``counts()`` per endpoint, ``entries`` in order."""

    entries: list[LoggedRequest] = attrs.Factory(list)
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def add(self, entry: LoggedRequest) -> None:
        """Record one request."""
        with self.lock:
            self.entries.append(entry)

    def counts(self) -> Counter[str]:
        """Requests per endpoint (the URL rule's name: ``search``, ``query``, ...)."""
        with self.lock:
            return Counter(e.endpoint for e in self.entries)

    def snapshot(self, last: int | None = None) -> list[LoggedRequest]:
        """A copy of the entries (the ``last`` ones only, when given)."""
        with self.lock:
            return list(self.entries[-last:] if last else self.entries)

    def reset_counts(self) -> None:
        """Forget the requests served so far."""
        with self.lock:
            self.entries.clear()
