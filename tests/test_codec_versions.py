"""The codec: exact round trips, schema versions, upcasters, and the too-new error."""

import enum
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import codec
from spe_core.errors import ConfigError, StoreError
from spe_core.events import EVENT_TYPES, Event, OpportunityReleased, event_type
from spe_core.model import Location, Opportunity, OpportunityStatus, Role, TimeWindow

AT = datetime(2026, 12, 7, 9, tzinfo=UTC)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registrations made by a test are undone after it."""
    for name in ("_VALUES", "_VERSIONS", "_UPCASTERS", "_DECODERS"):
        monkeypatch.setattr(codec, name, dict(getattr(codec, name)))
    saved = dict(EVENT_TYPES)
    yield
    EVENT_TYPES.clear()
    EVENT_TYPES.update(saved)


# --- exact round trips ----------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@codec.register_value
@attrs.frozen
class Bag:
    """A value with a field of every kind the codec keeps (test only)."""

    at: datetime
    maybe_at: datetime | None
    day: date
    clock: time
    span: timedelta
    tags: frozenset[str]
    numbers: tuple[int, ...]
    pair: tuple[str, float]
    counts: dict[str, int]
    role: Role
    colour: Colour
    place: Location | None
    windows: tuple[TimeWindow, ...]
    anything: Any


offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)
spans = st.timedeltas(min_value=timedelta.min, max_value=timedelta.max)
windows = st.tuples(aware, st.timedeltas(timedelta(microseconds=1), timedelta(days=30))).map(
    lambda p: TimeWindow(p[0], p[0] + p[1])
)
places = st.builds(
    Location,
    st.floats(-90, 90),
    st.floats(-180, 180),
    st.none() | st.text(max_size=5),
)
plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | aware | spans,
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple)
        | st.frozensets(st.integers() | st.text(max_size=3), max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
bags = st.builds(
    Bag,
    at=aware,
    maybe_at=st.none() | aware,
    day=st.dates(),
    clock=st.times(),
    span=spans,
    tags=st.frozensets(st.text(max_size=4), max_size=4),
    numbers=st.lists(st.integers(), max_size=4).map(tuple),
    pair=st.tuples(st.text(max_size=3), st.floats(allow_nan=False)),
    counts=st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    role=st.sampled_from(Role),
    colour=st.sampled_from(Colour),
    place=st.none() | places,
    windows=st.lists(windows, max_size=2).map(tuple),
    anything=plain,
)


def same(a: Any, b: Any) -> bool:
    """Equal, of the same type, and datetimes with the same UTC offset, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if attrs.has(type(a)):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    return bool(a == b)


@given(bags)
def test_every_kind_of_field_round_trips_exactly(bag: Bag) -> None:
    text = codec.dumps(bag)
    assert same(codec.loads(text), bag)
    assert same(codec.decode(json.loads(text)), bag)


@given(spans)
def test_timedeltas_round_trip_to_the_microsecond(span: timedelta) -> None:
    assert codec.loads(codec.dumps(span)) == span


def test_values_and_events_are_written_with_their_version() -> None:
    opp = Opportunity("o1", "a1", AT)
    event = OpportunityReleased(at=AT, opportunity_id="o1", member_id="m1", lease_expires_at=None)
    assert json.loads(codec.dumps(opp))["$v"] == 2  # external_ids became a mapping
    assert json.loads(codec.dumps(event))["$v"] == OpportunityReleased.version == 1
    assert codec.schema_version(Opportunity) == 2


def test_data_without_a_version_reads_as_version_1() -> None:
    stored = json.loads(codec.dumps(Opportunity("o1", "a1", AT)))
    del stored["$v"]
    assert codec.decode(stored) == Opportunity("o1", "a1", AT)


# --- upcasters --------------------------------------------------------------------------


