"""The HubSpot adapter: the real hubspot-api-client over real HTTP, against the emulator:
the contract suite, end to end, faults, crashes, the search cap, the client's traps, secrets."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import random
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import urllib3
from hubspot import HubSpot
from urllib3.util.retry import Retry

from spe_adapters.hubspot.adapter import NO_RETRY, HubSpotAdapter
from spe_adapters.hubspot.emulator import EmulatorServer
from spe_adapters.hubspot.settings import FieldMap, HubSpotSettings
from spe_core import Engine, OpportunityStatus, QueuePolicy, open_store
from spe_core.adapter import Change, CheckStatus
from spe_core.errors import (
    AdapterError,
    BatchRejected,
    ConfigError,
    CrmUnreachable,
    TransientError,
)
from spe_core.model import Role
from spe_core.plugins import Plugins
from spe_core.sync import SyncEngine
from spe_core.testing import FakeClock
from spe_core.testing.adapter_contract import AdapterContract

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
TEAM_ROLES = {r.value: r.value for r in Role}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    clock = FakeClock()
    server = EmulatorServer(clock=clock.now).start()
    server.clock = clock  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def hs(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    emulator.portal.reset()
    emulator.requests.reset_counts()
    emulator.portal.add_token(TOKEN)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    return emulator


def settings_for(server: EmulatorServer, **kw: Any) -> HubSpotSettings:
    kw.setdefault("team_roles", TEAM_ROLES)
    return HubSpotSettings(host=server.url, **kw)


def adapter_for(server: EmulatorServer, **kw: Any) -> HubSpotAdapter:
    return HubSpotAdapter(settings_for(server, **kw), sleep=lambda s: None)


class HubSpotHarness:
    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.portal = server.portal
        self.clock: FakeClock = server.clock  # type: ignore[attr-defined]
        self.clock.set(FakeClock().now())
        self.adapter = adapter_for(server)
        self.fields = FieldMap()

    def add_user(self, name: str, role: str) -> str:
        first, _, last = name.partition(" ")
        email = f"{name.lower().replace(' ', '.')}@acme.example"
        return self.portal.add_owner(first, last, email, teams=[role])

    def add_queued(self, account: str, tier: int, score: float, status: str = "queued") -> str:
        return self.portal.create(
            "deals",
            {
                "dealname": account,
                "pipeline": "default",
                "dealstage": "appointmentscheduled",
                "spe_account": account,
                "spe_tier": str(tier),
                "spe_score": str(score),
                "spe_status": status,
            },
        )

    def add_malformed(self) -> str:
        crm_id = self.add_queued("Broken Inc", 0, 0)
        self.portal.objects["deals"][crm_id]["properties"]["spe_account"] = None
        return crm_id

    def read_back(self, crm_id: str) -> dict[str, Any]:
        props = self.portal.get("deals", crm_id) or {}
        return {
            "status": self.fields.status_from_crm(props.get("spe_status")),
            "owner": props.get("hubspot_owner_id"),
            "key": props.get("spe_key"),
        }

    def edit_owner(self, crm_id: str, owner: str) -> None:
        self.portal.update("deals", crm_id, {"hubspot_owner_id": owner})

    def fail_next_writes(self, count: int) -> None:
        self.portal.faults.write_statuses = [429 if i % 2 == 0 else 503 for i in range(count)]

    def fail_record(self, crm_id: str) -> None:
        self.portal.faults.failing_records[crm_id] = "VALIDATION_ERROR"

    def record_count(self) -> int:
        return len(self.portal.objects["deals"])

    def add_with_status(self, account: str, status: str) -> str:
        """A deal whose spe_status holds ``status`` (an option an admin added)."""
        crm_id = self.add_queued(account, 0, 0)
        self.portal.objects["deals"][crm_id]["properties"]["spe_status"] = status
        return crm_id

class PagedHubSpotHarness(HubSpotHarness):
    """The harness with the contract suite's optional paging capability: searches of
    five deals, so a handful of records spans pages. No delete_record: HubSpot's search
    never returns deleted deals, SPE hears of them through deletion webhooks only."""

    page_size = 5

    def __init__(self, server: EmulatorServer) -> None:
        super().__init__(server)
        self.adapter = adapter_for(server, search_page_size=self.page_size)


class TestHubSpotAdapterContract(AdapterContract):
    @pytest.fixture
    def harness(self, hs: EmulatorServer) -> HubSpotHarness:
        return PagedHubSpotHarness(hs)


# --- end to end -------------------------------------------------------------------------------


def _team(h: HubSpotHarness, n: int) -> list[str]:
    return [h.add_user(f"Rep {i}", "inside_sales") for i in range(n)]


def _engine(h: HubSpotHarness, target: int, wip: int = 20) -> Engine:
    return Engine(
        open_store("memory:"),
        clock=h.clock,
        policy=QueuePolicy(target=target, daily_pull_cap=None, default_wip_limit=wip),
        plugins=Plugins.create(entry_points=False),
    )


def _assert_crm_equals_core(h: HubSpotHarness, engine: Engine) -> None:
    for opp in engine.store.opportunities():
        crm_id = opp.external_id("hubspot")
        assert crm_id is not None
        back = h.read_back(crm_id)
        expected = opp.outcome.value if opp.outcome else opp.status.value
        assert back["status"] == expected, (opp.id, back)
        if opp.status is OpportunityStatus.RELEASED:
            assert back["owner"] == opp.owner_id


@pytest.mark.slow
def test_ten_thousand_deals_replenish_and_five_hundred_pulls(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    reps = _team(h, 25)
    for i in range(10_000):
        h.add_queued(f"Acct {i % 900}", i % 3, i % 100, status="backlog")
        if i % 50 == 0:
            h.clock.advance(seconds=1)
    h.clock.advance(minutes=10)
    engine = _engine(h, target=2_000)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    first = sync.run()
    assert first.streams["opportunities"].applied == 10_000
    deal_searches = [e for e in hs.requests.entries if e.path.endswith("/deals/search")]
    assert len(deal_searches) == 50  # 10,000 / 200, up to the 10,000 cap exactly
    assert engine.replenish().plan.to_move == 2_000
    for k in range(500):
        engine.pull(reps[k % len(reps)])
    hs.requests.reset_counts()
    report = sync.run()
    assert report.written == 2_000  # 2,000 queued from the backlog, 500 of them released
    assert hs.requests.counts()["batch_update"] == 20  # in batches of 100
    _assert_crm_equals_core(h, engine)
    owners = Counter(
        p["hubspot_owner_id"] for p in hs.portal.all("deals") if p.get("hubspot_owner_id")
    )
    assert sum(owners.values()) == 500
    assert set(owners) <= set(reps)


def test_twenty_percent_faults_converge(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    reps = _team(h, 5)
    for i in range(600):
        h.add_queued(f"Acct {i}", i % 3, i)
    h.clock.advance(minutes=10)
    engine = _engine(h, target=600)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None, rng=random.Random(1))
    sync.run()
    engine.replenish()  # records marked queued wait in the backlog
    sync.run()  # the queue goes out to the CRM
    for k in range(300):
        engine.pull(reps[k % len(reps)])
    hs.portal.faults.rate, hs.portal.faults.rate_status = 0.2, 503
    hs.portal.faults.rng = random.Random(5)
    hs.portal.faults.failing_records = {}
    for _ in range(10):
        h.clock.advance(minutes=5)
        report = sync.run()
        if report.pending == 0 and report.written == 0:
            break
    hs.portal.faults.rate = 0.0
    h.clock.advance(minutes=5)
    assert sync.run().pending == 0
    assert h.record_count() == 600  # nothing duplicated
    _assert_crm_equals_core(h, engine)


def test_results_left_out_of_a_reply_are_retried_and_converge(hs: EmulatorServer) -> None:
    """Inputs HubSpot's reply does not answer (left out, or a PROCESSING reply) are
    retryable failures, never matched by guess: the next run delivers them."""
    h = HubSpotHarness(hs)
    reps = _team(h, 2)
    ids = [h.add_queued(f"Acct {i}", 0, i) for i in range(150)]
    h.clock.advance(minutes=10)
    engine = _engine(h, target=150, wip=100)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None, rng=random.Random(2))
    sync.run()
    engine.replenish()  # records marked queued wait in the backlog
    sync.run()  # the queue goes out to the CRM
    for k in range(150):
        engine.pull(reps[k % 2])
    rng = random.Random(3)
    hs.portal.faults.omit_from_replies = set(rng.sample(ids, 30))
    report = sync.run()
    assert report.failed == 30
    assert report.written == 120
    hs.portal.faults.omit_from_replies = set()
    hs.portal.faults.processing_replies = 1
    h.clock.advance(minutes=10)
    report = sync.run()
    assert report.written == 0 and report.failed == 30  # PROCESSING: nothing to trust
    h.clock.advance(minutes=10)
    assert sync.run().written == 30
    _assert_crm_equals_core(h, engine)
    assert not sync.quarantined()


def _poison_released(h: HubSpotHarness, engine: Engine, every: int) -> dict[str, str]:
    """Poison every ``every``-th released deal: HubSpot refuses any batch update that
    holds one. Returns {SPE key: CRM id}."""
    released = sorted(engine.store.opportunities(OpportunityStatus.RELEASED), key=lambda o: o.id)
    poisoned = {o.id: o.external_id("hubspot") or "" for o in released[::every]}
    for crm_id in poisoned.values():
        h.fail_record(crm_id)
    return poisoned


def _assert_poison_quarantined_rest_delivered(
    h: HubSpotHarness, engine: Engine, sync: SyncEngine, poisoned: dict[str, str]
) -> None:
    quarantined = {q.key: q.reason for q in sync.quarantined()}
    assert set(quarantined) == set(poisoned), "every poisoned record, and only those"
    assert all("VALIDATION_ERROR" in r and "rejected" in r for r in quarantined.values())
    for key, crm_id in poisoned.items():
        if crm_id:
            assert h.read_back(crm_id)["status"] == "queued"  # HubSpot refused it: unchanged
        else:  # a refused create made no record
            assert not [p for p in h.portal.all("deals") if p.get("spe_key") == key]
    for opp in engine.store.opportunities():
        if opp.id in poisoned:
            continue
        crm_id = opp.external_id("hubspot")
        assert crm_id is not None, f"{opp.id} never reached HubSpot"
        back = h.read_back(crm_id)
        expected = opp.outcome.value if opp.outcome else opp.status.value
        assert back["status"] == expected, (opp.id, back)
        if opp.status is OpportunityStatus.RELEASED:
            assert back["owner"] == opp.owner_id
    keys = Counter(p.get("spe_key") for p in h.portal.all("deals") if p.get("spe_key"))
    assert all(n == 1 for n in keys.values()), "a record was created twice"


def test_twenty_percent_faults_with_poisoned_records_in_every_batch(hs: EmulatorServer) -> None:
    """Strict HubSpot (whole-batch refusals, unordered results), 20 % of calls failing,
    poisoned records in every batch, results left out of replies, and opportunities
    created in SPE: nothing lost, nothing created twice, every poisoned record
    quarantined with its reason, every good record delivered."""
    from spe_core import Opportunity

    h = HubSpotHarness(hs)
    reps = _team(h, 5)
    for i in range(600):
        h.add_queued(f"Acct {i}", i % 3, i)
    h.clock.advance(minutes=10)
    engine = _engine(h, target=700, wip=100)

    def sleep(seconds: float) -> None:
        h.clock.advance(seconds=seconds)

    sync = SyncEngine(engine, h.adapter, sleep=sleep, rng=random.Random(1))
    sync.run()
    engine.replenish()  # records marked queued wait in the backlog
    sync.run()  # the queue goes out to the CRM
    for k in range(300):
        engine.pull(reps[k % len(reps)])
    poisoned = _poison_released(h, engine, every=25)  # 12: four in each batch of 100
    new = [Opportunity(f"spe-{i}", f"New {i}", h.clock.now()) for i in range(40)]
    engine.enqueue(new)
    for key in ("spe-3", "spe-17"):  # HubSpot refuses these creates
        h.portal.faults.failing_records[key] = "VALIDATION_ERROR"
        poisoned[key] = ""
    hs.portal.faults.omit_from_replies = {"spe-5", "spe-6", "spe-30"}  # written, unanswered
    hs.portal.faults.rate, hs.portal.faults.rate_status = 0.2, 503
    hs.portal.faults.rng = random.Random(5)
    splits = 0
    for _ in range(10):
        h.clock.advance(minutes=5)
        report = sync.run()
        splits += report.split_calls
        hs.portal.faults.omit_from_replies = set()
        if report.pending == 0 and report.written == 0:
            break
    hs.portal.faults.rate = 0.0
    h.clock.advance(minutes=5)
    assert sync.run().pending == 0
    assert splits > 0
    assert h.record_count() == 600 + 40 - 2  # the refused creates never made a record
    for opp in new:
        if opp.id not in poisoned:
            crm_id = engine.opportunity(opp.id).external_id("hubspot")
            assert (h.portal.get("deals", crm_id or "") or {}).get("spe_key") == opp.id
    _assert_poison_quarantined_rest_delivered(h, engine, sync, poisoned)


def _crash_worker(url: str, store: str, seed: int) -> None:
    os.environ["HUBSPOT_ACCESS_TOKEN"] = TOKEN
    adapter = HubSpotAdapter(HubSpotSettings(host=url, team_roles=TEAM_ROLES))
    engine = Engine(
        open_store(store),
        policy=QueuePolicy(target=1000, daily_pull_cap=None, default_wip_limit=400),
        plugins=Plugins.create(entry_points=False),
    )
    sync = SyncEngine(engine, adapter)
    sync.run()
    engine.replenish()
    members = [m.id for m in engine.members()]
    rng = random.Random(seed)
    for _ in range(400):
        engine.pull(rng.choice(members))
    while True:
        sync.run()


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    hs: EmulatorServer, tmp_path: Path
) -> None:
    h = HubSpotHarness(hs)
    _team(h, 4)
    for i in range(400):
        h.add_queued(f"Acct {i}", i % 3, i)
    h.clock.set(h.clock.now() - timedelta(hours=1))  # the worker uses the wall clock
    ctx = mp.get_context("spawn")
    rng = random.Random(42)
    runs = int(os.environ.get("SPE_TEST_CRASH_RUNS", "8"))
    for run in range(runs):
        store = f"sqlite:///{tmp_path / f'crash-{run}.db'}"
        worker = ctx.Process(target=_crash_worker, args=(hs.url, store, run))
        worker.start()
        time.sleep(rng.uniform(0.8, 3.0))
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        engine = Engine(open_store(store), plugins=Plugins.create(entry_points=False))
        sync = SyncEngine(engine, adapter_for(hs), sleep=lambda s: None)
        sync.run()
        assert sync.run().pending == 0
        assert h.record_count() == 400, "a crash duplicated a record"
        keys = Counter(p.get("spe_key") for p in hs.portal.all("deals") if p.get("spe_key"))
        assert all(n == 1 for n in keys.values())
        for opp in engine.store.opportunities(OpportunityStatus.RELEASED):
            crm_id = opp.external_id("hubspot")
            assert crm_id is not None
            assert h.read_back(crm_id)["status"] == "released", "a release was lost"
            assert h.read_back(crm_id)["owner"] == opp.owner_id
        for record in hs.portal.objects["deals"].values():  # reset for the next run
            record["properties"]["spe_status"] = "queued"
            record["properties"]["hubspot_owner_id"] = None


@pytest.mark.slow
def test_sigkill_with_poisoned_records_in_every_batch(hs: EmulatorServer, tmp_path: Path) -> None:
    """The crash test against strict HubSpot with one deal in twenty poisoned (HubSpot
    refuses any batch update holding one): after each SIGKILL a recovery run delivers
    every good record, quarantines every poisoned one with its reason, duplicates none."""
    from spe_core import SyncSettings
    from spe_core.outbox import RetryPolicy

    h = HubSpotHarness(hs)
    _team(h, 4)
    ids = [h.add_queued(f"Acct {i}", i % 3, i) for i in range(400)]
    poisoned = set(ids[::20])
    for crm_id in poisoned:
        h.fail_record(crm_id)
    h.clock.set(h.clock.now() - timedelta(hours=1))  # the worker uses the wall clock
    ctx = mp.get_context("spawn")
    rng = random.Random(43)
    runs = int(os.environ.get("SPE_TEST_CRASH_RUNS", "8"))
    settings = SyncSettings(retry=RetryPolicy(max_permanent_failures=1))
    isolated = 0
    for run in range(runs):
        store = f"sqlite:///{tmp_path / f'poison-{run}.db'}"
        worker = ctx.Process(target=_crash_worker, args=(hs.url, store, run))
        hs.requests.reset_counts()
        worker.start()
        deadline = time.monotonic() + 120
        while not hs.requests.counts()["batch_update"] and time.monotonic() < deadline:
            time.sleep(0.05)  # killed while writing: after its first batch update
        time.sleep(rng.uniform(0.0, 1.5))
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        engine = Engine(open_store(store), plugins=Plugins.create(entry_points=False))
        # the killed worker may have postponed a refused record a second or two (its
        # first permanent failure): the recovery waits for it on the real clock
        sync = SyncEngine(engine, adapter_for(hs), settings, sleep=time.sleep)
        sync.run()
        assert sync.run().pending == 0
        assert h.record_count() == 400, "a crash duplicated a record"
        keys = Counter(p.get("spe_key") for p in hs.portal.all("deals") if p.get("spe_key"))
        assert all(n == 1 for n in keys.values())
        quarantined = {q.key: q.reason for q in sync.quarantined()}
        isolated += len(quarantined)
        for opp in engine.store.opportunities():
            crm_id = opp.external_id("hubspot")
            assert crm_id is not None
            if crm_id in poisoned:
                if opp.status is not OpportunityStatus.BACKLOG:  # it had a change to write
                    assert "VALIDATION_ERROR" in quarantined[opp.id], opp.id
                assert h.read_back(crm_id)["status"] == "queued"
                continue
            assert opp.id not in quarantined
            if opp.status is OpportunityStatus.RELEASED:
                assert h.read_back(crm_id)["status"] == "released", "a release was lost"
                assert h.read_back(crm_id)["owner"] == opp.owner_id
        for record in hs.portal.objects["deals"].values():  # reset for the next run
            record["properties"]["spe_status"] = "queued"
            record["properties"]["hubspot_owner_id"] = None
    assert isolated > 0, "no run got as far as writing the poisoned deals"


# --- reading past the search cap ---------------------------------------------------------------


def test_reading_more_than_ten_thousand_changed_records_through_the_cap(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    for i in range(10_450):
        h.add_queued(f"Acct {i}", 0, 0)
        if i >= 9_000 and i % 100 == 0:  # the first 9,000 share one instant: ties by id
            h.clock.advance(seconds=1)
    pages = list(h.adapter.read("opportunities", None))
    ids = [r.crm_id for page in pages for r in page]
    assert len(ids) == 10_450
    assert len(set(ids)) == 10_450
    times = [r.modified_at for page in pages for r in page]
    assert times == sorted(times)  # in modification order; ties in no particular order
    assert all(len(p) <= 200 for p in pages)
    searches = [e for e in hs.requests.entries if e.endpoint == "search"]
    # one sort rule: the 9,001 records of the first instant are read by id on their own
    # (46 pages) after the first page showed more of them than a NOT_IN filter can name;
    # the other 1,449 take 8 pages, each a new query from where the last one ended
    assert len(searches) == 1 + 46 + 8
    assert all(e.status == 200 for e in hs.requests.entries)  # never an after >= 10,000
    since = h.clock.now() - timedelta(seconds=2)
    later = [r for page in h.adapter.read("opportunities", since) for r in page]
    assert 0 < len(later) < 300
    assert all(r.modified_at >= since for r in later)


def test_search_calls_keep_to_the_per_second_budget(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    for i in range(50):
        h.add_queued(f"Acct {i}", 0, 0)
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    adapter = HubSpotAdapter(
        settings_for(hs, search_page_size=5, search_requests_per_second=4),
        sleep=sleep,
        monotonic=lambda: now[0],
    )
    pages = list(adapter.read("opportunities", None))
    assert len(pages) == 10
    assert len(slept) == 2  # calls 5 and 9 waited for the next second
    assert all(0 < s <= 1.0 for s in slept)


# --- traps of the real client ------------------------------------------------------------------


def test_each_sub_api_is_built_once_and_rebuilt_when_the_token_changes(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = HubSpot(access_token=TOKEN, host=hs.url)
    a, b = client.crm.objects.search_api, client.crm.objects.search_api
    assert a is not b  # the trap: every property access builds a new ApiClient
    assert a.api_client is not b.api_client
    h = HubSpotHarness(hs)
    h.add_queued("Acct", 0, 0)
    adapter = adapter_for(hs)
    for _ in range(3):
        list(adapter.read("opportunities", None))
    search_api = adapter.apis.search
    assert adapter.builds == 1
    assert adapter.apis.search is search_api
    rotated = "pat-na1-rotated-token"
    hs.portal.add_token(rotated)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", rotated)
    assert [len(p) for p in adapter.read("opportunities", None)] == [1]
    assert adapter.builds == 2
    assert adapter.apis.search is not search_api


def test_urllib3_never_retries_on_its_own(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    h.add_queued("Acct", 0, 0)
    # the trap: a client with its own retry policy hides 429s, then raises urllib3's
    # MaxRetryError instead of an ApiException once its retries run out
    eager = HubSpot(
        access_token=TOKEN,
        host=hs.url,
        retry=Retry(total=2, status_forcelist=[429], backoff_factor=0),
    )
    hs.portal.faults.next_statuses = [429, 429, 429]
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        eager.crm.owners.owners_api.get_page(limit=1)
    assert hs.requests.counts()["owners"] == 3
    hs.requests.reset_counts()
    adapter = adapter_for(hs)
    hs.portal.faults.next_statuses = [429]
    with pytest.raises(TransientError, match="429"):
        list(adapter.read("opportunities", None))
    assert hs.requests.counts()["search"] == 1  # one call: the sync engine owns retries
    assert adapter.apis.search.api_client.configuration.retries is NO_RETRY


def test_connection_failures_are_transient_not_max_retry_error(hs: EmulatorServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # a port nobody listens on
    adapter = HubSpotAdapter(
        HubSpotSettings(host=f"http://127.0.0.1:{port}", team_roles=TEAM_ROLES)
    )
    with pytest.raises(CrmUnreachable, match="refused the connection"):
        list(adapter.read("opportunities", None))


def test_errors_are_classified_by_status_across_sub_packages(hs: EmulatorServer) -> None:
    import hubspot.crm.objects as objects
    import hubspot.crm.owners as owners

    assert objects.ApiException is not owners.ApiException  # the trap
    h = HubSpotHarness(hs)
    h.add_user("Ana Ruiz", "inside_sales")
    adapter = adapter_for(hs)
    hs.portal.faults.next_statuses = [502]
    with pytest.raises(TransientError, match="HTTP 502"):  # from the owners package
        list(adapter.read("members", None))
    hs.portal.faults.next_statuses = [503]
    with pytest.raises(TransientError, match="HTTP 503"):  # from the objects package
        list(adapter.read("opportunities", None))


def test_rate_limits_become_transient_errors_with_retry_after(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    crm_id = h.add_queued("Acct", 0, 0)
    adapter = adapter_for(hs)
    change = Change("opportunity", "k1", {"status": "released"}, crm_id)
    hs.portal.faults.next_statuses = [429]
    with pytest.raises(TransientError, match="TEN_SECONDLY_ROLLING") as info:
        adapter.write([change])
    assert info.value.retry_after == 10.0  # X-HubSpot-RateLimit-Interval-Milliseconds
    hs.portal.faults.daily_limit_hit = True
    with pytest.raises(TransientError, match="DAILY") as info:
        adapter.write([change])
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 86_400  # until the daily limit resets


def test_a_refused_update_raises_and_creates_are_answered_per_input(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    ok, bad = (h.add_queued(n, 0, 0) for n in "AB")
    hs.portal.faults.failing_records[bad] = "VALIDATION_ERROR"
    adapter = adapter_for(hs)
    updates = [
        Change("opportunity", "k1", {"status": "released"}, ok),
        Change("opportunity", "k2", {"status": "released"}, bad),
    ]
    with pytest.raises(BatchRejected) as info:
        adapter.write(updates)
    assert "VALIDATION_ERROR" in info.value.detail
    assert (hs.portal.get("deals", ok) or {})["spe_status"] == "queued"  # nothing written
    assert hs.requests.counts()["batch_create"] == 0  # a refused update stops the call
    with pytest.raises(BatchRejected):
        adapter.write(updates[1:])  # a single input refused is raised too
    (alone,) = adapter.write(updates[:1])  # any subset works
    assert alone.ok and alone.crm_id == ok
    hs.portal.faults.failing_records["k5"] = "VALIDATION_ERROR"
    hs.portal.faults.failing_records["k7"] = "RATE_LIMITS"
    results = adapter.write(
        [
            Change("opportunity", "k4", {"status": "queued", "account_id": "New Co"}),
            Change("opportunity", "k5", {"status": "queued", "account_id": "Bad Co"}),
            Change("opportunity", "k6", {"status": "queued", "account_id": "Other Co"}),
            Change("opportunity", "k7", {"status": "queued", "account_id": "Busy Co"}),
        ]
    )
    assert [r.ok for r in results] == [True, False, True, False]
    assert "VALIDATION_ERROR" in (results[1].error or "")
    assert not results[1].retryable
    assert results[3].retryable
    created = hs.portal.get("deals", results[0].crm_id or "") or {}
    assert created["spe_key"] == "k4"
    assert created["dealstage"] == "appointmentscheduled"
    assert (hs.portal.get("deals", results[2].crm_id or "") or {})["spe_key"] == "k6"
    assert hs.requests.counts()["batch_create"] == 1  # a 207: trace ids on every input


def test_a_malformed_record_is_quarantined(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    h.add_user("Ana Ruiz", "inside_sales")
    h.add_queued("Good", 0, 0)
    bad = h.add_queued("Bad", 0, 0)
    hs.portal.objects["deals"][bad]["properties"]["spe_tier"] = "very high"
    h.clock.advance(minutes=10)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    report = sync.run()
    assert report.streams["opportunities"].quarantined == 1
    (q,) = sync.quarantined()
    assert q.key == bad
    assert "spe_tier" in q.reason
    assert engine.queue_status().backlog == 1


def test_owners_become_members_with_roles_from_config(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    ana = hs.portal.add_owner("Ana", "Ruiz", "ana@acme.example", teams=["Inside Sales"])
    ben = hs.portal.add_owner("Ben", "Okafor", "ben@acme.example")
    hs.portal.add_owner("Ada", "Admin", "admin@acme.example")  # not on SPE's team
    gone = hs.portal.add_owner("Old", "Rep", "old@acme.example", archived=True)
    adapter = adapter_for(
        hs,
        team_roles={"Inside Sales": "inside_sales"},
        roles={"ben@acme.example": "customer_service", gone: "inside_sales"},
    )
    engine = _engine(h, 10)
    SyncEngine(engine, adapter, sleep=lambda s: None).run()
    members = {m.id: m for m in engine.members()}
    assert set(members) == {ana, ben, gone}
    assert members[ana].role.value == "inside_sales"
    assert members[ana].name == "Ana Ruiz"
    assert members[ben].role.value == "customer_service"
    assert not members[gone].active


def test_contacts_as_the_queued_object(hs: EmulatorServer) -> None:
    h = HubSpotHarness(hs)
    ana = h.add_user("Ana Ruiz", "inside_sales")
    for i in range(3):
        hs.portal.create(
            "contacts",
            {"email": f"c{i}@x.example", "company": f"Co {i}", "spe_status": "queued"},
        )
    h.clock.advance(minutes=10)
    adapter = adapter_for(hs, queued_object="contacts")
    engine = _engine(h, 10)
    sync = SyncEngine(engine, adapter, sleep=lambda s: None)
    assert sync.run().streams["opportunities"].applied == 3
    engine.replenish()  # records marked queued wait in the backlog
    sync.run()  # the queue goes out to the CRM
    (opp,) = engine.pull(ana).released
    sync.run()
    contact = hs.portal.get("contacts", opp.external_id("hubspot") or "") or {}
    assert contact["spe_status"] == "released"
    assert contact["hubspot_owner_id"] == ana


def test_tasks_created_in_hubspot_are_routed_and_their_owner_written_back(
    hs: EmulatorServer,
) -> None:
    h = HubSpotHarness(hs)
    h.clock.set(datetime(2026, 1, 5, 10, tzinfo=UTC))  # a Monday, in working hours
    csr = h.add_user("Cara Service", "customer_service")
    rep = h.add_user("Ana Rep", "inside_sales")
    task_id = hs.portal.create(
        "tasks",
        {
            "hs_task_subject": "Quote for Acme",
            "spe_task_kind": "quote",
            "hs_task_priority": "HIGH",
            "hubspot_owner_id": rep,
        },
    )
    h.clock.advance(minutes=10)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    assert sync.run().streams["tasks"].applied == 1
    routed = engine.task(f"hs-{task_id}")
    assert routed.assignee_id == csr
    task = hs.portal.get("tasks", task_id) or {}
    assert task["hubspot_owner_id"] == csr
    assert task["hs_task_status"] == "NOT_STARTED"
    assert task["spe_key"] == f"hs-{task_id}"
    engine.accept_task(routed.id, csr)
    sync.run()
    assert (hs.portal.get("tasks", task_id) or {})["hs_task_status"] == "IN_PROGRESS"
    assert len(hs.portal.objects["tasks"]) == 1


# --- secrets and settings ----------------------------------------------------------------------


def test_secrets_never_reach_logs_or_errors(
    hs: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = HubSpotHarness(hs)
    h.add_user("Ana", "inside_sales")
    h.add_queued("A", 0, 0)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    sync.run()
    hs.portal.revoke_tokens()
    with pytest.raises(AdapterError, match="HTTP 401") as info:
        sync.run()
    assert TOKEN not in str(info.value)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(h.adapter.settings)


def test_missing_token_and_bad_settings_fail_clearly(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUBSPOT_ACCESS_TOKEN")
    with pytest.raises(ConfigError, match="HUBSPOT_ACCESS_TOKEN"):
        list(adapter_for(hs).read("opportunities", None))
    with pytest.raises(ConfigError, match="search_page_size"):
        HubSpotSettings(search_page_size=500)
    with pytest.raises(ConfigError, match="not an SPE role"):
        HubSpotSettings(team_roles={"Sales": "closer"})
    with pytest.raises(ConfigError, match="is not a known setting"):
        HubSpotSettings.from_mapping({"acess_token_env": "X"})
    with pytest.raises(ConfigError, match="https"):
        HubSpotSettings(host="http://api.hubapi.com")
    settings = HubSpotSettings.from_mapping(
        {"queued_object": "contacts", "fields": {"score_property": "hubspotscore"}}
    )
    assert settings.last_modified_property == "lastmodifieddate"
    assert settings.account_property == "company"


def test_the_entry_point_registers_the_adapter() -> None:
    plugins = Plugins.create()
    assert plugins.adapters()["hubspot"] is HubSpotAdapter


# --- webhooks ----------------------------------------------------------------------------------

APP_SECRET = "app-client-secret-0123456789"
HOOK_URI = "https://spe.acme.example/hubspot/webhook"


def _signed(body: bytes, at: datetime, *, secret: str = APP_SECRET) -> dict[str, str]:
    from spe_adapters.hubspot.webhooks import sign_v3

    timestamp = str(int(at.timestamp() * 1000))
    return {
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", HOOK_URI, body, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def _events(*pairs: tuple[str, ...]) -> bytes:
    """Webhook events from (subscription type, object id[, object type id])."""
    import json

    return json.dumps(
        [
            {
                "eventId": 100 + i,
                "subscriptionId": 7,
                "portalId": 4242424,
                "occurredAt": 1767614400000,
                "subscriptionType": kind,
                "attemptNumber": 0,
                "objectId": int(object_id),
                "propertyName": "spe_status",
                "propertyValue": "queued",
                "changeSource": "CRM_UI",
                **({"objectTypeId": (*rest, "0-27")[0]} if kind.startswith("object.") else {}),
            }
            for i, (kind, object_id, *rest) in enumerate(pairs)
        ]
    ).encode()


def test_webhook_with_a_valid_signature_syncs_those_records_now(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spe_adapters.hubspot.webhooks import WebhookHandler

    h = HubSpotHarness(hs)
    h.clock.set(datetime(2026, 1, 5, 10, tzinfo=UTC))
    h.add_user("Cara Service", "customer_service")
    engine = _engine(h, 10)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    sync.run()
    deal = h.add_queued("Acme", 2, 90)
    other = h.add_queued("Not Mentioned", 0, 0)
    task = hs.portal.create("tasks", {"hs_task_subject": "Quote", "spe_task_kind": "quote"})
    monkeypatch.setenv("HUBSPOT_APP_SECRET", APP_SECRET)
    handler = WebhookHandler.for_sync(h.adapter.settings, sync, h.adapter, clock=h.clock.now)
    body = _events(
        ("deal.propertyChange", deal), ("object.creation", task), ("deal.deletion", other)
    )
    hs.requests.reset_counts()
    reply = handler.handle("POST", HOOK_URI, _signed(body, h.clock.now()), body)
    assert reply.status == 200, reply.body
    assert reply.body["synced"] == {"opportunities": 1, "tasks": 1}
    assert reply.body["deleted"] == {"opportunities": 1}  # looked up in the bin: not there
    assert {o.external_id("hubspot") for o in engine.store.opportunities()} == {deal}
    assert engine.task(f"hs-{task}").kind == "quote"
    assert hs.requests.counts()["batch_read"] == 3
    assert hs.requests.counts()["search"] == 0  # no stream read: just those ids
    assert sync.run().streams["opportunities"].applied == 1  # the other deal, by the bookmark


def test_webhook_with_a_bad_signature_is_401_and_applies_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from spe_adapters.hubspot.webhooks import WebhookHandler

    caplog.set_level(logging.DEBUG)
    now = datetime(2026, 1, 5, 10, tzinfo=UTC)
    applied: list[tuple[str, list[str]]] = []
    handler = WebhookHandler(APP_SECRET, lambda s, ids: applied.append((s, ids)), clock=lambda: now)
    body = _events(("deal.propertyChange", "1001"))
    headers = _signed(body, now)
    tampered = body.replace(b"1001", b"1002")
    cases = {
        "tampered body": (tampered, headers, "does not match"),
        "wrong secret": (body, _signed(body, now, secret="other-secret"), "does not match"),
        "stale": (body, _signed(body, now - timedelta(minutes=5, milliseconds=1)), "old"),
        "future": (body, _signed(body, now + timedelta(seconds=61)), "future"),
        "unsigned": (body, {"Content-Type": "application/json"}, "neither X-HubSpot-Signature"),
    }
    for name, (payload, hdrs, words) in cases.items():
        reply = handler.handle("POST", HOOK_URI, hdrs, payload)
        assert reply.status == 401, name
        assert words in reply.body["error"], (name, reply.body)
        assert "fix" in reply.body
    assert applied == []
    for at in (now - timedelta(minutes=5), now + timedelta(seconds=60)):  # the limits
        fresh = handler.handle("POST", HOOK_URI, _signed(body, at), body)
        assert fresh.status == 200, fresh.body
    assert applied == [("opportunities", ["1001"])] * 2
    assert APP_SECRET not in caplog.text + repr(handler)
    wrong_uri = handler.handle("POST", HOOK_URI + "?x=1", headers, body)
    assert wrong_uri.status == 401


def test_webhook_handler_as_a_wsgi_app_signs_over_the_decoded_uri() -> None:
    from werkzeug.test import Client

    from spe_adapters.hubspot.webhooks import WebhookHandler, sign_v3

    now = datetime(2026, 1, 5, 10, tzinfo=UTC)
    applied: list[list[str]] = []
    handler = WebhookHandler(APP_SECRET, lambda s, ids: applied.append(ids), clock=lambda: now)
    body = _events(("deal.creation", "77"), ("deal.propertyChange", "77"))
    timestamp = str(int(now.timestamp() * 1000))
    signed_uri = "http://localhost/hubspot/webhook?portal=4242424&tag=a:b"
    signature = sign_v3(APP_SECRET, "POST", signed_uri, body, timestamp)
    reply = Client(handler).post(
        "/hubspot/webhook?portal=4242424&tag=a%3Ab",
        data=body,
        headers={"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp},
    )
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert applied == [["77"]]  # one id, once


def test_check_reports_missing_properties_and_bad_tokens(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = adapter_for(hs).check()
    assert results and all(r.ok for r in results), [r for r in results if not r.ok]
    broken = adapter_for(hs, fields=FieldMap(score_property="spe_scoring"))
    (problem,) = [r for r in broken.check() if not r.ok]
    assert problem.part == "property deals.spe_scoring"
    assert problem.fix and "create it" in problem.fix
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-wrong")
    login, *rest = adapter_for(hs).check()
    assert (login.part, login.status) == ("login", CheckStatus.PROBLEM)
    assert "401" in login.detail
    assert rest and all(r.status is CheckStatus.NOT_CHECKED for r in rest)


def _meeting(hs: EmulatorServer, owner: str, title: str, start: datetime, end: datetime) -> str:
    """A meeting in an owner's HubSpot calendar (busy time for SPE)."""
    return hs.portal.create(
        "meetings",
        {
            "hs_meeting_title": title,
            "hubspot_owner_id": owner,
            "hs_meeting_start_time": start.isoformat(),
            "hs_meeting_end_time": end.isoformat(),
        },
    )


