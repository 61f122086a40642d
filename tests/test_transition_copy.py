"""The transitions' fast copy builds exactly what ``attrs.evolve`` (with every model check)
would, and hands anything it cannot vouch for to ``attrs.evolve``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import queue
from spe_core.errors import InvalidValue
from spe_core.model import Member, Opportunity, OpportunityStatus, Outcome

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
POLICY = queue.QueuePolicy(lease=timedelta(hours=4))

ids = st.sampled_from(["ann", "bob", "cy", "dee"])
times = st.integers(min_value=0, max_value=10**6).map(lambda s: T0 + timedelta(seconds=s))


@st.composite
def queued(draw: st.DrawFn) -> Opportunity:
    return Opportunity(
        id=draw(st.sampled_from(["o1", "o2", "o-3"])),
        account_id="a1",
        queued_at=draw(times),
        tier=draw(st.integers(-3, 3)),
        score=draw(st.floats(-1e6, 1e6)),
        required_skills=draw(st.frozensets(st.sampled_from(["de", "fr"]), max_size=1)),
        excluded=draw(st.frozensets(ids, max_size=2)),
        external_ids=draw(st.dictionaries(st.sampled_from(["sf", "hs"]), ids, max_size=2)),
        status=OpportunityStatus.QUEUED,
    )


def _same(a: Opportunity, b: Opportunity) -> None:
    assert a == b
    assert type(a) is type(b) is Opportunity
    for f in attrs.fields(Opportunity):
        assert type(getattr(a, f.name)) is type(getattr(b, f.name)), f.name


@given(queued(), ids, times, st.sampled_from(list(Outcome)), st.text(max_size=5))
def test_every_transition_equals_the_fully_checked_evolve(
    opp: Opportunity, member_id: str, later: datetime, outcome: Outcome, reason: str
) -> None:
    member = Member(member_id, "M", "inside_sales", skills={"de", "fr"})
    if member_id in opp.excluded:
        opp = attrs.evolve(opp, excluded=frozenset())
    now = max(later, opp.queued_at or T0)
    step = queue.release(opp, member, now, POLICY)
    released = step.opportunity
    _same(
        released,
        attrs.evolve(
            opp,
            status=OpportunityStatus.RELEASED,
            owner_id=member_id,
            released_at=now,
            lease_expires_at=now + timedelta(hours=4),
        ),
    )
    _same(
        queue.resolve(released, member_id, outcome, now).opportunity,
        attrs.evolve(
            released,
            status=OpportunityStatus.RESOLVED,
            outcome=outcome,
            resolved_at=now,
            lease_expires_at=None,
        ),
    )
    unreleased = {"owner_id": None, "released_at": None, "lease_expires_at": None}
    _same(
        queue.give_back(released, member_id, now, reason).opportunity,
        attrs.evolve(
            released,
            status=OpportunityStatus.QUEUED,
            excluded=released.excluded | {member_id},
            **unreleased,  # type: ignore[arg-type]
        ),
    )
    _same(
        queue.withdraw(released, now, reason or "x").opportunity,
        attrs.evolve(released, status=OpportunityStatus.WITHDRAWN, **unreleased),  # type: ignore[arg-type]
    )
    expiry = now + timedelta(hours=5)
    _same(
        queue.expire_lease(released, expiry).opportunity,
        attrs.evolve(released, status=OpportunityStatus.QUEUED, **unreleased),  # type: ignore[arg-type]
    )


def test_a_time_the_model_would_convert_goes_through_the_full_checks() -> None:
    opp = Opportunity("o1", "a1", T0, status=OpportunityStatus.QUEUED)
    member = Member("ann", "Ann", "inside_sales")
    berlin = T0.astimezone(timezone(timedelta(hours=1)))
    released = queue.release(opp, member, berlin, POLICY).opportunity
    assert released.released_at is not None
    assert released.released_at.tzinfo is UTC  # converted, as the model does


def test_a_bad_value_still_meets_the_models_checks() -> None:
    opp = Opportunity("o1", "a1", T0, status=OpportunityStatus.QUEUED)
    bad = Member.__new__(Member)  # a member that skipped its own checks
    for f in attrs.fields(Member):
        object.__setattr__(bad, f.name, getattr(Member("ann", "Ann", "inside_sales"), f.name))
    object.__setattr__(bad, "id", " ")
    with pytest.raises(InvalidValue, match="owner_id"):
        queue.release(opp, bad, T0, POLICY)
