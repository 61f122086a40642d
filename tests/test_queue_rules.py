"""Unit and property tests of the pure queue rules and the model they use."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import queue
from spe_core.errors import ConfigError, InvalidValue, RoleMayNotPull, WrongOwner, WrongState
from spe_core.model import Member, Opportunity, OpportunityStatus, Outcome, Role
from spe_core.queue import QueuePolicy, SortField, Zone

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
ANN = Member("ann", "Ann", "inside_sales", skills={"de"}, wip_limit=2)


def opp(oid: str = "o1", **kw: object) -> Opportunity:
    fields: dict[str, object] = {
        "id": oid,
        "account_id": "a1",
        "queued_at": T0,
        "status": OpportunityStatus.QUEUED,
    }
    fields.update(kw)
    return Opportunity(**fields)  # type: ignore[arg-type]


# --- model -----------------------------------------------------------------------------


def test_roles_parse_leniently_and_reject_clearly() -> None:
    assert Role.parse("Inside Sales") is Role.INSIDE_SALES
    assert Role.parse("field-sales") is Role.FIELD_SALES
    with pytest.raises(InvalidValue, match="'closer' is not an SPE role") as info:
        Role.parse("closer")
    assert "inside_sales" in str(info.value)


def test_naive_datetimes_are_refused_with_the_fix() -> None:
    with pytest.raises(InvalidValue, match="has no time zone") as info:
        Opportunity("o1", "a1", datetime(2026, 1, 5, 8))
    assert "tzinfo=UTC" in str(info.value) or "timezone-aware" in str(info.value)


def test_member_validation() -> None:
    with pytest.raises(InvalidValue, match="IANA time zone"):
        Member("m", "M", "inside_sales", time_zone="Mars/Olympus")
    with pytest.raises(InvalidValue, match="positive whole number"):
        Member("m", "M", "inside_sales", wip_limit=0)
    with pytest.raises(InvalidValue, match="non-empty"):
        Member(" ", "M", "inside_sales")
    with pytest.raises(InvalidValue, match="weight"):
        Member("m", "M", "inside_sales", weight=0)


def test_opportunity_state_invariants() -> None:
    with pytest.raises(InvalidValue, match="only released and resolved"):
        opp(owner_id="ann")
    with pytest.raises(InvalidValue, match="exactly the resolved ones"):
        opp(status=OpportunityStatus.RESOLVED, owner_id="ann")
    with pytest.raises(InvalidValue, match=r"expires .* before it may be worked"):
        opp(not_before=T0 + timedelta(hours=2), expires_at=T0 + timedelta(hours=1))
    with pytest.raises(InvalidValue, match="finite"):
        opp(score=float("nan"))


def test_external_ids_normalise_and_reject_duplicates() -> None:
    o = opp(external_ids={"salesforce": "00Q1", "hubspot": "42"})
    assert o.external_ids == {"hubspot": "42", "salesforce": "00Q1"}
    assert list(o.external_ids) == ["hubspot", "salesforce"]  # sorted by CRM name
    assert o.external_id("salesforce") == "00Q1"
    assert o.external_id("pipedrive") is None
    with pytest.raises(InvalidValue, match="same CRM twice"):
        opp(external_ids=[("salesforce", "1"), ("salesforce", "2")])


def test_skills_are_normalised() -> None:
    m = Member("m", "M", "inside_sales", skills=[" de ", "fr", ""])
    assert m.skills == frozenset({"de", "fr"})
    assert Member("m", "M", "inside_sales", skills="de").skills == frozenset({"de"})


# --- policy and order ------------------------------------------------------------------


def test_policy_validation_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="target"):
        QueuePolicy(target=-1)
    with pytest.raises(ConfigError, match="red_below"):
        QueuePolicy(red_below=0.8, green_above=0.5)
    with pytest.raises(ConfigError, match="lease"):
        QueuePolicy(lease=timedelta(0))
    with pytest.raises(ConfigError, match="no role may pull"):
        QueuePolicy(pull_roles=[])
    with pytest.raises(ConfigError, match="cannot be ordered by 'colour'"):
        QueuePolicy(order=["colour"])
    with pytest.raises(ConfigError, match="twice"):
        QueuePolicy(order=["tier", "-tier"])


def test_order_spec_appends_id_and_prints_back() -> None:
    order = queue.parse_order(["-tier", "score"])
    assert [str(f) for f in order] == ["-tier", "score", "id"]
    assert (
        SortField("tier", True),
        SortField("score", True),
        SortField("queued_at"),
        SortField("id"),
    ) == queue.DEFAULT_ORDER


scores = st.floats(allow_nan=False, allow_infinity=False, width=64)
# ids follow the id rule (model.ID_RULE): no control characters, no lone surrogates
ids = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=8).filter(
    lambda s: s.strip() != ""
)
opportunities = st.builds(
    opp,
    oid=ids,
    tier=st.integers(-(2**40), 2**40),
    score=scores,
    queued_at=st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    expires_at=st.none(),
)


def _tuple_key(o: Opportunity) -> tuple[object, ...]:
    return (-o.tier, -(o.score + 0.0), o.queued_at, o.id.encode("utf-8"))


@given(st.lists(opportunities, min_size=2, max_size=20, unique_by=lambda o: o.id))
def test_rank_bytes_sort_exactly_like_the_default_order(items: list[Opportunity]) -> None:
    by_rank = sorted(items, key=queue.rank_key)
    by_tuple = sorted(items, key=_tuple_key)
    assert [o.id for o in by_rank] == [o.id for o in by_tuple]


@given(a=ids, b=ids)
def test_text_ranks_keep_string_order_both_ways(a: str, b: str) -> None:
    up = queue.parse_order(["account_id"])
    down = queue.parse_order(["-account_id"])
    oa, ob = opp("x", account_id=a), opp("x", account_id=b)
    ka, kb = a.encode("utf-8"), b.encode("utf-8")
    assert (queue.rank_key(oa, up) < queue.rank_key(ob, up)) == (ka < kb)
    if ka != kb:
        assert (queue.rank_key(oa, down) < queue.rank_key(ob, down)) == (ka > kb)


def test_missing_values_sort_first_ascending_last_descending() -> None:
    a = opp("a", not_before=None)
    b = opp("b", not_before=T0)
    assert queue.rank_key(a, queue.parse_order(["not_before"])) < queue.rank_key(
        b, queue.parse_order(["not_before"])
    )
    assert queue.rank_key(a, queue.parse_order(["-not_before"])) > queue.rank_key(
        b, queue.parse_order(["-not_before"])
    )


# --- pulling ---------------------------------------------------------------------------


def test_only_pull_roles_may_pull() -> None:
    policy = QueuePolicy()
    with pytest.raises(RoleMayNotPull, match="'field_sales', which may not pull") as info:
        queue.check_may_pull(Member("f", "F", "field_sales"), policy)
    assert "pull_roles" in str(info.value)
    queue.check_may_pull(ANN, policy)
    queue.check_may_pull(
        Member("f", "F", "field_sales"), QueuePolicy(pull_roles=["inside_sales", "field_sales"])
    )


@pytest.mark.parametrize(
    ("held", "today", "asked", "count", "reason"),
    [
        (0, 0, 1, 1, None),
        (0, 0, 5, 2, "WIP limit 2 leaves room for 2"),
        (2, 0, 1, 0, "at WIP limit: holds 2 of 2"),
        (0, 30, 1, 0, "daily pull cap reached: 30 of 30 today"),
        (0, 29, 2, 1, "daily pull cap leaves 1 today"),
    ],
)
def test_pull_allowance(held: int, today: int, asked: int, count: int, reason: str | None) -> None:
    got = queue.pull_allowance(
        ANN, QueuePolicy(daily_pull_cap=30), held=held, pulled_today=today, requested=asked
    )
    assert got == queue.PullAllowance(count, reason)


def test_inactive_members_get_nothing() -> None:
    got = queue.pull_allowance(
        attrs.evolve(ANN, active=False), QueuePolicy(), held=0, pulled_today=0
    )
    assert got.count == 0
    assert got.reason is not None
    assert "inactive" in got.reason


@given(
    held=st.integers(0, 10),
    today=st.integers(0, 40),
    asked=st.integers(1, 10),
    wip=st.integers(1, 6),
    cap=st.one_of(st.none(), st.integers(1, 35)),
)
def test_allowance_never_exceeds_any_limit(
    held: int, today: int, asked: int, wip: int, cap: int | None
) -> None:
    member = attrs.evolve(ANN, wip_limit=wip)
    got = queue.pull_allowance(
        member, QueuePolicy(daily_pull_cap=cap), held=held, pulled_today=today, requested=asked
    )
    assert 0 <= got.count <= asked
    assert held + got.count <= max(wip, held)
    if cap is not None:
        assert today + got.count <= max(cap, today)
    assert (got.count < asked) == (got.reason is not None)


def test_daily_cap_counts_the_members_local_day() -> None:
    tokyo = attrs.evolve(ANN, time_zone="Asia/Tokyo")
    late_utc = datetime(2026, 1, 5, 20, tzinfo=UTC)  # already Jan 6 in Tokyo
    assert queue.pull_day(tokyo, late_utc) == date(2026, 1, 6)
    assert queue.pull_day(ANN, late_utc) == date(2026, 1, 5)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"status": OpportunityStatus.BACKLOG}, "not queued"),
        ({"not_before": T0 + timedelta(minutes=1)}, "not before"),
        ({"expires_at": T0}, "expired"),
        ({"excluded": {"ann"}}, "gave it back"),
        ({"required_skills": {"de", "fr"}}, "lacks: fr"),
    ],
)
def test_ineligibility_reasons(change: dict[str, object], why: str) -> None:
    o = attrs.evolve(opp(), **change)
    reason = queue.ineligibility(o, ANN, T0)
    assert reason is not None
    assert why in reason
    assert not queue.is_eligible(o, ANN, T0)


def test_eligible_when_everything_fits() -> None:
    o = opp(required_skills={"de"}, not_before=T0, expires_at=T0 + timedelta(seconds=1))
    assert queue.ineligibility(o, ANN, T0) is None
    assert queue.is_eligible(o, ANN, T0)


@given(
    o=opportunities,
    skills=st.sets(st.sampled_from(["de", "fr", "it"])),
    required=st.sets(st.sampled_from(["de", "fr", "it"])),
    excluded=st.booleans(),
)
def test_is_eligible_agrees_with_ineligibility(
    o: Opportunity, skills: set[str], required: set[str], excluded: bool
) -> None:
    member = attrs.evolve(ANN, skills=skills)
    o = attrs.evolve(o, required_skills=required, excluded={"ann"} if excluded else set())
    now = o.queued_at
    assert queue.is_eligible(o, member, now) == (queue.ineligibility(o, member, now) is None)


# --- transitions -------------------------------------------------------------------------


def test_release_resolve_and_give_back() -> None:
    policy = QueuePolicy(lease=timedelta(hours=1))
    step = queue.release(opp(), ANN, T0, policy)
    held = step.opportunity
    assert held.status is OpportunityStatus.RELEASED
    assert held.owner_id == "ann"
    assert held.lease_expires_at == T0 + timedelta(hours=1)
    with pytest.raises(WrongOwner, match="released to 'ann'"):
        queue.resolve(held, "bob", Outcome.WON, T0)
    done = queue.resolve(held, "ann", "won", T0).opportunity
    assert done.outcome is Outcome.WON
    assert done.status is OpportunityStatus.RESOLVED
    with pytest.raises(WrongState, match="not released"):
        queue.give_back(done, "ann", T0)
    back = queue.give_back(held, "ann", T0, "wrong language").opportunity
    assert back.status is OpportunityStatus.QUEUED
    assert back.excluded == {"ann"}
    with pytest.raises(WrongState, match="gave it back"):
        queue.release(back, ANN, T0, policy)


def test_leases_expire_only_when_due() -> None:
    held = queue.release(opp(), ANN, T0, QueuePolicy(lease=timedelta(hours=1))).opportunity
    assert not queue.lease_has_expired(held, T0 + timedelta(minutes=59))
    with pytest.raises(WrongState):
        queue.expire_lease(held, T0 + timedelta(minutes=59))
    step = queue.expire_lease(held, T0 + timedelta(hours=1))
    assert step.opportunity.status is OpportunityStatus.QUEUED
    assert step.opportunity.excluded == frozenset()  # an expired lease does not exclude
    forever = queue.release(opp(), ANN, T0, QueuePolicy(lease=None)).opportunity
    assert not queue.lease_has_expired(forever, T0 + timedelta(days=999))


def test_staleness_and_expiry() -> None:
    policy = QueuePolicy(stale_age=timedelta(days=2))
    o = opp()
    assert not queue.is_stale(o, T0 + timedelta(days=2) - timedelta(seconds=1), policy)
    assert queue.is_stale(o, T0 + timedelta(days=2), policy)
    assert queue.retire_stale(o, T0 + timedelta(days=3), policy).opportunity.status is (
        OpportunityStatus.NURTURE
    )
    assert not queue.is_stale(o, T0 + timedelta(days=30), QueuePolicy(stale_age=None))
    e = opp(expires_at=T0 + timedelta(hours=1))
    assert not queue.is_expired(e, T0)
    assert queue.expire(e, T0 + timedelta(hours=1)).opportunity.status is (
        OpportunityStatus.EXPIRED
    )
    with pytest.raises(WrongState):
        queue.expire(e, T0)


# --- the buffer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "zone"),
    [
        (0, Zone.RED),
        (32, Zone.RED),
        (33, Zone.YELLOW),
        (50, Zone.YELLOW),
        (66, Zone.YELLOW),
        (67, Zone.GREEN),
        (100, Zone.GREEN),
        (140, Zone.GREEN),
    ],
)
def test_buffer_zones_by_thirds(level: int, zone: Zone) -> None:
    assert queue.buffer_zone(level, 99, QueuePolicy(target=99)) is zone


@given(level=st.integers(0, 300), available=st.integers(0, 300), target=st.integers(0, 200))
def test_replenishment_tops_up_to_target_never_above(
    level: int, available: int, target: int
) -> None:
    plan = queue.plan_replenishment(level, available, QueuePolicy(target=target))
    assert 0 <= plan.to_move <= available
    assert plan.level_after == level + plan.to_move
    assert plan.level_after <= max(target, level)
    if available >= target - level:
        assert plan.level_after == max(target, level)
    assert plan.shortfall == max(0, target - plan.level_after)