def test_calendar_busy_time_in_and_bookings_out_as_meetings(hs: EmulatorServer) -> None:
    """Owners' meetings become busy time (a cancelled one frees it); SPE's bookings become
    meetings upserted by spe_key; home bases come from [adapter.hubspot.home_bases]."""
    from spe_core.calendar import CalendarRules
    from spe_core.model import AppointmentRequest, Location

    h = HubSpotHarness(hs)
    monday = datetime(2026, 1, 5, 10, tzinfo=UTC)
    h.clock.set(monday)
    fay = h.add_user("Fay Field", "field_sales")
    h.adapter = adapter_for(
        hs, home_bases={"fay.field@acme.example": {"lat": 48.137, "lon": 11.575}}
    )
    tuesday = monday + timedelta(days=1)
    fair = _meeting(hs, fay, "Trade fair", tuesday.replace(hour=9), tuesday.replace(hour=13))
    h.clock.advance(minutes=10)
    clock = FakeClock(h.clock.now())
    engine = Engine(
        open_store("memory:"),
        clock=clock,
        plugins=Plugins.create(entry_points=False),
        calendar_rules=CalendarRules(),
    )
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    assert sync.run().streams["busy"].applied == 1
    assert engine.member(fay).home_base == Location(48.137, 11.575)
    request = AppointmentRequest(
        "visit-1",
        "Acme",
        timedelta(hours=1),
        "in_person",
        tuesday.replace(hour=0),
        tuesday.replace(hour=23),
        location=Location(48.14, 11.58, "Acme HQ"),
    )
    slot = engine.propose(request).best
    assert slot is not None and slot.start >= tuesday.replace(hour=13, minute=10)
    booking = engine.book(request, fay, slot.start, by="coordinator-1")
    report = sync.run()
    assert report.written == 1 and not sync.quarantined(), (report, sync.quarantined())
    sync.run()  # a rerun duplicates nothing, and SPE's meeting is not read back as busy
    mine = [m for m in hs.portal.all("meetings") if m.get("spe_key") == "visit-1"]
    assert len(mine) == 1
    assert mine[0]["hubspot_owner_id"] == fay
    assert mine[0]["hs_meeting_outcome"] == "SCHEDULED"
    assert mine[0]["hs_meeting_location"] == "Acme HQ"
    with engine.store.transaction() as tx:
        assert [b.id for b in tx.iter_busy(fay, monday, monday + timedelta(days=7))] == [fair]
    engine.cancel_booking(booking.id, by="coordinator-1")
    sync.run()
    mine = [m for m in hs.portal.all("meetings") if m.get("spe_key") == "visit-1"]
    assert len(mine) == 1 and mine[0]["hs_meeting_outcome"] == "CANCELED"
    h.clock.advance(minutes=5)
    hs.portal.update("meetings", fair, {"hs_meeting_outcome": "CANCELED"})
    h.clock.advance(minutes=10)
    clock.set(h.clock.now())
    sync.run()
    with engine.store.transaction() as tx:
        assert list(tx.iter_busy(fay, monday, monday + timedelta(days=7))) == []


