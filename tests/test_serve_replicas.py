"""Two `spe serve` replicas on one PostgreSQL store, 200 simulated reps pulling and
resolving over HTTP for a bounded time, one replica killed (SIGKILL) half-way: no
opportunity released twice, nothing lost (what the dead replica's reps held comes back
when its lease expires), every event once. Prints requests/s and p99."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spe_core import Engine, FakeClock, Member, Opportunity, open_store
from spe_core.events import LeaseExpired, OpportunityReleased, OpportunityResolved
from spe_core.queue import QueuePolicy
from spe_serve.tokens import TokenKind, Tokens
from tests.pg import drop_test_schemas, needs_postgres, schema_url

pytest.importorskip("uvicorn")

SRC = Path(__file__).resolve().parent.parent / "src"
REPS = 200
OPPORTUNITIES = 3000
SECONDS = 8.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _replica(config: Path, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from spe_serve.cli import serve_app; serve_app()",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--no-jobs",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "replica did not start"
        time.sleep(0.1)


@needs_postgres
@pytest.mark.postgres
@pytest.mark.slow
def test_two_replicas_200_reps_one_killed_nothing_lost_nothing_twice(tmp_path: Path) -> None:
    url = schema_url()
    policy = QueuePolicy(target=10, default_wip_limit=1, daily_pull_cap=None, stale_age=None)
    with Engine(open_store(url), policy=policy) as engine:
        engine.upsert_members(
            [Member(f"r{i:03d}", f"Rep {i}", "inside_sales") for i in range(REPS)]
        )
        engine.enqueue([Opportunity(f"o{i:05d}", f"a{i % 97}") for i in range(OPPORTUNITIES)])
        _, token = Tokens(engine).create(TokenKind.INTEGRATION)
    config = tmp_path / "spe.toml"
    config.write_text(
        f'[store]\nurl = "{url}"\n\n[queue]\ntarget = 10\ndefault_wip_limit = 1\n'
        "daily_pull_cap = 0\nstale_days = 0\n",
        encoding="utf-8",
    )
    ports = [_port(), _port()]
    replicas = [_replica(config, p) for p in ports]
    latencies: list[float] = []
    outcomes: dict[str, list[str]] = {"resolved": [], "held": []}
    failures = Counter[str]()
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def rep(i: int) -> None:
        member = f"r{i:03d}"
        order = [ports[i % 2], ports[(i + 1) % 2]]
        conn = http.client.HTTPConnection("127.0.0.1", order[0], timeout=30)

        def call(method: str, path: str, body: dict[str, str] | None = None) -> Any:
            nonlocal conn
            for _ in range(2):
                try:
                    t = time.perf_counter()
                    conn.request(
                        method,
                        path,
                        body=json.dumps(body) if body else None,
                        headers={
                            "Authorization": f"Bearer {token}",
                            "Content-Type": "application/json",
                        },
                    )
                    response = conn.getresponse()
                    data = json.loads(response.read())
                    with lock:
                        latencies.append(time.perf_counter() - t)
                    return response.status, data
                except (OSError, http.client.HTTPException):  # its replica died: the other
                    with lock:
                        failures["connection"] += 1
                    order.reverse()
                    conn = http.client.HTTPConnection("127.0.0.1", order[0], timeout=30)
            return None, None

        while time.monotonic() < stop:
            status, data = call("POST", f"/api/v1/members/{member}/pull")
            if status != 200 or not data["released"]:
                continue
            opp = data["released"][0]["id"]
            status, _ = call(
                "POST",
                f"/api/v1/opportunities/{opp}/resolve",
                {"memberId": member, "outcome": "won"},
            )
            with lock:
                outcomes["resolved" if status == 200 else "held"].append(opp)

    threads = [threading.Thread(target=rep, args=(i,)) for i in range(REPS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(SECONDS / 2)
    replicas[1].send_signal(signal.SIGKILL)  # mid-request, for some of its reps
    for t in threads:
        t.join(120)
    wall = time.monotonic() - started
    replicas[0].send_signal(signal.SIGTERM)
    for r in replicas:
        r.wait(30)

    latencies.sort()
    p99 = latencies[int(0.99 * len(latencies))] * 1000
    print(
        f"\n{len(latencies)} requests in {wall:.1f} s: {len(latencies) / wall:.0f}/s, "
        f"p99 {p99:.0f} ms; {len(outcomes['resolved'])} resolved; {dict(failures)}"
    )
    try:
        later = FakeClock(datetime.now(UTC) + timedelta(days=2))  # every lease has run out
        with Engine(open_store(url), policy=policy, clock=later) as engine:
            returned = engine.expire_leases()  # what the dead replica's reps still held
            records = list(engine.store.events())
            opportunities = {o.id: o for o in engine.store.opportunities()}
        seqs = [r.seq for r in records]
        assert seqs == list(range(1, len(seqs) + 1))  # every event once, none lost
        released = Counter(
            r.event.opportunity_id for r in records if isinstance(r.event, OpportunityReleased)
        )
        resolved = Counter(
            r.event.opportunity_id for r in records if isinstance(r.event, OpportunityResolved)
        )
        expired = {r.event.opportunity_id for r in records if isinstance(r.event, LeaseExpired)}
        assert max(resolved.values()) == 1
        assert set(outcomes["resolved"]) <= set(resolved)
        for opp, times in released.items():  # released again only after it came back
            assert times == 1 or opp in expired, opp
        assert set(returned) == expired
        assert len(opportunities) == OPPORTUNITIES  # nothing lost
        status = Counter(o.status.value for o in opportunities.values())
        assert status["released"] == 0 and status["resolved"] == len(resolved)
        assert status["queued"] == OPPORTUNITIES - len(resolved)
        assert len(outcomes["resolved"]) > REPS // 4  # the run did real work
    finally:
        drop_test_schemas()
