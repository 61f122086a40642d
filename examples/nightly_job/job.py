"""Example: the nightly (or early-morning) SPE job against Salesforce.

Run by cron or a scheduler once a day before the sales floor opens:

1. sync: read new and changed Users, Leads and Tasks; write back what moved;
2. sweep: leases that ran out go back to the queue, stale or expired
   opportunities leave it;
3. buffer management: adjust the queue's target when it sat in red or green
   too long (only with --auto-target);
4. replenish: top the queue up to its target from Promotions' backlog;
5. sync again, so Salesforce shows the morning's queue.

    SF_USERNAME=... SF_PASSWORD=... SF_CLIENT_ID=... SF_CLIENT_SECRET=... \\
        python examples/nightly_job/job.py --store sqlite:///spe.db --login-url https://login.salesforce.com

Prints one JSON summary (for the scheduler's log) and exits 0, or 3 when the
CRM failed after the sync engine's retries.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from spe_adapters.salesforce.adapter import SalesforceAdapter
from spe_adapters.salesforce.settings import SalesforceSettings
from spe_core import Engine, QueuePolicy, open_store
from spe_core.clock import Clock
from spe_core.errors import CrmError
from spe_core.flow import FlowMetrics, recommend_buffer
from spe_core.sync import SyncEngine


def nightly(engine: Engine, adapter: SalesforceAdapter, *, auto_target: bool) -> dict[str, Any]:
    """The job's steps; returns its summary."""
    sync = SyncEngine(engine, adapter)
    before = sync.run()
    swept = engine.sweep()
    adjusted = None
    if auto_target:
        start = engine.clock.now() - timedelta(days=5)
        metrics = FlowMetrics(policy=engine.policy).feed_all(
            r for r in engine.store.events() if r.event.at >= start
        )
        rec = recommend_buffer(metrics.report(engine.clock.now()).zone_share, engine.policy)
        if rec.action != "keep":
            engine.set_target(rec.recommended_target, rec.evidence)
            adjusted = {
                "from": rec.current_target,
                "to": rec.recommended_target,
                "why": rec.evidence,
            }
    plan = engine.replenish().plan
    after = sync.run()
    return {
        "read": before.read,
        "lease_expired": len(swept.lease_expired),
        "stale": len(swept.stale),
        "expired": len(swept.expired),
        "target_adjusted": adjusted,
        "queue": {
            "level": plan.level_after,
            "target": plan.target,
            "zone": plan.zone_after.value,
            "promotions_shortfall": plan.shortfall,
        },
        "written": before.written + after.written,
        "quarantined": before.quarantined + after.quarantined,
    }


def main(argv: list[str] | None = None, clock: Clock | None = None) -> int:
    parser = argparse.ArgumentParser(description="SPE's nightly job against Salesforce")
    parser.add_argument("--store", default="sqlite:///spe.db")
    parser.add_argument("--login-url", default="https://login.salesforce.com")
    parser.add_argument("--ca-bundle", default=None, help="CA file (for an emulator or proxy)")
    parser.add_argument("--target", type=int, default=150, help="the queue's target")
    parser.add_argument("--auto-target", action="store_true", help="apply buffer management")
    args = parser.parse_args(argv)
    engine = Engine(open_store(args.store), policy=QueuePolicy(target=args.target), clock=clock)
    engine.use_stored_target()
    adapter = SalesforceAdapter(
        SalesforceSettings(login_url=args.login_url, ca_bundle=args.ca_bundle)
    )
    try:
        summary = nightly(engine, adapter, auto_target=args.auto_target)
    except CrmError as exc:
        print(json.dumps({"error": exc.problem, "fix": exc.fix}))
        return 3
    finally:
        adapter.close()
        engine.store.close()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