def test_owners_keep_their_time_zone_skills_and_coordinator_from_spe_toml(
    hs: EmulatorServer,
) -> None:
    """HubSpot owners have no time zone, skills or coordinator: spe.toml's settings
    (or values set through the engine) give them, and no sync resets them."""
    from spe_core.team import MemberSettings

    h = HubSpotHarness(hs)
    fay = hs.portal.add_owner("Fay", "Field", "fay@acme.example", teams=["Field"])
    kai = hs.portal.add_owner("Kai", "Coord", "kai@acme.example", teams=["Coordinators"])
    h.clock.advance(minutes=10)
    adapter = adapter_for(
        hs,
        team_roles={"Field": "field_sales", "Coordinators": "sales_coordinator"},
        home_bases={"fay@acme.example": {"lat": 48.14, "lon": 11.58, "address": "Munich"}},
    )
    engine = Engine(
        open_store("memory:"),
        clock=h.clock,
        plugins=Plugins.create(entry_points=False),
        member_settings=[
            MemberSettings(fay, {"time_zone": "Europe/Berlin", "coordinator_id": kai})
        ],
    )
    sync = SyncEngine(engine, adapter, sleep=lambda s: None)
    sync.run()
    engine.upsert_members([attrs.evolve(engine.member(kai), time_zone="Europe/Vienna")])
    h.clock.advance(minutes=10)
    hs.portal.update_owner(fay, firstName="Fay-Lynn")
    hs.portal.update_owner(kai, firstName="Kai-Uwe")
    h.clock.advance(minutes=10)
    sync.run()
    member = engine.member(fay)
    assert member.name == "Fay-Lynn Field"
    assert (member.time_zone, member.coordinator_id) == ("Europe/Berlin", kai)
    assert member.home_base is not None and member.home_base.address == "Munich"
    coordinator = engine.member(kai)
    assert coordinator.name == "Kai-Uwe Coord" and coordinator.time_zone == "Europe/Vienna"


