"""Benchmark: 10,000 records each way between the core and the Salesforce emulator.

The emulator runs in its own process (``python -m spe_adapters.salesforce.emulator``,
what ``spe emulator salesforce`` runs), seeded over its admin route with the demo team
and 10,000 queued leads; this process holds only the sync and the client library, as
against a real org. The sync runs on an SQLite store in a temporary folder, as
``spe sync`` does.

Inbound: the 10,000 queued leads read by the sync engine through the real
simple-salesforce client over HTTPS. Outbound: the 10,000 opportunities
released to salespeople, written back.

Baseline (the bare loop): the same calls with the same client library against the
same emulator, and nothing else: a simple-salesforce client logged in the same way
runs each stream's SOQL (the adapter's, through ``query_all_iter`` with the same batch
size, so the same query and queryMore pages) and only counts the records; then it
writes the same 10,000 changes (status released, owner, release time, by record id)
in the same collection PATCH calls of 200, built from a list of plain tuples, and
checks each record's success; the outbound run's stream reads (the records the sync
wrote before come back changed) are made again with the same SOQL, too. The sync's
work outside HTTP (mapping, the inbound rules, the store, staging the outbox) is what
separates the two.

Figures and targets (the issue's):

- ``records_per_s_vs_bare_in`` / ``_out``: the sync's records per second over the
  bare loop's, each way: >= 0.8;
- ``query_pages_vs_minimum`` (ceil(n/2000) query pages) and ``writes_vs_minimum``
  (ceil(n/200) collection writes): <= 1.00 (scale-free: judged by ``--quick`` too);
- ``share_outside_http``: the share of the sync's wall time spent outside HTTP calls
  (time in requests, which here includes the emulator's own work): <= 0.20;
- a second run poisons 1 % of the leads (the emulator's ``refused_in_request`` fault:
  Salesforce refuses a whole collection request holding a value that does not
  deserialize, HTTP 400 JSON_PARSER_ERROR) before the same outbound write: the sync
  splits each refused collection until the poisoned record stands alone, delivers the
  rest in the same run and quarantines the poisoned ones (at their first refusal here,
  so that retries later in the run do not mix with the isolation).
  ``poisoned_extra_calls_per_record``: extra collection calls per poisoned record, at
  most 2 log2(200) = 15.3 (scale-free).

Run::

    .venv/bin/python benchmarks/sync_salesforce.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import requests
from _emulator_process import EmulatorProcess
from _verdict import finish
from simple_salesforce.api import Salesforce

from spe_adapters.salesforce.adapter import BATCH, DELETIONS_READ, SalesforceAdapter
from spe_adapters.salesforce.auth import login
from spe_adapters.salesforce.mapping import format_datetime
from spe_adapters.salesforce.settings import SalesforceSettings
from spe_core import Engine, QueuePolicy, SyncSettings, open_store
from spe_core.model import OpportunityStatus, Role
from spe_core.outbox import RetryPolicy
from spe_core.plugins import Plugins
from spe_core.sync import SyncEngine

QUERY_ENDPOINTS = ("query", "query_all", "query_more")
WRITE_ENDPOINTS = ("collection", "collection_upsert")


class TimedAdapter(SalesforceAdapter):
    """The real adapter, with the time spent inside HTTP calls measured and the SOQL of
    each stream read kept (for the bare loop to run the same queries)."""

    http_seconds = 0.0

    def __init__(self, settings: SalesforceSettings) -> None:
        super().__init__(settings)
        self.queries: list[tuple[str, str]] = []
        original = self.http.request

        def timed(*args: Any, **kwargs: Any) -> requests.Response:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.http_seconds += time.perf_counter() - start

        self.http.request = timed  # type: ignore[method-assign]

    def _query(self, stream: str, since: datetime | None) -> str:
        soql = super()._query(stream, since)
        self.queries.append((stream, soql))
        return soql


def _delta(after: dict[str, int], before: dict[str, int], names: Sequence[str]) -> int:
    return sum(after.get(k, 0) - before.get(k, 0) for k in names)


def bare_client(settings: SalesforceSettings) -> Salesforce:
    """A simple-salesforce client logged in as the adapter logs in (one token request)."""
    http = requests.Session()
    http.trust_env = False
    http.verify = settings.ca_bundle or True
    session = login(settings, http)
    return Salesforce(
        session_id=session.session_id,
        instance_url=session.instance_url,
        version=settings.api_version,
        session=http,
    )


def bare_read(settings: SalesforceSettings, queries: Sequence[tuple[str, str]]) -> int:
    """The bare loop's inbound: the same SOQL, the same pages; only counts the records."""
    sf = bare_client(settings)
    headers = {"Sforce-Query-Options": f"batchSize={settings.query_page_size}"}
    count = 0
    for stream, soql in queries:
        for _ in sf.query_all_iter(soql, include_deleted=stream in DELETIONS_READ, headers=headers):
            count += 1
    return count


