"""The sync engine against the in-memory reference CRM (DictCrm), on every store."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spe_core import Engine, Opportunity, OpportunityStatus, QueuePolicy
from spe_core.adapter import Inbound, SourceRecord
from spe_core.errors import CrmUnreachable, TryLater
from spe_core.events import OpportunityLinked, RecordQuarantined, SyncConflict, replay
from spe_core.outbox import RetryPolicy
from spe_core.plugins import Plugins
from spe_core.store.base import Store
from spe_core.store.memory import MemoryStore
from spe_core.sync import SyncEngine, SyncSettings
from spe_core.testing import FakeClock
from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter


@pytest.fixture
def crm(clock: FakeClock) -> DictCrm:
    crm = DictCrm(clock)
    crm.add_user("U1", "Ana", "inside_sales")
    crm.add_user("U2", "Ben", "inside_sales")
    crm.add_user("U9", "Integration", "promotions")
    for i in range(7):
        crm.add_record(Account=f"A{i}", Tier=i % 2, Score=i, Status="queued", Owner="U9")
    crm.add_record(Account="A99", Status="won", Owner="U1")  # not in SPE's flow
    clock.advance(minutes=10)
    return crm


def make(
    store: Store, clock: FakeClock, crm: DictCrm, settings: SyncSettings | None = None
) -> tuple[Engine, SyncEngine, list[float]]:
    engine = Engine(
        store,
        clock=clock,
        policy=QueuePolicy(target=10),
        plugins=Plugins.create(entry_points=False),
    )
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds=seconds)

    sync = SyncEngine(engine, DictCrmAdapter(crm), settings, sleep=sleep)
    return engine, sync, slept


def bring_in(engine: Engine, sync: SyncEngine) -> None:
    """Sync the CRM's queued records in, move them into the queue, confirm it to the CRM."""
    sync.run()
    engine.replenish()
    sync.run()


def test_inbound_then_outbound_round_trip(store: Store, clock: FakeClock, crm: DictCrm) -> None:
    engine, sync, _ = make(store, clock, crm)
    report = sync.run()
    assert report.streams["members"].applied == 3
    assert report.streams["opportunities"].applied == 7
    assert report.streams["opportunities"].ignored == 1
    # records marked queued in the CRM wait in the backlog; replenishment decides
    assert (engine.queue_status().level, engine.queue_status().backlog) == (0, 7)
    # the bookmark never passes the signpost (run start minus the skew allowance)
    assert sync.bookmark("opportunities") == clock.now() - timedelta(minutes=10)
    assert len(engine.replenish().moved) == 7
    assert sync.run().written == 7  # SPE's queue, confirmed in the CRM
    pulled = engine.pull("u-U1", 2).released
    engine.resolve(pulled[0].id, "u-U1", "appointment_set")
    report = sync.run()
    assert report.staged == 3 and report.written == 2  # coalesced per record
    first, second = (crm.by_key(o.id) for o in pulled)
    assert first is not None and second is not None
    assert (first["Status"], first["Owner"]) == ("appointment_set", "U1")
    assert (second["Status"], second["Owner"]) == ("released", "U1")
    # a second run reads its own writes back (>=) and changes nothing
    again = sync.run()
    assert again.applied == 0 and again.written == 0 and again.conflicts == 0
    assert replay(store.events()) == {o.id: o for o in store.opportunities()}


