"""Benchmark: pull + resolve over HTTP through `spe serve`, against the same engine calls
in-process on the same SQLite store, with 16 concurrent clients; and the server's own
floor, a minimal endpoint on the same server that does nothing (``GET /healthz``).

The server runs as its own process (uvicorn, one worker, ``--no-jobs``), so the
clients' threads do not share its interpreter. Each client holds one keep-alive
connection and a member token for its own inside salesperson. Prints requests/s and
p50/p99 latency of each, and the overhead of HTTP: (HTTP seconds per cycle) /
(in-process seconds per cycle). Run:

    PYTHONPATH=src .venv/bin/python benchmarks/serve_pull.py            # 16 x 150 cycles
    PYTHONPATH=src .venv/bin/python benchmarks/serve_pull.py --quick    # 16 x 15, for CI
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _verdict import finish

from spe_core.engine import Engine
from spe_core.model import Member, Opportunity
from spe_core.queue import QueuePolicy
from spe_core.store import open_store
from spe_serve.tokens import TokenKind, Tokens

CLIENTS = 16
SRC = Path(__file__).resolve().parent.parent / "src"
POLICY = QueuePolicy(target=10, default_wip_limit=5, daily_pull_cap=None, stale_age=None)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_clients(
    work: Callable[[int], Callable[[], None]], cycles: int
) -> tuple[float, list[float]]:
    """Wall seconds and per-call latencies of CLIENTS threads doing ``cycles`` calls each."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS + 1)

    def client(i: int) -> None:
        call = work(i)
        mine = []
        barrier.wait()
        for _ in range(cycles):
            t = time.perf_counter()
            call()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies


def engine_for(url: str) -> Engine:
    return Engine(open_store(url), policy=POLICY)


def fill(engine: Engine, prefix: str, n: int) -> None:
    engine.enqueue([Opportunity(f"{prefix}{i:06d}", f"a{i % 997}") for i in range(n)])


def in_process(url: str, cycles: int) -> tuple[float, list[float]]:
    engine = engine_for(url)
    try:

        def work(i: int) -> Callable[[], None]:
            member = f"m{i:02d}"

            def cycle() -> None:
                opp = engine.pull(member).released[0]
                engine.resolve(opp.id, member, "won")

            return cycle

        return run_clients(work, cycles)
    finally:
        engine.close()


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    token: str,
    body: dict[str, str] | None = None,
) -> object:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data}")
    return data


def over_http(port: int, tokens: list[str], cycles: int, floor: bool) -> tuple[float, list[float]]:
    def work(i: int) -> Callable[[], None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        member, token = f"m{i:02d}", tokens[i]

        def cycle() -> None:
            data = request(conn, "POST", f"/api/v1/members/{member}/pull", token)
            opp = data["released"][0]["id"]  # type: ignore[index]
            request(
                conn,
                "POST",
                f"/api/v1/opportunities/{opp}/resolve",
                token,
                {"memberId": member, "outcome": "won"},
            )

        def nothing() -> None:
            request(conn, "GET", "/healthz", token)

        return nothing if floor else cycle

    return run_clients(work, cycles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    parser.add_argument(
        "--token-cache", type=float, default=0.0, help="spe serve --token-cache (seconds)"
    )
    args = parser.parse_args()
    cycles = 15 if args.quick else 150
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "spe.db"
        url = f"sqlite:///{db}"
        engine = engine_for(url)
        engine.upsert_members(
            [Member(f"m{i:02d}", f"M {i}", "inside_sales") for i in range(CLIENTS)]
        )
        fill(engine, "in", CLIENTS * cycles)
        fill(engine, "ht", CLIENTS * cycles)
        tokens = [Tokens(engine).create(TokenKind.MEMBER, f"m{i:02d}")[1] for i in range(CLIENTS)]
        engine.close()

        local_wall, local_lat = in_process(url, cycles)

        config = Path(folder) / "spe.toml"
        config.write_text(
            f'[store]\nurl = "{url}"\n\n[queue]\ntarget = 10\ndefault_wip_limit = 5\n'
            "daily_pull_cap = 0\n",
            encoding="utf-8",
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        }
        server = subprocess.Popen(
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
                "--token-cache",
                str(args.token_cache),
            ],
            env=env,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    conn.request("GET", "/readyz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print("spe serve did not start", file=sys.stderr)
                    return 2
                time.sleep(0.1)
            http_wall, http_lat = over_http(port, tokens, cycles, floor=False)
            floor_wall, floor_lat = over_http(port, tokens, cycles, floor=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)

    calls = CLIENTS * cycles
    figures = {
        "cycles": calls,
        "inprocess_cycles_per_s": round(calls / local_wall, 1),
        "inprocess_p50_ms": round(1000 * percentile(local_lat, 0.5), 2),
        "inprocess_p99_ms": round(1000 * percentile(local_lat, 0.99), 2),
        "http_cycles_per_s": round(calls / http_wall, 1),
        "http_requests_per_s": round(2 * calls / http_wall, 1),
        "http_p50_ms": round(1000 * percentile(http_lat, 0.5), 2),
        "http_p99_ms": round(1000 * percentile(http_lat, 0.99), 2),
        "floor_requests_per_s": round(calls / floor_wall, 1),
        "floor_p99_ms": round(1000 * percentile(floor_lat, 0.99), 2),
        "http_over_inprocess": round(http_wall / local_wall, 2),
    }
    print(
        f"serve_pull: {CLIENTS} clients x {cycles} pull+resolve cycles, SQLite, "
        f"token cache {args.token_cache} s"
    )
    for key, value in figures.items():
        print(f"  {key} = {value}")
    return finish(
        "serve_pull",
        figures,
        {"http_over_inprocess": "<= 2.0"},
        quick=args.quick,
    )


if __name__ == "__main__":
    sys.exit(main())
