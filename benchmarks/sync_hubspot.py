"""Benchmark: 10,000 records each way between the core and the HubSpot emulator.

Inbound: 10,000 queued deals read by the sync engine through the real
hubspot-api-client over HTTP (search, 200 a page, up to HubSpot's 10,000
result cap). Outbound: the 10,000 opportunities released to salespeople,
written back (batch update, 100 a call). Prints the API calls used against
the minimum possible (ceil(n/200) search pages, ceil(n/100) batch writes;
target ratio 1.00) and the share of the sync's wall time spent outside HTTP
calls (target under 20 %). The adapter's own search budget (4 calls a second
by default, HubSpot's documented search limit) is switched off here because
the emulator has no such limit; against HubSpot it adds at least
ceil(n/200)/4 seconds to the inbound read. Run:

    .venv/bin/python benchmarks/sync_hubspot.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

from spe_adapters.hubspot.adapter import Apis, HubSpotAdapter
from spe_adapters.hubspot.emulator import EmulatorServer
from spe_adapters.hubspot.settings import HubSpotSettings
from spe_core import Engine, QueuePolicy, open_store
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 records, for CI")
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else 10_000
    with EmulatorServer() as hs:
        os.environ["HUBSPOT_ACCESS_TOKEN"] = hs.portal.new_token()
        members = [
            hs.portal.add_owner("Rep", str(i), f"r{i}@acme.example", teams=["Inside Sales"])
            for i in range(50)
        ]
        for i in range(n):
            hs.portal.create(
                "deals",
                {
                    "dealname": f"D{i}",
                    "pipeline": "default",
                    "spe_account": f"Acct {i % 997}",
                    "spe_status": "queued",
                },
            )
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
        sync = SyncEngine(engine, adapter, sleep=lambda s: None)
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
        hs.requests.reset_counts()
        start = time.perf_counter()
        outbound = sync.run()
        outbound_time = time.perf_counter() - start
        http_out = adapter.http_seconds - http_in
        calls_out = hs.requests.counts()
        assert outbound.written == n, outbound.as_dict()
    writes = calls_out["batch_update"] + calls_out["batch_upsert"]
    min_pages, min_writes = math.ceil(n / 200), math.ceil(n / 100)
    outside = 1 - adapter.http_seconds / (inbound_time + outbound_time)
    print(
        f"{n:,} records in: {pages} search pages (minimum {min_pages}), {inbound_time:.2f} s, "
        f"{100 * (1 - http_in / inbound_time):.0f} % outside HTTP"
    )
    print(
        f"{n:,} records out: {writes} batch writes (minimum {min_writes}), "
        f"{outbound_time:.2f} s, {100 * (1 - http_out / outbound_time):.0f} % outside HTTP"
    )
    print(f"share of wall time outside HTTP, both ways: {100 * outside:.1f} %")
    print(f"HubSpot's search limit (4/s) would add at least {min_pages / 4:.1f} s to the read")
    figures = {
        "search_pages_vs_minimum": round(pages / min_pages, 2),
        "writes_vs_minimum": round(writes / min_writes, 2),
        "share_outside_http": round(outside, 3),
        "records_per_s_in": round(n / inbound_time),
        "records_per_s_out": round(n / outbound_time),
    }
    print(
        json.dumps(
            {
                "benchmark": "sync_hubspot",
                "figures": figures,
                "targets": {
                    "search_pages_vs_minimum": "<= 1.0",
                    "writes_vs_minimum": "<= 1.0",
                    "share_outside_http": "<= 0.2",
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
