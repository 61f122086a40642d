"""The engine's public API as an integrator meets it: times stamped from the engine's
clock, proposals booked as offered and explained when empty, consistent return values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import (
    AppointmentRequest,
    Engine,
    FakeClock,
    InvalidValue,
    Member,
    Opportunity,
    OpportunityStatus,
    Plugins,
    Task,
    hookimpl,
    open_store,
)

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)  # a Monday


def make_engine(clock: FakeClock | None = None) -> Engine:
    return Engine(
        open_store("memory:"),
        clock=clock or FakeClock(T0),
        plugins=Plugins.create(entry_points=False),
    )


# --- the engine stamps times from its clock ---------------------------------------------------


@given(st.integers(0, 10_000))
def test_omitted_times_are_stamped_with_the_engines_now(minutes: int) -> None:
    clock = FakeClock(T0 + timedelta(minutes=minutes))
    engine = make_engine(clock)
    now = clock.now()
    engine.upsert_members([Member("cs", "Cy", "customer_service")])
    (backlogged,) = engine.add_to_backlog([Opportunity("o1", "a1")])
    (queued,) = engine.enqueue([Opportunity("o2", "a1")])
    routed = engine.route_task(Task("t1", "quote", "a1"))
    assert backlogged.queued_at == queued.queued_at == routed.created_at == now
    assert engine.opportunity("o1").queued_at == now and engine.task("t1").created_at == now
    given_time = T0 - timedelta(days=1)
    (kept,) = engine.enqueue([Opportunity("o3", "a1", given_time)])
    assert kept.queued_at == given_time  # a time the caller gives is kept


class _AgeScorer:
    """A scoring plugin that reads queued_at, as the example plugin does."""

    def __init__(self) -> None:
        self.seen: list[datetime] = []

    @hookimpl
    def spe_score_opportunity(self, opportunity: Opportunity, now: datetime) -> float:
        assert opportunity.queued_at is not None
        self.seen.append(opportunity.queued_at)
        return (now - opportunity.queued_at).total_seconds()


def test_scoring_plugins_see_the_stamped_time() -> None:
    plugins = Plugins.create(entry_points=False)
    scorer = _AgeScorer()
    plugins.register(scorer)
    engine = Engine(open_store("memory:"), clock=FakeClock(T0), plugins=plugins)
    engine.enqueue([Opportunity("o1", "a1")])
    assert scorer.seen == [T0]


def test_a_value_without_its_time_exists_only_as_input() -> None:
    with pytest.raises(InvalidValue, match=r"Opportunity.queued_at is required"):
        Opportunity("o1", "a1", status=OpportunityStatus.QUEUED)
    with pytest.raises(InvalidValue, match=r"Task.created_at is required"):
        Task("t1", "quote", "a1", status="cancelled")


# --- propose, then book the slot as offered ----------------------------------------------------


def calendar_engine() -> tuple[Engine, AppointmentRequest]:
    engine = make_engine()
    engine.upsert_members([Member("ann", "Ann", "inside_sales")])
    engine.record_busy("ann", [], T0, T0 + timedelta(days=14))
    request = AppointmentRequest(
        "r1", "a1", timedelta(minutes=30), "conference_call", T0 + timedelta(days=2),
        T0 + timedelta(days=5),
    )
    return engine, request


def test_book_accepts_the_slot_propose_returned() -> None:
    engine, request = calendar_engine()
    slot = engine.propose(request).best
    assert slot is not None and slot.request == request
    booking = engine.book(slot, by="cy")
    assert (booking.request, booking.member_id, booking.start) == (
        request,
        slot.member_id,
        slot.start,
    )
    assert engine.booking("r1") == booking
    engine.cancel_booking("r1", by="cy")
    again = engine.book(request, slot.member_id, slot.start, by="cy")  # the long form still works
    assert again.start == slot.start


def test_booking_a_slot_with_a_member_or_start_as_well_is_refused() -> None:
    engine, request = calendar_engine()
    slot = engine.propose(request).best
    assert slot is not None
    with pytest.raises(InvalidValue, match="slot alone"):
        engine.book(slot, "ann", slot.start, by="cy")  # type: ignore[call-overload]


def test_an_empty_proposal_says_per_member_why() -> None:
    engine, request = calendar_engine()
    engine.upsert_members([Member("bo", "Bo", "inside_sales")])  # busy time never read
    late = AppointmentRequest(
        "r2", "a1", timedelta(hours=10), "conference_call", T0 + timedelta(days=2),
        T0 + timedelta(days=5),
    )
    proposal = engine.propose(late)
    assert proposal.best is None
    assert set(proposal.reasons) == {"ann", "bo"}
    assert "no room" in proposal.reasons["ann"]
    assert proposal.reason is not None and "ann" in proposal.reason and "bo" in proposal.reason
    empty = make_engine().propose(request)
    assert empty.best is None and empty.reasons == {}
    assert empty.reason is not None and "no active field or inside salesperson" in empty.reason
    assert engine.propose(request).reason is None


# --- return values ---------------------------------------------------------------------------


def test_operations_that_add_return_what_they_added() -> None:
    engine = make_engine()
    ann = Member("ann", "Ann", "inside_sales")
    assert engine.upsert_members([ann]) == [ann]
    assert engine.upsert_members([ann]) == []  # nothing changed
    added = engine.add_to_backlog([Opportunity("o1", "a1", T0)])
    assert added == [engine.opportunity("o1")]
    assert engine.enqueue([Opportunity("o2", "a1", T0)]) == [engine.opportunity("o2")]
