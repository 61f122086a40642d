"""The Salesforce adapter: the real simple-salesforce client over real HTTPS, against the
emulator: the contract suite, end to end, faults, crashes, hostile strings, secrets."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from simple_salesforce.format import format_soql

from spe_adapters.salesforce.adapter import SalesforceAdapter, http_session
from spe_adapters.salesforce.auth import Session
from spe_adapters.salesforce.emulator import EmulatorServer
from spe_adapters.salesforce.emulator import soql as soql_module
from spe_adapters.salesforce.settings import FieldMap, SalesforceSettings
from spe_core import Engine, OpportunityStatus, QueuePolicy, open_store
from spe_core.errors import AdapterError
from spe_core.plugins import Plugins
from spe_core.sync import SyncEngine
from spe_core.testing import FakeClock
from spe_core.testing.adapter_contract import AdapterContract

SECRET = "s3cret-Pa55word!"
RATING = {2: "Hot", 1: "Warm", 0: "Cold"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    clock = FakeClock()
    server = EmulatorServer(clock=clock.now).start()
    server.clock = clock  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def sf(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    emulator.org.reset()
    emulator.requests.reset_counts()
    emulator.org.add_login("integration@acme.example", SECRET)
    monkeypatch.setenv("SF_USERNAME", "integration@acme.example")
    monkeypatch.setenv("SF_PASSWORD", SECRET)
    monkeypatch.setenv("SF_SECURITY_TOKEN", "")
    monkeypatch.setenv("SF_CLIENT_ID", "spe-connected-app")
    monkeypatch.setenv("SF_CLIENT_SECRET", "app-secret")
    return emulator


def adapter_for(server: EmulatorServer, **kw: Any) -> SalesforceAdapter:
    settings = SalesforceSettings(login_url=server.url, ca_bundle=server.ca_path, **kw)
    return SalesforceAdapter(settings, sleep=lambda s: None)


class SalesforceHarness:
    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.org = server.org
        self.clock: FakeClock = server.clock  # type: ignore[attr-defined]
        self.clock.set(FakeClock().now())
        self.adapter = adapter_for(server)
        self.fields = FieldMap()

    def add_user(self, name: str, role: str) -> str:
        user = name.lower().replace(" ", ".")
        return self.org.create(
            "User",
            {
                "Name": name,
                "Username": f"{user}@acme.example",
                "SPE_Role__c": role,
                "IsActive": True,
            },
        )

    def add_queued(self, account: str, tier: int, score: float) -> str:
        return self.org.create(
            "Lead",
            {
                "LastName": account,
                "Company": account,
                "Rating": RATING[tier],
                "SPE_Status__c": "Queued",
            },
        )

    def add_malformed(self) -> str:
        crm_id = self.add_queued("Broken Inc", 0, 0)
        self.org.records["Lead"][crm_id]["Company"] = None  # a record missing its account
        return crm_id

    def read_back(self, crm_id: str) -> dict[str, Any]:
        record = self.org.get("Lead", crm_id) or {}
        return {
            "status": self.fields.status_from_crm(record.get("SPE_Status__c")),
            "owner": record.get("OwnerId"),
            "key": record.get("SPE_Key__c"),
        }

    def edit_owner(self, crm_id: str, owner: str) -> None:
        self.org.update("Lead", crm_id, {"OwnerId": owner})

    def fail_next_writes(self, count: int) -> None:
        self.org.faults.write_statuses = [503] * count

    def fail_record(self, crm_id: str) -> None:
        self.org.faults.failing_records[crm_id] = "FIELD_CUSTOM_VALIDATION_EXCEPTION"

    def refuse_in_request(self, key: str) -> None:
        """Any collection request holding this record (Id or SPE_Key__c) fails as a whole."""
        self.org.faults.refused_in_request.add(key)

    def record_count(self) -> int:
        return len(self.org.records["Lead"])

    # optional capability of the contract suite
    def delete_record(self, crm_id: str) -> None:
        self.org.delete("Lead", crm_id)


class PagedSalesforceHarness(SalesforceHarness):
    """The harness with the contract suite's optional paging capability: queries of 200
    records (the smallest batch Salesforce, and its emulator, accepts)."""

    page_size = 200

    def __init__(self, server: EmulatorServer) -> None:
        super().__init__(server)
        self.adapter = adapter_for(server, query_page_size=self.page_size)


class TestSalesforceAdapterContract(AdapterContract):
    @pytest.fixture
    def harness(self, sf: EmulatorServer) -> SalesforceHarness:
        return PagedSalesforceHarness(sf)


# --- end to end -------------------------------------------------------------------------------


def _team(h: SalesforceHarness, n: int) -> list[str]:
    return [h.add_user(f"Rep {i}", "inside_sales") for i in range(n)]


def _engine(h: SalesforceHarness, target: int, wip: int = 20) -> Engine:
    return Engine(
        open_store("memory:"),
        clock=h.clock,
        policy=QueuePolicy(target=target, daily_pull_cap=None, default_wip_limit=wip),
        plugins=Plugins.create(entry_points=False),
    )


def _assert_crm_equals_core(h: SalesforceHarness, engine: Engine) -> None:
    for opp in engine.store.opportunities():
        crm_id = opp.external_id("salesforce")
        assert crm_id is not None
        back = h.read_back(crm_id)
        expected = opp.outcome.value if opp.outcome else opp.status.value
        assert back["status"] == expected, (opp.id, back)
        if opp.status is OpportunityStatus.RELEASED:
            assert back["owner"] == opp.owner_id


@pytest.mark.slow
def test_ten_thousand_leads_replenish_and_five_hundred_pulls(sf: EmulatorServer) -> None:
    h = SalesforceHarness(sf)
    reps = _team(h, 25)
    for i in range(10_000):
        h.org.create(
            "Lead",
            {
                "LastName": f"L{i}",
                "Company": f"Acct {i % 900}",
                "Rating": RATING[i % 3],
                "SPE_Status__c": "Backlog",
            },
        )
    h.clock.advance(minutes=10)
    engine = _engine(h, target=2_000)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    first = sync.run()
    assert first.streams["opportunities"].applied == 10_000
    assert engine.replenish().plan.to_move == 2_000
    for k in range(500):
        engine.pull(reps[k % len(reps)])
    sf.requests.reset_counts()
    report = sync.run()
    assert report.written == 2_000  # 2,000 queued from the backlog, 500 of them released
    counts = sf.requests.counts()
    assert counts["collection"] == 10  # 2,000 changes in batches of 200
    _assert_crm_equals_core(h, engine)


def test_twenty_percent_faults_converge(sf: EmulatorServer) -> None:
    h = SalesforceHarness(sf)
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
    sf.org.faults.rate, sf.org.faults.rate_status = 0.2, 503
    sf.org.faults.rng = random.Random(5)
    for _ in range(10):
        h.clock.advance(minutes=5)
        report = sync.run()
        if report.pending == 0 and report.written == 0:
            break
    sf.org.faults.rate = 0.0
    h.clock.advance(minutes=5)
    assert sync.run().pending == 0
    assert h.record_count() == 600  # nothing duplicated
    _assert_crm_equals_core(h, engine)


def _poison_released(h: SalesforceHarness, engine: Engine, every: int) -> dict[str, str]:
    """Poison every ``every``-th released lead: Salesforce refuses any collection request
    that holds one (HTTP 400 JSON_PARSER_ERROR). Returns {SPE key: CRM id}."""
    released = sorted(engine.store.opportunities(OpportunityStatus.RELEASED), key=lambda o: o.id)
    poisoned = {o.id: o.external_id("salesforce") or "" for o in released[::every]}
    for crm_id in poisoned.values():
        h.refuse_in_request(crm_id)
    return poisoned


def _assert_poison_quarantined_rest_delivered(
    h: SalesforceHarness, engine: Engine, sync: SyncEngine, poisoned: dict[str, str]
) -> None:
    quarantined = {q.key: q.reason for q in sync.quarantined()}
    assert set(quarantined) == set(poisoned), "every poisoned record, and only those"
    assert all("JSON_PARSER_ERROR" in r for r in quarantined.values()), quarantined
    for key, crm_id in poisoned.items():
        if crm_id:
            assert h.read_back(crm_id)["status"] == "queued"  # Salesforce refused it: unchanged
        else:  # a refused upsert made no record
            assert not [r for r in h.org.all("Lead") if r.get("SPE_Key__c") == key]
    for opp in engine.store.opportunities():
        if opp.id in poisoned:
            continue
        crm_id = opp.external_id("salesforce")
        assert crm_id is not None, f"{opp.id} never reached Salesforce"
        back = h.read_back(crm_id)
        expected = opp.outcome.value if opp.outcome else opp.status.value
        assert back["status"] == expected, (opp.id, back)
        if opp.status is OpportunityStatus.RELEASED:
            assert back["owner"] == opp.owner_id
    keys = Counter(r.get("SPE_Key__c") for r in h.org.all("Lead") if r.get("SPE_Key__c"))
    assert all(n == 1 for n in keys.values()), "a record was created twice"


def test_twenty_percent_faults_with_poisoned_records_in_every_batch(sf: EmulatorServer) -> None:
    """Strict Salesforce (a whole collection request refused for one record's value),
    20 % of calls failing, poisoned records in every batch of 200, and opportunities
    created in SPE: nothing lost, nothing created twice, every poisoned record
    quarantined with its reason, every good record delivered."""
    from spe_core import Opportunity

    h = SalesforceHarness(sf)
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
    poisoned = _poison_released(h, engine, every=25)  # 12 among 300 released
    new = [Opportunity(f"spe-{i}", f"New {i}", h.clock.now()) for i in range(40)]
    engine.enqueue(new)
    for key in ("spe-3", "spe-17"):  # Salesforce refuses the requests upserting these
        h.refuse_in_request(key)
        poisoned[key] = ""
    sf.org.faults.rate, sf.org.faults.rate_status = 0.2, 503
    sf.org.faults.rng = random.Random(5)
    splits = 0
    for _ in range(10):
        h.clock.advance(minutes=5)
        report = sync.run()
        splits += report.split_calls
        if report.pending == 0 and report.written == 0:
            break
    sf.org.faults.rate = 0.0
    h.clock.advance(minutes=5)
    assert sync.run().pending == 0
    assert splits > 0
    assert h.record_count() == 600 + 40 - 2  # the refused upserts never made a record
    for opp in new:
        if opp.id not in poisoned:
            crm_id = engine.opportunity(opp.id).external_id("salesforce")
            assert (h.org.get("Lead", crm_id or "") or {}).get("SPE_Key__c") == opp.id
    _assert_poison_quarantined_rest_delivered(h, engine, sync, poisoned)


def _crash_worker(url: str, ca: str, store: str, seed: int) -> None:
    os.environ.update(
        SF_USERNAME="integration@acme.example",
        SF_PASSWORD=SECRET,
        SF_CLIENT_ID="spe-connected-app",
        SF_CLIENT_SECRET="app-secret",
    )
    adapter = SalesforceAdapter(SalesforceSettings(login_url=url, ca_bundle=ca))
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
    sf: EmulatorServer, tmp_path: Path
) -> None:
    h = SalesforceHarness(sf)
    _team(h, 4)
    for i in range(400):
        h.add_queued(f"Acct {i}", i % 3, i)
    h.clock.set(h.clock.now() - timedelta(hours=1))  # the worker uses the wall clock
    ctx = mp.get_context("spawn")
    rng = random.Random(42)
    runs = int(os.environ.get("SPE_TEST_CRASH_RUNS", "20"))
    for run in range(runs):
        store = f"sqlite:///{tmp_path / f'crash-{run}.db'}"
        worker = ctx.Process(target=_crash_worker, args=(sf.url, sf.ca_path, store, run))
        worker.start()
        time.sleep(rng.uniform(0.8, 3.0))
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        os.environ.update(SF_USERNAME="integration@acme.example", SF_PASSWORD=SECRET)
        engine = Engine(open_store(store), plugins=Plugins.create(entry_points=False))
        sync = SyncEngine(engine, adapter_for(sf), sleep=lambda s: None)
        sync.run()
        assert sync.run().pending == 0
        assert h.record_count() == 400, "a crash duplicated a record"
        keys = Counter(r.get("SPE_Key__c") for r in sf.org.all("Lead") if r.get("SPE_Key__c"))
        assert all(n == 1 for n in keys.values())
        for opp in engine.store.opportunities(OpportunityStatus.RELEASED):
            crm_id = opp.external_id("salesforce")
            assert crm_id is not None
            assert h.read_back(crm_id)["status"] == "released", "a release was lost"
            assert h.read_back(crm_id)["owner"] == opp.owner_id
        for record in sf.org.records["Lead"].values():  # reset for the next run
            record["SPE_Status__c"] = "Queued"
            record["OwnerId"] = None


@pytest.mark.slow
def test_sigkill_with_poisoned_records_in_every_batch(sf: EmulatorServer, tmp_path: Path) -> None:
    """The crash test against strict Salesforce with one lead in twenty poisoned (any
    collection request holding one is refused with HTTP 400): after each SIGKILL a
    recovery run delivers every good record, quarantines every poisoned one with its
    reason, duplicates none."""
    from spe_core import SyncSettings
    from spe_core.outbox import RetryPolicy

    h = SalesforceHarness(sf)
    _team(h, 4)
    ids = [h.add_queued(f"Acct {i}", i % 3, i) for i in range(400)]
    poisoned = set(ids[::20])
    for crm_id in poisoned:
        h.refuse_in_request(crm_id)
    h.clock.set(h.clock.now() - timedelta(hours=1))  # the worker uses the wall clock
    ctx = mp.get_context("spawn")
    rng = random.Random(43)
    runs = int(os.environ.get("SPE_TEST_CRASH_RUNS", "8"))
    settings = SyncSettings(retry=RetryPolicy(max_permanent_failures=1))
    isolated = 0
    for run in range(runs):
        store = f"sqlite:///{tmp_path / f'poison-{run}.db'}"
        worker = ctx.Process(target=_crash_worker, args=(sf.url, sf.ca_path, store, run))
        sf.requests.reset_counts()
        worker.start()
        deadline = time.monotonic() + 120
        while not sf.requests.counts()["collection"] and time.monotonic() < deadline:
            time.sleep(0.05)  # killed while writing: after its first collection request
        time.sleep(rng.uniform(0.0, 1.5))
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join(10)
        os.environ.update(SF_USERNAME="integration@acme.example", SF_PASSWORD=SECRET)
        engine = Engine(open_store(store), plugins=Plugins.create(entry_points=False))
        # the killed worker may have postponed a refused record a second or two (its
        # first permanent failure): the recovery waits for it on the real clock
        sync = SyncEngine(engine, adapter_for(sf), settings, sleep=time.sleep)
        sync.run()
        assert sync.run().pending == 0
        assert h.record_count() == 400, "a crash duplicated a record"
        keys = Counter(r.get("SPE_Key__c") for r in sf.org.all("Lead") if r.get("SPE_Key__c"))
        assert all(n == 1 for n in keys.values())
        quarantined = {q.key: q.reason for q in sync.quarantined()}
        isolated += len(quarantined)
        for opp in engine.store.opportunities():
            crm_id = opp.external_id("salesforce")
            assert crm_id is not None
            if crm_id in poisoned:
                if opp.status is not OpportunityStatus.BACKLOG:  # it had a change to write
                    assert "JSON_PARSER_ERROR" in quarantined[opp.id], opp.id
                assert h.read_back(crm_id)["status"] == "queued"
                continue
            assert opp.id not in quarantined
            if opp.status is OpportunityStatus.RELEASED:
                assert h.read_back(crm_id)["status"] == "released", "a release was lost"
                assert h.read_back(crm_id)["owner"] == opp.owner_id
        for record in sf.org.records["Lead"].values():  # reset for the next run
            record["SPE_Status__c"] = "Queued"
            record["OwnerId"] = None
    assert isolated > 0, "no run got as far as writing the poisoned leads"


# --- traps of the real client -------------------------------------------------------------------


def test_the_session_ignores_ca_bundle_variables(
    sf: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    plain = requests.Session()
    plain.verify = sf.ca_path
    with pytest.raises(requests.exceptions.SSLError):  # the trap: the env var wins
        plain.get(f"{sf.url}/services/data/", timeout=10)
    ours = http_session(SalesforceSettings(login_url=sf.url, ca_bundle=sf.ca_path))
    assert ours.get(f"{sf.url}/services/data/", timeout=10).status_code == 200


def test_paging_follows_next_records_url_as_a_path(sf: EmulatorServer) -> None:
    h = SalesforceHarness(sf)
    for i in range(450):
        h.add_queued(f"Acct {i}", 0, 0)
    adapter = adapter_for(sf, query_page_size=200)
    pages = list(adapter.read("opportunities", None))
    assert [len(p) for p in pages] == [200, 200, 50]
    assert len({r.crm_id for p in pages for r in p}) == 450
    assert sf.requests.counts()["query_more"] == 2


def test_api_limit_is_a_403_and_the_adapter_backs_off(sf: EmulatorServer) -> None:
    from spe_core.errors import TransientError

    h = SalesforceHarness(sf)
    h.add_queued("Acct", 0, 0)
    adapter = adapter_for(sf)
    sf.org.faults.next_statuses = [403]
    with pytest.raises(TransientError, match="REQUEST_LIMIT_EXCEEDED") as info:
        list(adapter.read("opportunities", None))
    assert info.value.retry_after == 60.0


def test_an_expired_session_is_renewed_once(sf: EmulatorServer) -> None:
    h = SalesforceHarness(sf)
    h.add_queued("Acct", 0, 0)
    adapter = adapter_for(sf)
    assert [len(p) for p in adapter.read("opportunities", None)] == [1]
    sf.org.expire_sessions()
    assert [len(p) for p in adapter.read("opportunities", None)] == [1]
    assert sf.requests.counts()["token"] == 2


def test_per_record_failures_inside_http_200_are_checked(sf: EmulatorServer) -> None:
    from spe_core.adapter import Change

    h = SalesforceHarness(sf)
    ok, locked = h.add_queued("A", 0, 0), h.add_queued("B", 0, 0)
    sf.org.faults.failing_records[locked] = "UNABLE_TO_LOCK_ROW"
    results = adapter_for(sf).write(
        [
            Change("opportunity", "k1", {"status": "released"}, ok),
            Change("opportunity", "k2", {"status": "released"}, locked),
        ]
    )
    assert [r.ok for r in results] == [True, False]
    assert results[1].retryable
    assert "UNABLE_TO_LOCK_ROW" in (results[1].error or "")


def test_api_usage_is_read_from_every_reply_and_slows_down(sf: EmulatorServer) -> None:
    from spe_core.errors import TransientError

    h = SalesforceHarness(sf)
    h.add_queued("A", 0, 0)
    slept: list[float] = []
    adapter = SalesforceAdapter(
        SalesforceSettings(login_url=sf.url, ca_bundle=sf.ca_path), sleep=slept.append
    )
    list(adapter.read("opportunities", None))
    assert adapter.api_used == 1
    assert adapter.api_max == sf.org.daily_api_limit
    sf.org.api_used = int(sf.org.daily_api_limit * 0.95)
    list(adapter.read("opportunities", None))
    list(adapter.read("opportunities", None))
    assert slept == [1.0]
    sf.org.api_used = sf.org.daily_api_limit - 1
    list(adapter.read("opportunities", None))
    with pytest.raises(TransientError, match="API usage"):
        list(adapter.read("opportunities", None))


def test_bad_credentials_fail_clearly_without_the_secret(
    sf: EmulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SF_PASSWORD", "wrong-" + SECRET)
    with pytest.raises(AdapterError, match="refused the password login") as info:
        list(adapter_for(sf).read("members", None))
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text
    assert "app-secret" not in str(info.value) + caplog.text


def test_secrets_never_reach_logs_or_errors(
    sf: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = SalesforceHarness(sf)
    h.add_user("Ana", "inside_sales")
    h.add_queued("A", 0, 0)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    sync.run()
    sf.org.faults.next_statuses = [401, 401, 401]
    with pytest.raises(AdapterError) as info:
        sync.run()
    assert SECRET not in str(info.value)
    token_values = list(sf.org.sessions)
    for secret in [SECRET, "app-secret", *token_values]:
        assert secret not in caplog.text
    assert "hidden" in repr(Session("00Dsecret", "https://example"))
    assert "00Dsecret" not in repr(Session("00Dsecret", "https://example"))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_hostile_strings_never_change_a_querys_structure(value: str) -> None:
    text = format_soql("SELECT Id FROM Lead WHERE Company = {} AND Rating = 'Hot'", value)
    query = soql_module.parse(text)
    assert query.fields == ("Id",)
    assert query.sobject == "Lead"
    assert query.referenced == {"Id", "Company", "Rating"}
    now = datetime.now(UTC)
    assert query.matches({"Company": value, "Rating": "Hot"}, now)
    assert not query.matches({"Company": value + "x", "Rating": "Hot"}, now)


def test_tasks_created_in_salesforce_are_routed_and_their_owner_written_back(
    sf: EmulatorServer,
) -> None:
    h = SalesforceHarness(sf)
    h.clock.set(datetime(2026, 1, 5, 10, tzinfo=UTC))  # a Monday, in working hours
    csr = h.add_user("Cara Service", "customer_service")
    rep = h.add_user("Ana Rep", "inside_sales")
    task_id = sf.org.create(
        "Task",
        {"Subject": "Quote for Acme", "SPE_Kind__c": "quote", "Priority": "High", "OwnerId": rep},
    )
    h.clock.advance(minutes=10)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    report = sync.run()
    assert report.streams["tasks"].applied == 1
    routed = engine.task(f"sf-{task_id}")
    assert routed.assignee_id == csr  # to customer service, never to the salesperson
    record = sf.org.get("Task", task_id) or {}
    assert record["OwnerId"] == csr
    assert record["Status"] == "Not Started"
    assert record["SPE_Key__c"] == f"sf-{task_id}"
    engine.accept_task(routed.id, csr)
    sync.run()
    assert (sf.org.get("Task", task_id) or {})["Status"] == "In Progress"
    assert len(sf.org.records["Task"]) == 1


def test_writes_have_a_timeout(sf: EmulatorServer) -> None:
    from spe_core.adapter import Change
    from spe_core.errors import TransientError

    h = SalesforceHarness(sf)
    crm_id = h.add_queued("A", 0, 0)
    adapter = SalesforceAdapter(
        SalesforceSettings(login_url=sf.url, ca_bundle=sf.ca_path, timeout_seconds=0.5)
    )
    list(adapter.read("opportunities", None))  # log in first
    sf.org.faults.latency = 2.0
    try:
        with pytest.raises(TransientError, match="did not answer"):
            adapter.write([Change("opportunity", "k", {"status": "released"}, crm_id)])
    finally:
        sf.org.faults.latency = 0.0


def test_jwt_bearer_login_against_a_configurable_login_url(
    sf: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def keypair() -> tuple[bytes, str]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return private, public.decode()

    private, public = keypair()
    (tmp_path / "app.key").write_bytes(private)
    sf.org.add_jwt_app("spe-connected-app", public)
    monkeypatch.setenv("SF_PRIVATE_KEY_FILE", str(tmp_path / "app.key"))
    h = SalesforceHarness(sf)
    h.add_user("Ana", "inside_sales")
    adapter = adapter_for(sf, auth="jwt")
    assert [len(p) for p in adapter.read("members", None)] == [1]
    other, _ = keypair()
    (tmp_path / "app.key").write_bytes(other)  # signed with a key Salesforce does not know
    with pytest.raises(AdapterError, match="refused the jwt login"):
        list(adapter_for(sf, auth="jwt").read("members", None))


def _event(sf: EmulatorServer, owner: str, subject: str, start: datetime, end: datetime) -> str:
    """An Event in a user's Salesforce calendar (busy time for SPE)."""
    return sf.org.create(
        "Event",
        {
            "Subject": subject,
            "OwnerId": owner,
            "StartDateTime": start.isoformat(),
            "EndDateTime": end.isoformat(),
        },
    )


def test_calendar_busy_time_in_and_bookings_out_as_events(sf: EmulatorServer) -> None:
    """Events in a member's calendar become busy time (and free it again); SPE's bookings
    become Events upserted by SPE_Key__c; the freshness rule follows the sync."""
    from spe_core.calendar import CalendarRules
    from spe_core.model import AppointmentRequest, Location

    h = SalesforceHarness(sf)
    monday = datetime(2026, 1, 5, 10, tzinfo=UTC)
    h.clock.set(monday)
    fay = sf.org.create(
        "User",
        {
            "Name": "Fay Field",
            "Username": "fay@acme.example",
            "SPE_Role__c": "field_sales",
            "IsActive": True,
            "Latitude": 48.137,
            "Longitude": 11.575,
            "City": "Munich",
        },
    )
    tuesday = monday + timedelta(days=1)
    fair = _event(sf, fay, "Trade fair", tuesday.replace(hour=9), tuesday.replace(hour=13))
    h.clock.advance(minutes=10)
    clock = FakeClock(h.clock.now())
    engine = Engine(
        open_store("memory:"),
        clock=clock,
        plugins=Plugins.create(entry_points=False),
        calendar_rules=CalendarRules(),  # busy time must have been read within 24 h
    )
    request = AppointmentRequest(
        "visit-1",
        "Acme",
        timedelta(hours=1),
        "in_person",
        tuesday.replace(hour=0),
        tuesday.replace(hour=23),
        location=Location(48.14, 11.58, "Acme HQ"),
    )
    assert engine.propose(request).slots == ()  # nobody known yet
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    report = sync.run()
    assert report.streams["busy"].applied == 1
    member = engine.member(fay)
    assert member.home_base == Location(48.137, 11.575, "Munich")
    slot = engine.propose(request).best
    assert slot is not None and slot.start >= tuesday.replace(hour=13, minute=10)
    booking = engine.book(request, fay, slot.start, by="coordinator-1")
    sync.run()
    events = [e for e in sf.org.records["Event"].values() if e.get("SPE_Key__c") == "visit-1"]
    assert len(events) == 1
    event = events[0]
    assert event["OwnerId"] == fay and event["ShowAs"] == "Busy"
    assert event["StartDateTime"] == booking.start and event["EndDateTime"] == booking.end
    assert event["Location"] == "Acme HQ"
    # SPE's own Event is not read back as busy time, and a rerun duplicates nothing
    sync.run()
    with engine.store.transaction() as tx:
        assert [b.id for b in tx.iter_busy(fay, monday, monday + timedelta(days=7))] == [fair]
    engine.cancel_booking("visit-1", by="coordinator-1", reason="customer asked")
    sync.run()
    event = next(e for e in sf.org.records["Event"].values() if e.get("SPE_Key__c") == "visit-1")
    assert event["ShowAs"] == "Free" and event["Subject"].startswith("Cancelled:")
    assert sum(1 for e in sf.org.records["Event"].values() if e.get("SPE_Key__c")) == 1
    # the fair is called off in Salesforce: its time is free again
    h.clock.advance(minutes=5)
    sf.org.update("Event", fair, {"ShowAs": "Free"})
    h.clock.advance(minutes=10)
    clock.set(h.clock.now())
    sync.run()
    with engine.store.transaction() as tx:
        assert list(tx.iter_busy(fay, monday, monday + timedelta(days=7))) == []
    # a training she had is deleted in Salesforce (not marked free): queryAll sees it
    training = _event(sf, fay, "Training", tuesday.replace(hour=14), tuesday.replace(hour=16))
    h.clock.advance(minutes=10)
    clock.set(h.clock.now())
    sync.run()
    with engine.store.transaction() as tx:
        assert [b.id for b in tx.iter_busy(fay, monday, monday + timedelta(days=7))] == [training]
    sf.org.delete("Event", training)
    h.clock.advance(minutes=10)
    clock.set(h.clock.now())
    assert sync.run().streams["busy"].applied == 1
    with engine.store.transaction() as tx:
        assert list(tx.iter_busy(fay, monday, monday + timedelta(days=7))) == []
    # without a sync for more than a day, fay is no longer offered as free
    clock.advance(timedelta(hours=30))
    proposal = engine.propose(attrs_evolve_request(request, days=2))
    assert proposal.slots == () and "run a sync" in dict(proposal.excluded)[fay]


def attrs_evolve_request(request: Any, days: int) -> Any:
    import attrs

    return attrs.evolve(
        request,
        earliest=request.earliest + timedelta(days=days),
        deadline=request.deadline + timedelta(days=days),
    )


def test_users_keep_the_attributes_spe_toml_sets(sf: EmulatorServer) -> None:
    """Salesforce supplies who is on the team (name, role, active, time zone, home
    address); skills, WIP limits, hours and the coordinator come from spe.toml's
    settings and survive every sync, including a user's edit in Salesforce."""
    from spe_core.team import MemberSettings

    h = SalesforceHarness(sf)
    fay = sf.org.create(
        "User",
        {
            "Name": "Fay Field",
            "Username": "fay.settings@acme.example",
            "SPE_Role__c": "field_sales",
            "IsActive": True,
            "TimeZoneSidKey": "Europe/Berlin",
        },
    )
    kai = h.add_user("Kai Coordinator", "sales_coordinator")
    h.clock.advance(minutes=10)
    engine = Engine(
        open_store("memory:"),
        clock=h.clock,
        plugins=Plugins.create(entry_points=False),
        member_settings=[
            MemberSettings(fay, {"skills": ["de"], "coordinator_id": kai, "wip_limit": 3})
        ],
    )
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    sync.run()
    member = engine.member(fay)
    assert (member.name, member.role.value, member.time_zone) == (
        "Fay Field",
        "field_sales",
        "Europe/Berlin",
    )
    assert (member.skills, member.coordinator_id, member.wip_limit) == (frozenset({"de"}), kai, 3)
    assert member.home_base is None and member.external_id("salesforce") == fay
    # an integration sets her holidays through the engine (Salesforce has no such field)
    engine.upsert_members([attrs.evolve(member, holiday_country="DE")])
    # her address and name change in Salesforce: those follow, the rest stays
    h.clock.advance(minutes=10)
    sf.org.update(
        "User", fay, {"Name": "Fay Berg", "Latitude": 48.137, "Longitude": 11.575, "City": "Munich"}
    )
    h.clock.advance(minutes=10)
    sync.run()
    member = engine.member(fay)
    assert member.name == "Fay Berg" and member.home_base is not None
    assert (member.skills, member.coordinator_id, member.wip_limit) == (frozenset({"de"}), kai, 3)
    assert member.holiday_country == "DE"
    assert engine.coordinator_problems() == []


def test_records_deleted_in_salesforce_are_withdrawn_not_written(sf: EmulatorServer) -> None:
    """A queued Lead deleted in Salesforce, and one SPE just released whose write has
    not gone out yet, leave SPE's flow; nothing is written to them or quarantined."""
    h = SalesforceHarness(sf)
    (rep,) = _team(h, 1)
    leads = [h.add_queued(f"Acct {i}", 1, i) for i in range(3)]
    h.clock.advance(minutes=10)
    engine = _engine(h, 10)
    sync = SyncEngine(engine, h.adapter, sleep=lambda s: None)
    assert sync.run().streams["opportunities"].applied == 3
    engine.replenish()  # records marked queued wait in the backlog
    sync.run()  # the queue goes out to the CRM
    (pulled,) = engine.pull(rep).released
    crm_id = pulled.external_id("salesforce")
    assert crm_id is not None
    other = next(i for i in leads if i != crm_id)
    sf.org.delete("Lead", crm_id)
    sf.org.delete("Lead", other)
    h.clock.advance(minutes=10)
    report = sync.run()
    assert report.streams["opportunities"].applied == 2
    assert report.written == 0 and report.quarantined_outbound == 0 and report.pending == 0
    by_crm = {o.external_id("salesforce"): o for o in engine.store.opportunities()}
    assert by_crm[crm_id].status is OpportunityStatus.WITHDRAWN
    assert by_crm[other].status is OpportunityStatus.WITHDRAWN
    assert engine.queue_status().level == 1
    h.clock.advance(minutes=10)
    again = sync.run()
    assert again.applied == 0 and again.written == 0 and sync.quarantined() == []
