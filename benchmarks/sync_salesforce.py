"""Benchmark: 10,000 records each way between the core and the Salesforce emulator.

Inbound: 10,000 queued leads read by the sync engine through the real
simple-salesforce client over HTTPS. Outbound: the 10,000 opportunities
released to salespeople, written back. Prints the API calls used against
the minimum possible (ceil(n/2000) query pages, ceil(n/200) collection
writes; target ratio 1.00) and the share of the sync's wall time spent
outside HTTP calls (target under 20 %). Run:

    .venv/bin/python benchmarks/sync_salesforce.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

import requests
from _verdict import finish

from spe_adapters.salesforce.adapter import SalesforceAdapter
from spe_adapters.salesforce.emulator import EmulatorServer
from spe_adapters.salesforce.settings import SalesforceSettings
from spe_core import Engine, QueuePolicy, open_store
from spe_core.plugins import Plugins
from spe_core.sync import SyncEngine


class TimedAdapter(SalesforceAdapter):
    """The real adapter, with the time spent inside HTTP calls measured."""

    http_seconds = 0.0

    def __init__(self, settings: SalesforceSettings) -> None:
        super().__init__(settings)
        original = self.http.request

        def timed(*args: Any, **kwargs: Any) -> requests.Response:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.http_seconds += time.perf_counter() - start

        self.http.request = timed  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 records, for CI")
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else 10_000
    with EmulatorServer() as sf:
        sf.org.add_login("bench@acme.example", "bench-password")
        os.environ.update(
            SF_USERNAME="bench@acme.example",
            SF_PASSWORD="bench-password",
            SF_CLIENT_ID="bench",
            SF_CLIENT_SECRET="bench",
        )
        members = [
            sf.org.create(
                "User",
                {
                    "Name": f"Rep {i}",
                    "Username": f"r{i}@acme.example",
                    "SPE_Role__c": "inside_sales",
                    "IsActive": True,
                },
            )
            for i in range(50)
        ]
        for i in range(n):
            sf.org.create(
                "Lead",
                {"LastName": f"L{i}", "Company": f"Acct {i % 997}", "SPE_Status__c": "Queued"},
            )
        adapter = TimedAdapter(SalesforceSettings(login_url=sf.url, ca_bundle=sf.ca_path))
        engine = Engine(
            open_store("memory:"),
            policy=QueuePolicy(target=n, daily_pull_cap=None, default_wip_limit=n),
            plugins=Plugins.create(entry_points=False),
        )
        sync = SyncEngine(engine, adapter, sleep=lambda s: None)
        sf.requests.reset_counts()
        start = time.perf_counter()
        inbound = sync.run()
        inbound_time = time.perf_counter() - start
        calls_in = sf.requests.counts()
        assert inbound.streams["opportunities"].applied == n
        engine.replenish()  # records marked queued wait in the backlog
        sync.run()  # the queue goes out to the CRM (not measured)
        for k in range(n):
            engine.pull(members[k % len(members)])
        sf.requests.reset_counts()
        http_before = adapter.http_seconds
        start = time.perf_counter()
        outbound = sync.run()
        outbound_time = time.perf_counter() - start
        calls_out = sf.requests.counts()
        assert outbound.written == n, outbound.as_dict()
        http_out = adapter.http_seconds - http_before
    # the other streams (members, and the empty tasks and busy-time streams) take one
    # query each; the figure is about the 10,000 records' stream
    others = len(adapter.streams()) - 1
    query_pages = calls_in["query"] + calls_in["query_all"] + calls_in["query_more"] - others
    writes = calls_out["collection"] + calls_out["collection_upsert"]
    min_pages, min_writes = math.ceil(n / 2000), math.ceil(n / 200)
    outside = 1 - (adapter.http_seconds) / (inbound_time + outbound_time)
    print(
        f"{n:,} records in: {query_pages} query pages (minimum {min_pages}), {inbound_time:.2f} s"
    )
    print(
        f"{n:,} records out: {writes} collection calls (minimum {min_writes}), "
        f"{outbound_time:.2f} s, {100 * (1 - http_out / outbound_time):.0f} % outside HTTP"
    )
    print(f"share of wall time outside HTTP, both ways: {100 * outside:.1f} %")
    figures = {
        "query_pages_vs_minimum": round(query_pages / min_pages, 2),
        "writes_vs_minimum": round(writes / min_writes, 2),
        "share_outside_http": round(outside, 3),
        "records_per_s_in": round(n / inbound_time),
        "records_per_s_out": round(n / outbound_time),
    }
    targets = {
        "query_pages_vs_minimum": "<= 1.0",
        "writes_vs_minimum": "<= 1.0",
        "share_outside_http": "<= 0.2",
    }
    return finish(
        "sync_salesforce",
        figures,
        targets,
        quick=args.quick,
        scale_free=["query_pages_vs_minimum", "writes_vs_minimum"],
    )


if __name__ == "__main__":
    sys.exit(main())
