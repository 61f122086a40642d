"""SyncReport.calls counts reads too (the adapter's own count); read_again makes the
next run read and map every record again, bookmarks and windows forgotten."""

from __future__ import annotations

from spe_core import Engine, QueuePolicy
from spe_core.plugins import Plugins
from spe_core.store.base import Store
from spe_core.sync import SyncEngine
from spe_core.testing import FakeClock
from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter


class CountingAdapter(DictCrmAdapter):
    """The reference adapter with the call counter the real adapters keep."""

    @property
    def calls(self) -> int:
        return self.crm.calls


def setup(store: Store, clock: FakeClock) -> tuple[DictCrm, SyncEngine]:
    crm = DictCrm(clock)
    crm.add_user("U1", "Ana", "inside_sales")
    for i in range(7):
        crm.add_record(Account=f"A{i}", Tier=0, Score=i, Status="queued")
    clock.advance(minutes=10)
    engine = Engine(
        store,
        clock=clock,
        policy=QueuePolicy(target=10),
        plugins=Plugins.create(entry_points=False),
    )
    return crm, SyncEngine(engine, CountingAdapter(crm), sleep=lambda s: clock.advance(seconds=s))


def test_a_run_that_only_reads_counts_its_read_calls(store: Store, clock: FakeClock) -> None:
    crm, sync = setup(store, clock)
    report = sync.run()
    assert report.read == 8 and report.written == 0
    assert report.calls == crm.calls == 2  # one read per stream
    assert sync.run(dry_run=True).calls == 2


def test_read_again_reads_every_record_once_more(store: Store, clock: FakeClock) -> None:
    crm, sync = setup(store, clock)
    sync.run()
    crm.add_record(Account="A8", Tier=0, Score=8, Status="queued")
    crm.add_user("U2", "Ben", "inside_sales")
    clock.advance(minutes=30)
    sync.run()  # the bookmarks move to the newest records
    assert sync.run().read == 2  # only those, at the bookmarks, come again
    sync.read_again()
    assert all(sync.bookmark(s.name) is None for s in sync.adapter.streams())
    again = sync.run()
    assert again.read == 10 and again.quarantined == 0
