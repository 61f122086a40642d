"""A clock for tests: it stands still until told to move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from spe_core.model import aware

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`~spe_core.clock.Clock` whose time moves only when told.

    >>> clock = FakeClock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    >>> clock.advance(minutes=30).isoformat()
    '2026-01-05T09:30:00+00:00'
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (
            aware(start, "FakeClock start")
            if start is not None
            else datetime(2026, 1, 5, 8, tzinfo=UTC)
        )

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move time forward by ``delta`` or ``timedelta(**kwargs)``; returns the new time."""
        step = delta if delta is not None else timedelta(**kwargs)
        if step < timedelta(0):
            raise ValueError("a FakeClock never goes backwards; use set() to jump")
        self._now += step
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (any direction)."""
        self._now = aware(when, "FakeClock time")

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"