def test_deletion_webhooks_withdraw_deals_and_free_meetings(
    hs: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HubSpot's search never returns deleted objects: deletion webhooks are how SPE
    hears of them. The handler reads the named records from the recycling bin."""
    from spe_adapters.hubspot.webhooks import WebhookHandler

    h = HubSpotHarness(hs)
    monday = datetime(2026, 1, 5, 10, tzinfo=UTC)
    h.clock.set(monday)
    rep = h.add_user("Ana Rep", "inside_sales")
    fay = h.add_user("Fay Field", "field_sales")
    deals = [h.add_queued(f"Acme {i}", 1, i) for i in range(3)]
    tuesday = monday + timedelta(days=1)
    fair = _meeting(hs, fay, "Trade fair", tuesday.replace(hour=9), tuesday.replace(hour=13))
    h.clock.advance(minutes=10)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    sync.run()
    engine.replenish()  # records marked queued wait in the backlog
    sync.run()  # the queue goes out to the CRM
    (pulled,) = engine.pull(rep).released  # its owner write is still to go out
    crm_id = pulled.external_id("hubspot")
    assert crm_id is not None
    hs.portal.archive("deals", crm_id)
    hs.portal.archive("meetings", fair)
    monkeypatch.setenv("HUBSPOT_APP_SECRET", APP_SECRET)
    handler = WebhookHandler.for_sync(h.adapter.settings, sync, h.adapter, clock=h.clock.now)
    body = _events(("deal.deletion", crm_id), ("object.deletion", fair, "0-47"))
    reply = handler.handle("POST", HOOK_URI, _signed(body, h.clock.now()), body)
    assert reply.status == 200, reply.body
    assert reply.body["deleted"] == {"opportunities": 1, "busy": 1}
    assert engine.opportunity(pulled.id).status is OpportunityStatus.WITHDRAWN
    with engine.store.transaction() as tx:
        assert list(tx.iter_busy(fay, monday, monday + timedelta(days=7))) == []
    h.clock.advance(minutes=10)
    report = sync.run()  # nothing is written to the deleted deal, nothing quarantined
    assert report.pending == 0 and not sync.quarantined()
    assert engine.queue_status().level == len(deals) - 1
