"""Fault injection shared by the emulators: per call, per record, latency, rate windows.

Each emulator's data model owns one :class:`Faults` (reset with the model), set
from Python (``server.portal.faults.next_statuses = [503]``) or over HTTP
(``POST /__emulator/faults``). What a drawn status *looks like* (HubSpot's 429
body, Salesforce's ``REQUEST_LIMIT_EXCEEDED``) stays with each emulator.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Faults", "RollingWindow"]


@attrs.define
class Faults:
    """Faults to inject.

    ``next_statuses``: the next API requests fail with these HTTP statuses, one
    each; ``write_statuses``: the same for the next write requests only (they
    are drawn first for writes); ``rate`` with ``rate_status``: that share of
    API requests fails (drawn from ``rng``, seeded, so a run repeats);
    ``failing_records``: record ids or keys whose writes fail inside an
    otherwise fine batch (value: the CRM's error code for it); ``latency``:
    seconds added to every API reply.
    """

    next_statuses: list[int] = attrs.Factory(list)
    write_statuses: list[int] = attrs.Factory(list)
    rate: float = 0.0
    rate_status: int = 503
    failing_records: dict[str, str] = attrs.Factory(dict)
    latency: float = 0.0
    rng: random.Random = attrs.Factory(lambda: random.Random(7))

    def draw(self, write: bool = False) -> int | None:
        """The status this request must fail with, or None (per call)."""
        if write and self.write_statuses:
            return self.write_statuses.pop(0)
        if self.next_statuses:
            return self.next_statuses.pop(0)
        if self.rate and self.rng.random() < self.rate:
            return self.rate_status
        return None

    def record_fault(self, *keys: object) -> tuple[str, str] | None:
        """``(key, code)`` for the first of ``keys`` (ids, external keys) set to fail, or None
        (per record; empty and None keys never match)."""
        for key in keys:
            if key is None or key == "":
                continue
            code = self.failing_records.get(str(key))
            if code:
                return str(key), code
        return None

    def delay(self) -> None:
        """Sleep the configured latency (call it once per API request)."""
        if self.latency:
            time.sleep(self.latency)

    def configure(self, body: Mapping[str, Any]) -> None:
        """Replace the settings from a ``POST /__emulator/faults`` body (absent keys: off)."""
        self.next_statuses = [int(s) for s in body.get("next_statuses", [])]
        self.write_statuses = [int(s) for s in body.get("write_statuses", [])]
        self.rate = float(body.get("rate", 0.0))
        self.rate_status = int(body.get("rate_status", 503))
        self.failing_records = {str(k): str(v) for k, v in body.get("failing_records", {}).items()}
        self.latency = float(body.get("latency", 0.0))


class RollingWindow:
    """Calls counted over a rolling window (a ten-secondly limit, say): ``hit()`` counts one,
    ``remaining()`` says how many the limit still allows, ``exceeded()`` whether it is spent.
    The clock is injectable (monotonic seconds)."""

    def __init__(self, limit: int, seconds: float, clock: Any = time.monotonic) -> None:
        self.limit, self.seconds, self._clock = limit, seconds, clock
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        while self._calls and now - self._calls[0] >= self.seconds:
            self._calls.popleft()

    def hit(self) -> int:
        """Count one call now; returns how many remain in the window."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            self._calls.append(now)
            return max(0, self.limit - len(self._calls))

    def remaining(self) -> int:
        """How many calls the window still allows now."""
        with self._lock:
            self._trim(self._clock())
            return max(0, self.limit - len(self._calls))

    def exceeded(self) -> bool:
        """Whether more calls than the limit were made within the window."""
        with self._lock:
            self._trim(self._clock())
            return len(self._calls) > self.limit

    def clear(self) -> None:
        """Forget every call."""
        with self._lock:
            self._calls.clear()
