"""Time, injected: the engine asks its clock, rules are handed the time.

Use :class:`SystemClock` in production and :class:`FakeClock` in tests (also
exported as :class:`spe_core.testing.FakeClock`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from spe_core.errors import InvalidValue
from spe_core.model import aware

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with a ``now()`` returning a timezone-aware datetime."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A :class:`Clock` whose time moves only when told (for tests and simulations).

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
            raise InvalidValue(
                f"FakeClock.advance step {step} is negative: a FakeClock never goes backwards.",
                "use set(when) to jump to an earlier time.",
            )
        self._now += step
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (any direction)."""
        self._now = aware(when, "FakeClock time")

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"