def test_malformed_record_is_quarantined_and_the_rest_syncs(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    crm.add_record(Account="", Status="queued")
    _, sync, _ = make(store, clock, crm)
    report = sync.run()
    assert report.streams["opportunities"].quarantined == 1
    assert report.streams["opportunities"].applied == 7
    (bad,) = sync.quarantined()
    assert bad.direction == "inbound" and "no Account" in bad.reason and "Fix:" in bad.reason
    assert any(isinstance(r.event, RecordQuarantined) for r in store.events())


def test_transient_failures_back_off_and_converge(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    engine, sync, slept = make(store, clock, crm)
    bring_in(engine, sync)
    for member in ("u-U1", "u-U2"):
        engine.pull(member, 3)
    crm.transient_failures = 3
    report = sync.run()
    assert report.retried == 3
    assert len(slept) == 3 and all(s >= 2.0 for s in slept)  # honours retry-after
    assert report.written == 6 and report.pending == 0
    released = [r for r in crm.records.values() if r.get("Status") == "released"]
    assert len(released) == 6


def test_record_failures_retry_then_quarantine(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    settings = SyncSettings(retry=RetryPolicy(base_seconds=1, max_permanent_failures=3))
    engine, sync, _ = make(store, clock, crm, settings)
    bring_in(engine, sync)
    locked, invalid = (o.id for o in engine.pull("u-U1", 2).released)
    crm.failing_keys = {locked: True, invalid: False}
    report = sync.run()
    assert report.quarantined_outbound == 1
    assert [q.key for q in sync.quarantined()] == [invalid]
    del crm.failing_keys[locked]
    clock.advance(minutes=5)
    assert sync.run().written == 1
    record = crm.by_key(locked)
    assert record is not None and record["Status"] == "released"


def test_conflict_crm_wins_withdraws(store: Store, clock: FakeClock, crm: DictCrm) -> None:
    engine, sync, _ = make(store, clock, crm)
    bring_in(engine, sync)
    (opp,) = engine.pull("u-U1").released
    sync.run()
    record = crm.by_key(opp.id)
    assert record is not None
    clock.advance(minutes=30)
    crm.edit(record["Id"], Owner="U2")  # a manager reassigns it by hand
    clock.advance(minutes=10)
    report = sync.run()
    assert report.conflicts == 1
    assert engine.opportunity(opp.id).status is OpportunityStatus.WITHDRAWN
    assert crm.by_key(opp.id)["Owner"] == "U2"  # type: ignore[index]  # never overwritten
    conflict = next(r.event for r in store.events() if isinstance(r.event, SyncConflict))
    assert (conflict.spe_value, conflict.crm_value) == ("U1", "U2")


def test_conflict_spe_wins_rewrites(store: Store, clock: FakeClock, crm: DictCrm) -> None:
    engine, sync, _ = make(store, clock, crm, SyncSettings(conflicts="spe_wins"))
    bring_in(engine, sync)
    (opp,) = engine.pull("u-U1").released
    sync.run()
    record = crm.by_key(opp.id)
    assert record is not None
    clock.advance(minutes=30)
    crm.edit(record["Id"], Owner="U2")
    clock.advance(minutes=10)
    assert sync.run().conflicts == 1
    assert crm.by_key(opp.id)["Owner"] == "U1"  # type: ignore[index]
    assert engine.opportunity(opp.id).status is OpportunityStatus.RELEASED


def test_opportunities_created_in_spe_are_upserted_and_linked(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    from spe_core import Opportunity

    engine, sync, _ = make(store, clock, crm)
    sync.run()
    engine.enqueue([Opportunity("spe-1", "A1", clock.now(), tier=5)])
    sync.run()
    sync.run()
    records = [r for r in crm.records.values() if r.get("Key") == "spe-1"]
    assert len(records) == 1
    linked = [r.event for r in store.events() if isinstance(r.event, OpportunityLinked)]
    assert [e.crm_id for e in linked] == [records[0]["Id"]]
    assert engine.opportunity("spe-1").external_id("dictcrm") == records[0]["Id"]


def test_dry_run_writes_nothing(store: Store, clock: FakeClock, crm: DictCrm) -> None:
    engine, sync, _ = make(store, clock, crm)
    report = sync.run(dry_run=True)
    # it tells what a run would apply (the won record is not SPE's), and applies nothing
    assert (report.read, report.applied, report.ignored) == (11, 10, 1)
    assert engine.queue_status().level == 0
    assert list(store.events()) == []


class CountingAdapter(DictCrmAdapter):
    """The reference adapter, counting the records it is asked to map."""

    mapped = 0

    def to_inbound(self, record: SourceRecord) -> Inbound:
        self.mapped += 1
        return super().to_inbound(record)


def test_rereads_of_applied_versions_are_not_mapped_again(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    engine = Engine(store, clock=clock, policy=QueuePolicy(target=10))
    adapter = CountingAdapter(crm)
    sync = SyncEngine(engine, adapter, sleep=lambda s: None)
    sync.run()
    assert adapter.mapped == 11  # 3 users, 8 records
    clock.advance(minutes=1)  # still inside the skew window: every record comes again
    report = sync.run()
    assert report.read == 11 and report.applied == 0
    assert sum(s.unchanged for s in report.streams.values()) == 11
    assert adapter.mapped == 11  # none mapped twice
    # a record edited since is mapped and applied again, even within the same second
    (record_id, record) = next(iter(crm.records.items()))
    crm.edit(record_id, Owner="U2")
    assert record["Modified"] == clock.now()
    report = sync.run()
    assert adapter.mapped == 12  # the edited record only
    # the window holds the records the next read returns (at or after the bookmark),
    # and forgets the others once the bookmark has passed them
    assert list(store_window(store)) == [record_id]  # the others are behind the signpost
    clock.advance(hours=1)
    newer = crm.add_record(Account="A7", Status="queued", Owner="U9")
    clock.advance(hours=1)
    sync.run()
    assert list(store_window(store)) == [newer]
    assert replay(store.events()) == {o.id: o for o in store.opportunities()}


def store_window(store: Store) -> dict[str, object]:
    import json

    with store.transaction() as tx:
        value = tx.get_meta("sync:dictcrm:opportunities:window")
    return {} if value is None else dict(json.loads(value))


def test_same_instant_edit_after_a_write_is_still_seen(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    """Reads use >= because a CRM's stamps are coarse: an edit stamped in the same
    instant as SPE's write (same modification time) must still be read and applied."""
    engine, sync, _ = make(store, clock, crm)
    bring_in(engine, sync)
    (opp,) = engine.pull("u-U1").released
    sync.run()
    assert sync.run().applied == 0  # reads SPE's write back: that version is applied
    record = crm.by_key(opp.id)
    assert record is not None and record["Owner"] == "U1"
    stamp = record["Modified"]
    crm.edit(record["Id"], Owner="U2")  # the same instant as SPE's write
    assert record["Modified"] == stamp
    report = sync.run()
    assert report.conflicts == 1
    assert engine.opportunity(opp.id).status is OpportunityStatus.WITHDRAWN


def test_an_opportunity_created_in_spe_reads_back_without_quarantine(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    """The reference CRM keeps what describes an opportunity SPE created (its account),
    so reading it back maps cleanly instead of being quarantined on every run."""
    engine, sync, _ = make(store, clock, crm)
    engine.enqueue([Opportunity("spe-1", "acct-spe", clock.now(), tier=1, score=5.0)])
    sync.run()
    clock.advance(minutes=10)
    report = sync.run()
    assert report.quarantined == 0 and sync.quarantined() == []
    record = crm.by_key("spe-1")
    assert record is not None and record["Account"] == "acct-spe"


# --- whole-batch refusals, long pauses, unreachable CRMs -----------------------------------


def test_a_refused_batch_is_split_until_each_bad_input_stands_alone(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    settings = SyncSettings(retry=RetryPolicy(max_permanent_failures=1))
    engine, sync, _ = make(store, clock, crm, settings)
    sync.run()
    engine.replenish()
    queued = [o.id for o in engine.store.opportunities()]
    crm.rejecting_keys = {queued[2]}
    report = sync.run()
    assert report.written == len(queued) - 1
    assert report.quarantined_outbound == 1
    (bad,) = sync.quarantined()
    assert bad.key == queued[2] and "INVALID_VALUE" in bad.reason
    size = DictCrmAdapter.batch_size
    assert 0 < report.split_calls <= 2 * math.log2(size)
    assert report.calls == math.ceil(len(queued) / size) + report.split_calls


@given(
    size=st.integers(1, 100),
    data=st.data(),
)
@settings(max_examples=60, deadline=None)
def test_isolation_writes_every_good_input_within_the_call_bound(size: int, data: Any) -> None:
    clock = FakeClock()
    crm = DictCrm(clock)
    crm.add_user("U9", "Integration", "promotions")
    for i in range(size):
        crm.add_record(Account=f"A{i}", Status="queued", Owner="U9")
    clock.advance(minutes=10)
    engine, sync, _ = make(
        MemoryStore(), clock, crm, SyncSettings(retry=RetryPolicy(max_permanent_failures=1))
    )
    sync.run()
    engine.replenish()
    keys = sorted(
        o.id for o in engine.store.opportunities() if o.status is OpportunityStatus.QUEUED
    )
    bad = set(data.draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)))
    crm.rejecting_keys = bad
    batches = math.ceil(len(keys) / DictCrmAdapter.batch_size)
    report = sync.run()
    assert {q.key for q in sync.quarantined()} == bad  # every bad input, alone
    written = {r["Key"] for r in crm.records.values() if r.get("Status") == "queued" and "Key" in r}
    assert written == set(keys) - bad  # every good input, once
    assert report.split_calls <= len(bad) * 2 * math.log2(DictCrmAdapter.batch_size)
    assert report.calls == batches + report.split_calls


def test_a_pause_longer_than_the_cap_stops_the_run_with_try_later(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    engine, sync, slept = make(store, clock, crm)
    bring_in(engine, sync)
    engine.pull("u-U1", 2)
    crm.transient_failures, crm.retry_after = 1, 4.7 * 3600  # a daily limit
    with pytest.raises(TryLater) as caught:
        sync.run()
    assert slept == [] and caught.value.until is not None
    assert "4.7 h" in caught.value.problem and "nothing lost" in caught.value.problem
    assert sync.run().written == 2  # the next run goes on


def test_backoff_never_sleeps_longer_than_the_cap(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    settings = SyncSettings(
        retry=RetryPolicy(base_seconds=30, cap_seconds=300), max_sleep_seconds=45
    )
    engine, sync, slept = make(store, clock, crm, settings)
    bring_in(engine, sync)
    engine.pull("u-U1", 1)
    crm.transient_failures, crm.retry_after = 5, 0.0
    notices: list[tuple[int, int, float, str]] = []
    sync.on_retry = lambda *notice: notices.append(notice)
    assert sync.run().written == 1
    assert slept and max(slept) <= 45
    assert [n[0] for n in notices] == [2, 3, 4, 5, 6]
    assert all(n[1] == settings.retry.max_transient_attempts for n in notices)


def test_fail_fast_stops_at_once_when_the_crm_is_unreachable(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    crm.unreachable = True
    _, sync, slept = make(store, clock, crm, SyncSettings(fail_fast=True))
    with pytest.raises(CrmUnreachable):
        sync.run()
    assert slept == [] and crm.calls == 1
    _, patient, slept = make(store, clock, crm)  # a long-running sync keeps retrying
    with pytest.raises(CrmUnreachable):
        patient.run()
    assert len(slept) == RetryPolicy().max_transient_attempts - 1


# --- reading ahead ----------------------------------------------------------------------


def _source_pages(log: list[str], count: int, fail: BaseException | None = None) -> Any:
    from datetime import UTC, datetime

    def pages() -> Any:
        try:
            for i in range(count):
                log.append(f"read {i}")
                at = datetime(2026, 1, 5, tzinfo=UTC)
                yield [SourceRecord("opportunities", f"R{i}", at, {"Id": f"R{i}"})]
            if fail is not None:
                raise fail
        finally:
            import threading

            log.append(f"closed in {threading.current_thread().name}")

    return pages()


def test_read_ahead_reads_the_next_page_while_this_one_is_applied() -> None:
    import threading

    from spe_core.sync import _read_ahead

    log: list[str] = []
    seen = []
    for page in _read_ahead(_source_pages(log, 3), 1):
        for _ in range(200):  # the reader has read the next page meanwhile
            if f"read {min(2, len(seen) + 1)}" in log:
                break
            threading.Event().wait(0.01)
        log.append(f"applied {page[0].crm_id}")
        seen.append(page[0].crm_id)
    assert seen == ["R0", "R1", "R2"]
    assert log.index("read 1") < log.index("applied R0")
    assert log.index("read 2") < log.index("applied R1")
    assert "closed in spe-sync-read-ahead" in log
    log.clear()
    assert [p[0].crm_id for p in _read_ahead(_source_pages(log, 2), 0)] == ["R0", "R1"]
    assert log == ["read 0", "read 1", "closed in MainThread"]  # 0: no reader thread


def test_read_ahead_hands_the_readers_error_after_the_pages_read_before_it() -> None:
    from spe_core.sync import _read_ahead

    log: list[str] = []
    got: list[str] = []
    with pytest.raises(CrmUnreachable):
        for page in _read_ahead(_source_pages(log, 2, CrmUnreachable("gone", "start it")), 1):
            got.append(page[0].crm_id)
    assert got == ["R0", "R1"]


def test_read_ahead_stops_the_reader_when_the_consumer_stops() -> None:
    from spe_core.sync import _read_ahead

    log: list[str] = []
    pages = _read_ahead(_source_pages(log, 50), 2)
    assert next(pages)[0].crm_id == "R0"
    pages.close()  # e.g. applying the page failed
    reads = [line for line in log if line.startswith("read")]
    assert len(reads) <= 4  # this page, those ahead, and the one the reader was putting
    assert log[-1] == "closed in spe-sync-read-ahead"


def test_read_ahead_is_a_whole_number() -> None:
    from spe_core.errors import ConfigError

    with pytest.raises(ConfigError, match="read_ahead"):
        SyncSettings(read_ahead=-1)


def test_only_an_adapter_that_says_so_is_read_in_a_reader_thread(
    store: Store, clock: FakeClock, crm: DictCrm
) -> None:
    import threading

    seen: list[int] = []

    class Recording(DictCrmAdapter):
        def read(self, stream: str, since: Any) -> Any:
            for page in super().read(stream, since):
                seen.append(threading.get_ident())
                yield page

    class Threaded(Recording):
        reads_in_thread = True

    engine, _, _ = make(store, clock, crm)
    SyncEngine(engine, Recording(crm)).run(dry_run=True)
    assert seen and set(seen) == {threading.get_ident()}  # e.g. a sqlite3 connection
    seen.clear()
    SyncEngine(engine, Threaded(crm)).run(dry_run=True)
    assert seen and threading.get_ident() not in seen
