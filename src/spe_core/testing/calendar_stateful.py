"""A hypothesis state machine for the calendar: coordinators propose, book, cancel,
reschedule and plan weeks while busy time arrives; every calendar must stay valid.

Run it against any store::

    from spe_core.testing.calendar_stateful import calendar_machine
    TestMyStoreCalendar = calendar_machine(lambda: open_store("sqlite:///...")).TestCase

Invariants after every step: every member's calendar passes
:func:`spe_core.calendar.validate` (so caps, travel, notice, buffers, hours and
holidays all hold), a request holds at most one slot, every slot ``propose``
offered could be booked, and the bookings equal the replay of the event log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from spe_core import calendar
from spe_core.clock import FakeClock
from spe_core.engine import Engine
from spe_core.errors import RuleViolation, WrongState
from spe_core.events import replay_bookings
from spe_core.model import (
    Absence,
    AppointmentRequest,
    Busy,
    Location,
    Member,
    TimeWindow,
    WorkingHours,
)
from spe_core.plugins import Plugins
from spe_core.store.base import Store

__all__ = ["calendar_machine"]

_START = datetime(2026, 12, 4, 9, tzinfo=UTC)  # a Friday; the planned week starts Monday
_MONDAY = datetime(2026, 12, 7, tzinfo=UTC)
_SPAN = (_MONDAY - timedelta(days=7), _MONDAY + timedelta(days=21))
_PLACES = [Location(48.0 + 0.1 * i, 11.0 + 0.12 * (i % 4)) for i in range(8)]

_members = [
    Member(
        "f1",
        "Fay",
        "field_sales",
        time_zone="Europe/Berlin",
        home_base=_PLACES[0],
        coordinator_id="c1",
        holiday_country="DE",
        working_hours=WorkingHours.weekdays(time(8), time(17)),
    ),
    Member(
        "f2",
        "Finn",
        "field_sales",
        time_zone="America/New_York",
        home_base=_PLACES[5],
        coordinator_id="c2",
        absences=[Absence(_MONDAY + timedelta(hours=14), _MONDAY + timedelta(hours=18))],
    ),
    Member("i1", "Ida", "inside_sales", time_zone="Europe/London"),
    Member("c1", "Cy", "sales_coordinator"),
    Member("c2", "Cat", "sales_coordinator"),
]

_requests = st.builds(
    lambda n, place, minutes, in_person, day, length, window: AppointmentRequest(
        f"r{n}",
        f"a{n % 7}",
        timedelta(minutes=minutes),
        "in_person" if in_person else "conference_call",
        _MONDAY + timedelta(days=day),
        _MONDAY + timedelta(days=day + length),
        location=_PLACES[place] if in_person else None,
        windows=(
            [
                TimeWindow(
                    _MONDAY + timedelta(days=day, hours=window),
                    _MONDAY + timedelta(days=day, hours=window + 5),
                )
            ]
            if window is not None
            else []
        ),
    ),
    st.integers(0, 10_000),
    st.integers(0, len(_PLACES) - 1),
    st.sampled_from([30, 45, 60, 90]),
    st.booleans(),
    st.integers(0, 4),
    st.integers(1, 4),
    st.none() | st.integers(6, 14),
)


class _CalendarMachine(RuleBasedStateMachine):
    make_store: Callable[[], Store]

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(_START)
        self.store = self.make_store()
        self.engine = Engine(
            self.store,
            clock=self.clock,
            plugins=Plugins.create(entry_points=False),
            calendar_rules=calendar.CalendarRules(meetings_per_day=3, meetings_per_week=8),
        )
        self.known: dict[str, AppointmentRequest] = {}

    def teardown(self) -> None:
        self.store.close()

    @initialize()
    def team(self) -> None:
        self.engine.upsert_members(_members)
        for m in ("f1", "f2", "i1"):
            self.engine.record_busy(m, [], *_SPAN)

    def _fresh(self, req: AppointmentRequest) -> AppointmentRequest | None:
        if req.id in self.known:
            return None
        self.known[req.id] = req
        return req

    @rule(req=_requests, pick=st.integers(0, 20))
    def propose_then_book(self, req: AppointmentRequest, pick: int) -> None:
        if self._fresh(req) is None:
            return
        proposal = self.engine.propose(req, limit=25)
        if not proposal.slots:
            return
        slot = proposal.slots[pick % len(proposal.slots)]
        # propose-then-book is consistent: an offered slot can always be booked
        self.engine.book(req, slot.member_id, slot.start, by="c1")

    @rule(
        req=_requests,
        member=st.sampled_from(["f1", "f2", "i1"]),
        minutes=st.integers(0, 5 * 24 * 4).map(lambda q: q * 15),
    )
    def book_by_hand(self, req: AppointmentRequest, member: str, minutes: int) -> None:
        if self._fresh(req) is None:
            return
        with contextlib.suppress(RuleViolation):
            self.engine.book(req, member, _MONDAY + timedelta(minutes=minutes), by="c2")

    @rule(reqs=st.lists(_requests, min_size=1, max_size=8, unique_by=lambda r: r.id))
    def plan(self, reqs: list[AppointmentRequest]) -> None:
        fresh = [r for r in reqs if r.id not in self.known]
        for r in fresh:
            self.known[r.id] = r
        plan = self.engine.plan_week(fresh)
        assert len(plan.bookings) + len(plan.unplanned) == len(fresh)

    def _booked(self) -> list[str]:
        return sorted(b.id for b in self.engine.bookings(*_SPAN))

    @precondition(lambda self: bool(self._booked()))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        bid = data.draw(st.sampled_from(self._booked()))
        self.engine.cancel_booking(bid, by="c1", reason="test")
        try:
            self.engine.cancel_booking(bid, by="c1")
        except WrongState:
            pass
        else:
            raise AssertionError("a cancelled booking was cancelled twice")

    @precondition(lambda self: bool(self._booked()))
    @rule(data=st.data(), minutes=st.integers(-24 * 4, 24 * 4).map(lambda q: q * 15))
    def reschedule(self, data: st.DataObject, minutes: int) -> None:
        bid = data.draw(st.sampled_from(self._booked()))
        booking = self.engine.booking(bid)
        member = data.draw(st.sampled_from(["f1", "f2", "i1"]))
        try:
            self.engine.reschedule(
                bid, booking.start + timedelta(minutes=minutes), by="c2", member_id=member
            )
        except RuleViolation:
            assert self.engine.booking(bid) == booking  # nothing changed

    @rule(
        member=st.sampled_from(["f1", "f2"]),
        day=st.integers(0, 4),
        hour=st.integers(6, 18),
        hours=st.integers(1, 3),
    )
    def busy_time_arrives(self, member: str, day: int, hour: int, hours: int) -> None:
        start = _MONDAY + timedelta(days=day, hours=hour)
        # busy time read after a booking may clash with it (validate then tells the
        # coordinator); to keep the invariant strict, it only lands on free days here
        around = (start - timedelta(hours=18), start + timedelta(hours=hours + 18))
        if self.engine.bookings(*around, member_id=member):
            return
        busy = Busy(f"evt-{day}-{hour}", member, start, start + timedelta(hours=hours))
        window = (start - timedelta(minutes=1), start + timedelta(minutes=1))
        self.engine.record_busy(member, [busy], *window)

    @rule(hours=st.integers(1, 20))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))
        for m in ("f1", "f2", "i1"):  # the nightly sync keeps busy time fresh
            self.engine.record_busy(m, list(self.store_busy(m)), *_SPAN)

    def store_busy(self, member: str) -> list[Busy]:
        with self.store.transaction() as tx:
            return list(tx.iter_busy(member, *_SPAN))

    @invariant()
    def bookings_made_by_the_engine_stay_valid(self) -> None:
        for mid in ("f1", "f2", "i1"):
            problems = self.engine.validate_calendar(mid, *_SPAN)
            assert problems == [], problems

    @invariant()
    def one_slot_per_request_and_the_log_agrees(self) -> None:
        active = self.engine.bookings(*_SPAN)
        assert len({b.id for b in active}) == len(active)
        replayed = replay_bookings(self.store.events())
        assert sorted(b.id for b in replayed.values() if b.active) == sorted(b.id for b in active)
        for b in active:
            assert replayed[b.id] == b


def calendar_machine(make_store: Callable[[], Store]) -> type[RuleBasedStateMachine]:
    """A stateful calendar machine over stores made by ``make_store`` (one per example)."""
    return type("CalendarMachine", (_CalendarMachine,), {"make_store": staticmethod(make_store)})