def bare_write(
    settings: SalesforceSettings, released: Sequence[tuple[str, str, str, datetime]]
) -> int:
    """The bare loop's outbound: ``(key, record id, owner id, released at)`` in collection
    PATCH calls of 200; returns the records written."""
    sf = bare_client(settings)
    f = settings.fields
    status = f.status_values["released"]
    written = 0
    for start in range(0, len(released), BATCH):
        records = [
            {
                "attributes": {"type": f.queued_object},
                f.key_field: key,
                "Id": crm_id,
                f.status_field: status,
                "OwnerId": owner,
                f.released_at_field: format_datetime(at),
            }
            for key, crm_id, owner, at in released[start : start + BATCH]
        ]
        body = {"allOrNone": False, "records": records}
        reply = sf.restful("composite/sobjects", method="PATCH", json=body)
        written += sum(1 for item in reply if item.get("success"))
    return written


def poisoned_run(n: int, share: float) -> dict[str, int]:
    """The outbound write of ``n`` released leads with ``share`` of them poisoned (any
    collection request holding one is refused whole): collection calls, split calls,
    poisoned records."""
    with EmulatorProcess("salesforce") as emu, tempfile.TemporaryDirectory() as tmp:
        emu.admin("reset")
        credentials = emu.admin("seed", {"seed": 7, "leads": n})
        os.environ.update(
            SF_USERNAME=credentials["username"],
            SF_PASSWORD=credentials["password"],
            SF_CLIENT_ID="bench",
            SF_CLIENT_SECRET="bench",
        )
        settings = SalesforceSettings(login_url=emu.url, ca_bundle=emu.ca_path)
        engine = Engine(
            open_store(f"sqlite:///{tmp}/spe.db"),
            policy=QueuePolicy(target=n, daily_pull_cap=None, default_wip_limit=n),
            plugins=Plugins.create(entry_points=False),
        )
        # poisoned records are quarantined at their first refusal: the figure is the
        # isolation alone, not retries of records Salesforce refuses every time
        sync_settings = SyncSettings(retry=RetryPolicy(max_permanent_failures=1))
        sync = SyncEngine(engine, SalesforceAdapter(settings), sync_settings, sleep=lambda s: None)
        sync.run()
        engine.replenish()  # records marked queued wait in the backlog
        sync.run()  # the queue goes out to the CRM (not measured)
        sellers = [m for m in engine.members() if m.role is Role.INSIDE_SALES]
        for member in sellers:
            engine.pull(member.id, count=min(10_000, n // len(sellers) + 1))
        ids = sorted(str(o.external_id("salesforce")) for o in engine.store.opportunities())
        poisoned = random.Random(7).sample(ids, round(n * share))
        emu.admin("faults", {"refused_in_request": poisoned})
        before = emu.counts()
        outbound = sync.run()
        writes = _delta(emu.counts(), before, WRITE_ENDPOINTS)
        assert outbound.written == n - len(poisoned), outbound.as_dict()
        assert outbound.quarantined == len(poisoned), outbound.as_dict()
        engine.close()
    return {"writes": writes, "split_calls": outbound.split_calls, "poisoned": len(poisoned)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 records, for CI")
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else 10_000
    with EmulatorProcess("salesforce") as emu, tempfile.TemporaryDirectory() as tmp:
        emu.admin("reset")
        credentials = emu.admin("seed", {"seed": 7, "leads": n})
        os.environ.update(
            SF_USERNAME=credentials["username"],
            SF_PASSWORD=credentials["password"],
            SF_CLIENT_ID="bench",
            SF_CLIENT_SECRET="bench",
        )
        settings = SalesforceSettings(login_url=emu.url, ca_bundle=emu.ca_path)
        adapter = TimedAdapter(settings)
        engine = Engine(
            open_store(f"sqlite:///{tmp}/spe.db"),
            policy=QueuePolicy(target=n, daily_pull_cap=None, default_wip_limit=n),
            plugins=Plugins.create(entry_points=False),
        )
        sync = SyncEngine(engine, adapter, sleep=lambda s: None)

        before = emu.counts()
        start = time.perf_counter()
        inbound = sync.run()
        inbound_time = time.perf_counter() - start
        query_pages = _delta(emu.counts(), before, QUERY_ENDPOINTS)
        http_in = adapter.http_seconds
        assert inbound.streams["opportunities"].applied == n, inbound.as_dict()

        before = emu.counts()
        start = time.perf_counter()
        bare_read_count = bare_read(settings, adapter.queries)
        bare_in_time = time.perf_counter() - start
        bare_pages = _delta(emu.counts(), before, QUERY_ENDPOINTS)
        assert bare_read_count >= n and bare_pages == query_pages, (bare_pages, query_pages)

        engine.replenish()  # records marked queued wait in the backlog
        sync.run()  # the queue goes out to the CRM (not measured)
        sellers = [m for m in engine.members() if m.role is Role.INSIDE_SALES]
        for member in sellers:
            engine.pull(member.id, count=min(10_000, n // len(sellers) + 1))
        before = emu.counts()
        http_before = adapter.http_seconds
        adapter.queries.clear()
        start = time.perf_counter()
        outbound = sync.run()
        outbound_time = time.perf_counter() - start
        writes = _delta(emu.counts(), before, WRITE_ENDPOINTS)
        http_out = adapter.http_seconds - http_before
        assert outbound.written == n, outbound.as_dict()

        crm_owner = {m.id: m.external_id("salesforce") for m in engine.members()}
        released = [
            (o.id, o.external_id("salesforce"), crm_owner[o.owner_id], o.released_at)
            for o in engine.store.opportunities(OpportunityStatus.RELEASED)
            if o.owner_id is not None and o.released_at is not None
        ]
        before = emu.counts()
        start = time.perf_counter()
        # the same run's calls: the streams read again (the records SPE wrote before
        # come back changed), then the writes
        bare_read(settings, adapter.queries)
        bare_written = bare_write(settings, released)  # type: ignore[arg-type]
        bare_out_time = time.perf_counter() - start
        bare_writes = _delta(emu.counts(), before, WRITE_ENDPOINTS)
        assert bare_written == n and bare_writes == writes, (bare_written, bare_writes, writes)
        engine.close()
    # the other streams (members, and the empty tasks and busy-time streams) take one
    # query each; the figure is about the 10,000 records' stream
    others = len(adapter.streams()) - 1
    opp_pages = query_pages - others
    min_pages, min_writes = math.ceil(n / 2000), math.ceil(n / 200)
    outside = 1 - (http_in + http_out) / (inbound_time + outbound_time)
    print(
        f"{n:,} records in: {opp_pages} query pages (minimum {min_pages}), sync "
        f"{inbound_time:.2f} s ({n / inbound_time:,.0f}/s, {100 * (1 - http_in / inbound_time):.0f}"
        f" % outside HTTP), bare loop {bare_in_time:.2f} s ({n / bare_in_time:,.0f}/s)"
    )
    print(
        f"{n:,} records out: {writes} collection calls (minimum {min_writes}), sync "
        f"{outbound_time:.2f} s ({n / outbound_time:,.0f}/s, "
        f"{100 * (1 - http_out / outbound_time):.0f} % outside HTTP), bare loop "
        f"{bare_out_time:.2f} s ({n / bare_out_time:,.0f}/s)"
    )
    print(f"share of wall time outside HTTP, both ways: {100 * outside:.1f} %")
    dirty = poisoned_run(n, 0.01)
    extra = dirty["writes"] - min_writes
    per_poisoned = extra / max(1, dirty["poisoned"])
    print(
        f"{n:,} records out, {dirty['poisoned']} poisoned (1 %): {dirty['writes']} collection "
        f"calls, {extra} extra ({dirty['split_calls']} to split refused requests), "
        f"{per_poisoned:.2f} per poisoned record (bound 2 log2(200) = {2 * math.log2(200):.1f});"
        f" the rest delivered, the poisoned quarantined, in the same run"
    )
    figures = {
        "query_pages_vs_minimum": round(opp_pages / min_pages, 2),
        "writes_vs_minimum": round(writes / min_writes, 2),
        "records_per_s_vs_bare_in": round(bare_in_time / inbound_time, 3),
        "records_per_s_vs_bare_out": round(bare_out_time / outbound_time, 3),
        "share_outside_http": round(outside, 3),
        "records_per_s_in": round(n / inbound_time),
        "records_per_s_out": round(n / outbound_time),
        "bare_records_per_s_in": round(n / bare_in_time),
        "bare_records_per_s_out": round(n / bare_out_time),
        "poisoned_extra_calls_per_record": round(per_poisoned, 2),
    }
    targets = {
        "query_pages_vs_minimum": "<= 1.0",
        "writes_vs_minimum": "<= 1.0",
        "records_per_s_vs_bare_in": ">= 0.8",
        "records_per_s_vs_bare_out": ">= 0.8",
        "share_outside_http": "<= 0.2",
        "poisoned_extra_calls_per_record": f"<= {2 * math.log2(200):.2f}",
    }
    return finish(
        "sync_salesforce",
        figures,
        targets,
        quick=args.quick,
        scale_free=[
            "query_pages_vs_minimum",
            "writes_vs_minimum",
            "poisoned_extra_calls_per_record",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
