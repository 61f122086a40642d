"""A database written by an earlier release opens and replays to the state it held.

``tests/fixtures/spe-<release>.db`` was written by that release's code
(``tests/fixtures/make_release_db.py``, run against that release) together
with ``spe-<release>.json``, the state the store held, in that release's
encoding. Each release must read every earlier fixture: when a stored class
changes its fields, its version goes up and an upcaster keeps these passing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from spe_core import codec
from spe_core.engine import Engine
from spe_core.events import (
    EVENT_TYPES,
    OpportunityReleased,
    Recorded,
    replay,
    replay_bookings,
    replay_tasks,
)
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.testing import FakeClock

FIXTURES = Path(__file__).parent / "fixtures"
RELEASES = sorted(p.stem for p in FIXTURES.glob("spe-*.db"))
FAR = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def test_there_is_a_fixture() -> None:
    assert "spe-0.1.0.dev0" in RELEASES


@pytest.fixture(params=RELEASES)
def release(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Store, dict[str, Any]]]:
    """A copy of a release's database, opened with this code, and its expected state."""
    name: str = request.param
    copy = tmp_path / f"{name}.db"
    shutil.copy(FIXTURES / f"{name}.db", copy)
    store = open_store(f"sqlite:///{copy}")
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    yield store, expected
    store.close()


def decoded(expected: dict[str, Any], key: str) -> list[Any]:
    return [codec.decode(item) for item in expected[key]]


def test_the_log_replays_to_the_state_the_release_held(
    release: tuple[Store, dict[str, Any]],
) -> None:
    store, expected = release
    log = list(store.events())
    assert len(log) == expected["events"]
    assert [r.seq for r in log] == list(range(1, len(log) + 1))
    assert {r.event.kind for r in log} == set(expected["event_kinds"])
    assert all(type(r.event) is EVENT_TYPES[r.event.kind] for r in log)

    opportunities = {o.id: o for o in decoded(expected, "opportunities")}
    assert replay(log) == opportunities
    assert {o.id: o for o in store.opportunities()} == opportunities

    tasks = {t.id: t for t in decoded(expected, "tasks")}
    bookings = {b.id: b for b in decoded(expected, "bookings")}
    assert replay_tasks(log) == tasks
    assert replay_bookings(log) == bookings
    with store.transaction() as tx:
        assert {t: tx.get_task(t) for t in tasks} == tasks
        assert {b: tx.get_booking(b) for b in bookings} == bookings
        members = sorted(tx.members(), key=lambda m: m.id)
        busy = [b for m in members for b in tx.iter_busy(m.id, *FAR)]
        assert members == decoded(expected, "members")
        assert busy == decoded(expected, "busy")
        assert tx.outbox_items("dictcrm") == decoded(expected, "outbox")
        assert tx.quarantined("dictcrm") == decoded(expected, "quarantined")


def test_every_stored_event_reencodes_with_its_version(
    release: tuple[Store, dict[str, Any]],
) -> None:
    store, _ = release
    for recorded in store.events():
        data = json.loads(codec.dumps(recorded.event))
        assert data["$v"] == type(recorded.event).version
        assert codec.decode(data) == recorded.event


def test_the_engine_carries_on_with_the_old_database(
    release: tuple[Store, dict[str, Any]],
) -> None:
    store, _ = release
    last = list(store.events())[-1]
    clock = FakeClock(max(last.event.at, datetime(2027, 1, 4, 9, tzinfo=UTC)))
    engine = Engine(store, clock=clock, plugins=Plugins.create(entry_points=False))
    queued = engine.queue_status().level
    assert queued > 0
    (pulled,) = engine.pull("i1").released
    log = list(store.events())
    assert isinstance(log[-1], Recorded) and isinstance(log[-1].event, OpportunityReleased)
    assert replay(log)[pulled.id] == engine.opportunity(pulled.id)


def test_an_upcaster_reads_the_old_database_into_a_changed_event(
    release: tuple[Store, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a release renaming ``member_id`` of ``opportunity.released`` must ship."""
    from tests.test_codec_versions import released_v2

    store, _ = release
    old = [r.event for r in store.events() if isinstance(r.event, OpportunityReleased)]
    assert old
    for name in ("_UPCASTERS", "_DECODERS"):
        monkeypatch.setattr(codec, name, dict(getattr(codec, name)))
    monkeypatch.setitem(EVENT_TYPES, "opportunity.released", released_v2())

    def rename(fields: dict[str, Any]) -> dict[str, Any]:
        fields["holder_id"] = fields.pop("member_id")
        return fields

    codec.register_upcaster("opportunity.released", 1, rename)
    new = [r.event for r in store.events() if r.event.kind == "opportunity.released"]
    assert [(e.at, e.holder_id) for e in new] == [(e.at, e.member_id) for e in old]  # type: ignore[attr-defined]
    assert all(
        attrs.asdict(e)["lease_expires_at"] == o.lease_expires_at
        for e, o in zip(new, old, strict=True)
    )
