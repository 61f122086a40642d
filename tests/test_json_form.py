"""Values hand on well: mappings are read-only mappings, and every value has a JSON form
(``spe_core.to_json`` / ``spe_core.from_json``, the codec the stores use) that round-trips."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, time, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import spe_core
from spe_core import (
    Absence,
    AppointmentRequest,
    Booking,
    Busy,
    CalendarRules,
    Change,
    DayHours,
    FrozenMap,
    InvalidValue,
    Location,
    Member,
    MemberSettings,
    Opportunity,
    QueuePolicy,
    Role,
    RoutingTable,
    SourceRecord,
    Task,
    TimeWindow,
    WorkingHours,
    from_json,
    to_json,
)
from spe_core.clock import FakeClock
from spe_core.engine import Engine
from spe_core.store import open_store

T0 = datetime(2026, 12, 7, 9, tzinfo=UTC)

ids = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
instants = st.integers(0, 400 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m))
crm_ids = st.dictionaries(st.sampled_from(["hubspot", "salesforce", "pipedrive"]), ids, max_size=3)
skills = st.frozensets(st.sampled_from(["de", "fr", "cad", "sap"]), max_size=3)
locations = st.builds(
    Location,
    st.floats(-80, 80, allow_nan=False),
    st.floats(-179, 179, allow_nan=False),
    st.none() | st.just("Rue 1"),
)


@st.composite
def day_hours(draw: st.DrawFn) -> DayHours:
    start = draw(st.integers(0, 10))
    return DayHours(draw(st.integers(0, 6)), time(start), time(start + draw(st.integers(1, 12))))


@st.composite
def spans(draw: st.DrawFn) -> tuple[datetime, datetime]:
    start = draw(instants)
    return start, start + timedelta(minutes=draw(st.integers(1, 5000)))


working_hours = st.lists(day_hours(), max_size=7, unique_by=lambda d: d.weekday).map(
    lambda days: WorkingHours(tuple(days)) if days else WorkingHours.weekdays()
)
absences = spans().map(lambda s: Absence(*s))
windows = spans().map(lambda s: TimeWindow(*s))
members = st.builds(
    Member,
    ids,
    st.just("Ann"),
    st.sampled_from(list(Role)),
    skills=skills,
    time_zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]),
    wip_limit=st.none() | st.integers(1, 9),
    weight=st.floats(0.5, 3),
    working_hours=working_hours,
    absences=st.lists(absences, max_size=2).map(tuple),
    home_base=st.none() | locations,
    external_ids=crm_ids,
)
opportunities = st.builds(
    Opportunity,
    ids,
    ids,
    instants,
    tier=st.integers(-3, 3),
    score=st.floats(-10, 10),
    required_skills=skills,
    external_ids=crm_ids,
)
tasks = st.builds(
    Task,
    ids,
    ids,
    ids,
    instants,
    priority=st.integers(1, 4),
    due_at=st.none() | instants,
    required_skills=skills,
    external_ids=crm_ids,
)


@st.composite
def requests(draw: st.DrawFn) -> AppointmentRequest:
    earliest = draw(instants)
    visit = draw(st.booleans())
    return AppointmentRequest(
        draw(ids),
        draw(ids),
        timedelta(minutes=draw(st.integers(15, 120))),
        "in_person" if visit else "conference_call",
        earliest,
        earliest + timedelta(days=draw(st.integers(1, 20))),
        location=draw(locations) if visit else None,
        windows=tuple(draw(st.lists(windows, max_size=2))),
        required_skills=draw(skills),
        external_ids=draw(crm_ids),
    )


@st.composite
def bookings(draw: st.DrawFn) -> Booking:
    request = draw(requests())
    return Booking(
        request,
        draw(ids),
        request.earliest,
        draw(ids),
        draw(instants),
        external_ids=draw(crm_ids),
    )


busy = st.builds(lambda i, m, s: Busy(i, m, *s), ids, ids, spans())
changes = st.builds(
    Change,
    st.sampled_from(["opportunity", "task", "booking"]),
    ids,
    st.dictionaries(ids, st.none() | ids | instants | st.integers(0, 9), max_size=4),
    crm_id=st.none() | ids,
)
records = st.builds(
    SourceRecord,
    ids,
    ids,
    instants,
    st.dictionaries(ids, st.none() | ids | st.floats(allow_nan=False), max_size=4),
)
values = st.one_of(
    members,
    opportunities,
    tasks,
    requests(),
    bookings(),
    busy,
    locations,
    day_hours(),
    working_hours,
    absences,
    windows,
    changes,
    records,
    st.just(QueuePolicy()),
    st.just(RoutingTable()),
    st.just(CalendarRules()),
    st.builds(MemberSettings, ids, st.just({"wip_limit": 3})),
)


@given(values)
def test_every_value_round_trips_through_its_json_form(value: Any) -> None:
    text = to_json(value)
    back = from_json(text, type(value))
    assert back == value and type(back) is type(value)
    if not isinstance(value, RoutingTable):  # its routes and SLAs are still dicts
        assert hash(back) == hash(value)  # values stay hashable, mappings included
    assert to_json(back) == text


def test_the_engines_events_round_trip_through_their_json_form() -> None:
    clock = FakeClock(T0)
    engine = Engine(open_store("memory:"), clock=clock)
    engine.upsert_members([Member("ann", "Ann", "inside_sales", external_ids={"hubspot": "1"})])
    engine.enqueue([Opportunity("o1", "a1", T0, external_ids={"hubspot": "9"})])
    engine.pull("ann")
    engine.resolve("o1", "ann", "won")
    engine.route_tasks([Task("t1", "quote", "a1", T0)])
    events = [r.event for r in engine.store.events()]
    assert len({type(e) for e in events}) >= 4
    for event in events:
        assert from_json(to_json(event), type(event)) == event


def test_from_json_refuses_text_of_another_type_or_no_json() -> None:
    text = to_json(Busy("b1", "ann", T0, T0 + timedelta(hours=1)))
    with pytest.raises(InvalidValue, match=r"holds a Busy, not a Member"):
        from_json(text, Member)
    with pytest.raises(InvalidValue, match="to_json"):
        from_json("{not json", Member)
    with pytest.raises(InvalidValue, match="object"):
        to_json(object())


# --- mappings are mappings ------------------------------------------------------------------


def test_external_ids_read_back_as_the_mapping_given() -> None:
    member = Member("m1", "Ann", "inside_sales", external_ids={"hubspot": 7})
    assert member.external_ids == {"hubspot": "7"}
    assert member.external_ids["hubspot"] == "7" and dict(member.external_ids) == {"hubspot": "7"}
    assert member.external_id("hubspot") == "7" and member.external_id("sf") is None
    assert isinstance(member.external_ids, FrozenMap)
    opp = Opportunity("o1", "a1", T0, external_ids=[("salesforce", "006")])
    task = Task("t1", "quote", "a1", T0, external_ids={"salesforce": "00T"})
    assert opp.external_ids == {"salesforce": "006"} and task.external_ids["salesforce"] == "00T"
    assert Opportunity("o2", "a1", T0).external_ids == {}
    assert hash(member) == hash(attrs.evolve(member))


def test_change_values_and_record_fields_read_by_key() -> None:
    change = Change("opportunity", "o1", {"status": "released", "owner": "005"})
    assert change.values["status"] == "released" and change.values.get("nope") is None
    assert change.data == {"status": "released", "owner": "005"}
    record = SourceRecord("deals", "1", T0, {"Name": "Acme", "Amount": 3})
    assert record.fields["Name"] == "Acme" and record.data == {"Name": "Acme", "Amount": 3}
    hash(change)
    with pytest.raises(InvalidValue, match="mapping"):
        Change("opportunity", "o1", "status")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="pair"):
        Change("opportunity", "o1", [("status",)])  # type: ignore[list-item]


def test_frozen_maps_are_read_only_and_hashable() -> None:
    ids = Member("m1", "Ann", "inside_sales", external_ids={"hubspot": "7"}).external_ids
    with pytest.raises(TypeError):
        ids["salesforce"] = "1"  # type: ignore[index]
    with pytest.raises(AttributeError):
        ids._items = {}  # type: ignore[misc]
    assert hash(FrozenMap({"a": 1, "b": 2})) == hash(FrozenMap([("b", 2), ("a", 1)]))
    assert FrozenMap({"a": 1}) == {"a": 1} and FrozenMap({"a": 1}) != {"a": 2}
    assert (ids | {"salesforce": "1"}) == {"hubspot": "7", "salesforce": "1"}
    assert pickle.loads(pickle.dumps(ids)) == ids
    changed = attrs.evolve(
        Member("m1", "Ann", "inside_sales"), external_ids=ids | {"salesforce": "005"}
    )
    assert list(changed.external_ids) == ["hubspot", "salesforce"]
    with pytest.raises(InvalidValue, match="external_ids"):
        Member("m1", "Ann", "inside_sales", external_ids=FrozenMap({"hubspot": ""}))


def test_the_new_names_are_exported() -> None:
    assert {"FrozenMap", "to_json", "from_json"} <= set(spe_core.__all__)
