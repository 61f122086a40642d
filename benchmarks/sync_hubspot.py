"""Benchmark: 10,000 records each way between the core and the HubSpot emulator.

Inbound: 10,000 queued deals read by the sync engine through the real
hubspot-api-client over HTTP (search, 200 a page, up to HubSpot's 10,000
result cap). Outbound: the 10,000 opportunities released to salespeople,
written back (batch update, 100 a call). Prints the API calls used against
the minimum possible (ceil(n/200) search pages, ceil(n/100) batch writes;
target ratio 1.00) and the share of the sync's wall time spent outside HTTP
calls (target under 20 %). The emulator answers as HubSpot documents: results
in no promised order, and a batch update refused whole for one invalid input.

A second run poisons 1 % of the deals (HubSpot refuses any batch update that
holds one) before the same outbound write: the sync splits each refused batch
until the poisoned input stands alone, delivers the rest in the same run and
quarantines the poisoned ones (at their first refusal here, so that retries
later in the run do not mix with the isolation). Target: extra write calls per
poisoned record at most 2 log2(100) = 13.3. The adapter's own search budget (4 calls a second
by default, HubSpot's documented search limit) is switched off here because
the emulator has no such limit; against HubSpot it adds at least
ceil(n/200)/4 seconds to the inbound read. Run:

    .venv/bin/python benchmarks/sync_hubspot.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from typing import Any

from _verdict import finish

from spe_adapters.hubspot.adapter import Apis, HubSpotAdapter
from spe_adapters.hubspot.emulator import EmulatorServer
from spe_adapters.hubspot.settings import HubSpotSettings
from spe_core import Engine, QueuePolicy, SyncSettings, open_store
from spe_core.outbox import RetryPolicy
from spe_core.plugins import Plugins
from spe_core.sync import SyncEngine


class TimedAdapter(HubSpotAdapter):
    """The real adapter, with the time spent inside HTTP calls (request and reading the
    reply's body off the socket) measured at urllib3's pool manager."""

    http_seconds = 0.0

    def build(self, token: str) -> Apis:
        apis = super().build(token)
        for api in (apis.search, apis.batch, apis.owners):
            pool = api.api_client.rest_client.pool_manager
            original = pool.request

            def timed(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    response = _original(*args, **kwargs)
                    _ = response.data  # read the body off the socket (it is cached)
                    return response
                finally:
                    self.http_seconds += time.perf_counter() - start

            pool.request = timed
        return apis


def run(n: int, poisoned_share: float) -> dict[str, Any]:
    """Read ``n`` queued deals, release them all, write them back; measured as figures.
    ``poisoned_share`` of the deals are poisoned just before the measured write."""
    with EmulatorServer() as hs:
        os.environ["HUBSPOT_ACCESS_TOKEN"] = hs.portal.new_token()
        members = [
            hs.portal.add_owner("Rep", str(i), f"r{i}@acme.example", teams=["Inside Sales"])
            for i in range(50)
        ]
        ids = [
            hs.portal.create(
                "deals",
                {
                    "dealname": f"D{i}",
                    "pipeline": "default",
                    "spe_account": f"Acct {i % 997}",
                    "spe_status": "queued",
                },
            )
            for i in range(n)
        ]
        settings = HubSpotSettings(
            host=hs.url,
            team_roles={"Inside Sales": "inside_sales"},
            search_requests_per_second=0,
        )
        adapter = TimedAdapter(settings)
        engine = Engine(
            open_store("memory:"),
            policy=QueuePolicy(target=n, daily_pull_cap=None, default_wip_limit=n),
            plugins=Plugins.create(entry_points=False),
        )
        # poisoned records are quarantined at their first refusal: the run's figures are
        # the isolation alone, not retries of records HubSpot refuses every time
        sync_settings = SyncSettings(retry=RetryPolicy(max_permanent_failures=1))
        sync = SyncEngine(engine, adapter, sync_settings, sleep=lambda s: None)
        hs.requests.reset_counts()
        start = time.perf_counter()
        inbound = sync.run()
        inbound_time = time.perf_counter() - start
        http_in = adapter.http_seconds
        pages = sum(1 for e in hs.requests.entries if e.path.endswith("/deals/search"))
        assert inbound.streams["opportunities"].applied == n, inbound.as_dict()
        engine.replenish()  # records marked queued wait in the backlog
        sync.run()  # the queue goes out to the CRM (not measured)
        for k in range(n):
            engine.pull(members[k % len(members)])
        poisoned = random.Random(7).sample(ids, round(n * poisoned_share))
        for crm_id in poisoned:
            hs.portal.faults.failing_records[crm_id] = "VALIDATION_ERROR"
        hs.requests.reset_counts()
        http_before = adapter.http_seconds  # the unmeasured run's HTTP time is not counted
        start = time.perf_counter()
        outbound = sync.run()
        outbound_time = time.perf_counter() - start
        http_out = adapter.http_seconds - http_before
        calls_out = hs.requests.counts()
        assert outbound.written == n - len(poisoned), outbound.as_dict()
        assert outbound.quarantined == len(poisoned), outbound.as_dict()
    return {
        "pages": pages,
        "writes": calls_out["batch_update"] + calls_out["batch_create"] + calls_out["batch_upsert"],
        "split_calls": outbound.split_calls,
        "poisoned": len(poisoned),
        "inbound_time": inbound_time,
        "outbound_time": outbound_time,
        "http_in": http_in,
        "http_out": http_out,
        "http": http_in + http_out,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 records, for CI")
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else 10_000
    clean = run(n, 0.0)
    pages, writes = clean["pages"], clean["writes"]
    inbound_time, outbound_time = clean["inbound_time"], clean["outbound_time"]
    min_pages, min_writes = math.ceil(n / 200), math.ceil(n / 100)
    outside = 1 - clean["http"] / (inbound_time + outbound_time)
    print(
        f"{n:,} records in: {pages} search pages (minimum {min_pages}), {inbound_time:.2f} s, "
        f"{100 * (1 - clean['http_in'] / inbound_time):.0f} % outside HTTP"
    )
    print(
        f"{n:,} records out: {writes} batch writes (minimum {min_writes}), "
        f"{outbound_time:.2f} s, {100 * (1 - clean['http_out'] / outbound_time):.0f} % "
        "outside HTTP"
    )
    print(f"share of wall time outside HTTP, both ways: {100 * outside:.1f} %")
    print(f"HubSpot's search limit (4/s) would add at least {min_pages / 4:.1f} s to the read")
    dirty = run(n, 0.01)
    extra = dirty["writes"] - min_writes
    per_poisoned = extra / max(1, dirty["poisoned"])
    print(
        f"{n:,} records out, {dirty['poisoned']} poisoned (1 %): {dirty['writes']} batch "
        f"writes, {extra} extra ({dirty['split_calls']} to split refused batches), "
        f"{per_poisoned:.2f} per poisoned record (bound 2 log2(100) = {2 * math.log2(100):.1f});"
        f" the rest delivered, the poisoned quarantined, in the same run"
    )
    figures = {
        "search_pages_vs_minimum": round(pages / min_pages, 2),
        "writes_vs_minimum": round(writes / min_writes, 2),
        "share_outside_http": round(outside, 3),
        "records_per_s_in": round(n / inbound_time),
        "records_per_s_out": round(n / outbound_time),
        "poisoned_extra_calls_per_record": round(per_poisoned, 2),
    }
    targets = {
        "search_pages_vs_minimum": "<= 1.0",
        "writes_vs_minimum": "<= 1.0",
        "share_outside_http": "<= 0.2",
        "poisoned_extra_calls_per_record": f"<= {2 * math.log2(100):.2f}",
    }
    return finish(
        "sync_hubspot",
        figures,
        targets,
        quick=args.quick,
        scale_free=[
            "search_pages_vs_minimum",
            "writes_vs_minimum",
            "poisoned_extra_calls_per_record",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