def released_v2() -> type[Event]:
    """Version 2 of ``opportunity.released``: ``member_id`` renamed to ``holder_id``."""

    @attrs.frozen(kw_only=True)
    class OpportunityReleasedV2(Event):
        kind: ClassVar[str] = "opportunity.released"
        version: ClassVar[int] = 2
        opportunity_id: str
        holder_id: str
        lease_expires_at: datetime | None

    return OpportunityReleasedV2


def test_an_upcaster_renames_an_event_field(registry: None) -> None:
    old = OpportunityReleased(
        at=AT, opportunity_id="o1", member_id="m1", lease_expires_at=AT + timedelta(hours=4)
    )
    text = codec.dumps(old)  # as the release with version 1 wrote it
    del EVENT_TYPES["opportunity.released"]
    v2 = event_type(released_v2())
    with pytest.raises(StoreError, match="no upcaster turns it into version 2"):
        codec.loads(text)

    @codec.upcaster("opportunity.released", 1)
    def _rename(fields: dict[str, Any]) -> dict[str, Any]:
        assert "$event" not in fields and fields["lease_expires_at"] == {
            "$dt": "2026-12-07T13:00:00+00:00"
        }
        fields["holder_id"] = fields.pop("member_id")
        return fields

    new = codec.loads(text)
    assert type(new) is v2
    assert (new.holder_id, new.lease_expires_at) == ("m1", AT + timedelta(hours=4))  # type: ignore[attr-defined]
    assert json.loads(codec.dumps(new))["$v"] == 2
    assert codec.loads(codec.dumps(new)) == new  # version 2 data needs no upcaster


def test_upcasters_chain_in_order_and_reach_nested_values(registry: None) -> None:
    @codec.register_value
    @attrs.frozen
    class Note:
        text: str

    @codec.register_value
    @attrs.frozen
    class Folder:
        notes: tuple[Note, ...]

    text = codec.dumps(Folder((Note("hi"), Note("yo"))))

    @codec.register_value
    @attrs.frozen
    class Note:  # type: ignore[no-redef]  # version 3: text -> body -> body + lang
        version: ClassVar[int] = 3
        body: str
        lang: str

    calls: list[int] = []

    def v1(fields: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return {"body": fields["text"]}

    def v2(fields: dict[str, Any]) -> dict[str, Any]:
        calls.append(2)
        return {**fields, "lang": "en"}

    codec.register_upcaster("Note", 2, v2)
    codec.register_upcaster(Note, 1, v1)
    folder = codec.loads(text)
    assert [(n.body, n.lang) for n in folder.notes] == [("hi", "en"), ("yo", "en")]
    assert calls == [1, 2, 1, 2]


def test_a_version_newer_than_this_release_is_refused_clearly() -> None:
    stored = json.loads(
        codec.dumps(
            OpportunityReleased(at=AT, opportunity_id="o1", member_id="m1", lease_expires_at=None)
        )
    )
    stored["$v"] = 7
    with pytest.raises(StoreError) as info:
        codec.decode(stored)
    message = str(info.value)
    assert "'opportunity.released' has schema version 7" in message
    assert "only up to version 1" in message and "upgrade spe-sdk" in message
    nested = json.loads(codec.dumps(Opportunity("o1", "a1", AT)))
    nested["$v"] = 3
    with pytest.raises(StoreError, match="'Opportunity' has schema version 3"):
        codec.decode(
            {"$event": "opportunity.queued", "at": {"$dt": AT.isoformat()}, "opportunity": nested}
        )


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, True, None])
def test_a_damaged_version_is_a_store_error(bad: object) -> None:
    stored = json.loads(codec.dumps(Opportunity("o1", "a1", AT)))
    stored["$v"] = bad
    with pytest.raises(StoreError, match="schema version"):
        codec.decode(stored)


def test_damaged_fields_are_a_store_error_naming_the_fix() -> None:
    stored = json.loads(codec.dumps(Opportunity("o1", "a1", AT)))
    del stored["account_id"]
    with pytest.raises(StoreError, match=r"'Opportunity' \(schema version 2\).*'account_id'"):
        codec.decode(stored)
    stored = json.loads(codec.dumps(Opportunity("o1", "a1", AT)))
    stored["status"] = "on_the_moon"
    with pytest.raises(StoreError, match="could not be decoded"):
        codec.decode(stored)
    with pytest.raises(StoreError, match=r"unknown event kind 'no\.such'"):
        codec.decode({"$event": "no.such", "$v": 1})


def test_a_failing_upcaster_is_named_in_the_error(registry: None) -> None:
    @codec.register_value
    @attrs.frozen
    class Memo:
        text: str

    text = codec.dumps(Memo("hi"))

    @codec.register_value
    @attrs.frozen
    class Memo:  # type: ignore[no-redef]
        version: ClassVar[int] = 3
        body: str

    def broken(fields: dict[str, Any]) -> dict[str, Any]:
        return {"body": fields["txt"]}

    codec.register_upcaster("Memo", 1, broken)
    with pytest.raises(StoreError, match=r"upcaster of 'Memo' from version 1 failed .*broken"):
        codec.loads(text)
    codec.register_upcaster("Memo", 2, lambda f: None)  # type: ignore[arg-type,return-value]
    codec._UPCASTERS[("Memo", 1)] = lambda f: {"body": f["text"]}
    with pytest.raises(StoreError, match="returned a NoneType, not a dict"):
        codec.loads(text)


def test_text_that_is_not_json_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="not JSON"):
        codec.loads('{"$type": "Opportunity", ')


def test_registration_errors_are_config_errors(registry: None) -> None:
    def step(fields: dict[str, Any]) -> dict[str, Any]:
        return fields

    codec.register_upcaster("Thing", 1, step)
    codec.register_upcaster("Thing", 1, step)  # the same function again is harmless
    with pytest.raises(ConfigError, match="already has an upcaster from version 1"):
        codec.register_upcaster("Thing", 1, lambda f: f)
    with pytest.raises(ConfigError, match="whole number from 1"):
        codec.register_upcaster("Thing", 0, step)

    @attrs.frozen
    class Bad:
        version: ClassVar[int] = 0
        x: int

    with pytest.raises(ConfigError, match=r"Bad\.version is 0"):
        codec.register_value(Bad)
    with pytest.raises(ConfigError, match="not an attrs class"):
        codec.register_value(int)
    with pytest.raises(ConfigError, match="has no schema version"):
        codec.schema_version(str)

    @attrs.frozen(kw_only=True)
    class BadEvent(Event):
        kind: ClassVar[str] = "test.bad_version"
        version: ClassVar[int] = -3

    with pytest.raises(ConfigError, match="has version -3"):
        event_type(BadEvent)

    @attrs.frozen(kw_only=True)
    class Twice(Event):
        kind: ClassVar[str] = "opportunity.released"

    with pytest.raises(ConfigError, match="registered twice"):
        event_type(Twice)


def test_stored_state_still_matches_a_status_enum() -> None:
    opp = Opportunity("o1", "a1", AT, status="released", owner_id="m1", released_at=AT)
    back = codec.loads(codec.dumps(opp))
    assert back.status is OpportunityStatus.RELEASED


def test_version_1_external_ids_pairs_read_back_as_a_mapping() -> None:
    opp = Opportunity("o1", "a1", AT, external_ids={"hubspot": "7", "salesforce": "006A"})
    stored = json.loads(codec.dumps(opp))
    stored["$v"] = 1  # as 0.1.0.dev0 wrote it: a tuple of (CRM, id) tuples
    stored["external_ids"] = {
        "$tuple": [{"$tuple": ["hubspot", "7"]}, {"$tuple": ["salesforce", "006A"]}]
    }
    back = codec.loads(json.dumps(stored))
    assert back == opp
    assert back.external_ids["hubspot"] == "7" and back.external_ids == {
        "hubspot": "7",
        "salesforce": "006A",
    }
