"""`spe serve` as a real process: uvicorn on 127.0.0.1 and a free port, called over
HTTP; SIGTERM lets the request in flight finish, then the process exits cleanly."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spe_core import Engine, Opportunity, open_store
from spe_serve.tokens import TokenKind, Tokens

pytest.importorskip("uvicorn")

SRC = Path(__file__).resolve().parent.parent / "src"
CONFIG = """\
[store]
url = "sqlite:///{db}"

[[team]]
id = "ann"
name = "Ann"
role = "inside_sales"
"""


def _http(
    port: int, method: str, path: str, token: str | None = None, timeout: float = 5
) -> tuple[int, Any]:
    """One request over a new connection: (status, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "spe.db"
        self.config = tmp_path / "spe.toml"
        self.config.write_text(CONFIG.format(db=self.db), encoding="utf-8")
        self.port = _free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from spe_serve.cli import serve_app; serve_app()",
                "serve",
                "--config",
                str(self.config),
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if _http(self.port, "GET", "/readyz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"spe serve did not start:\n{self.output}")
            time.sleep(0.1)
        self.output = ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        out, _ = self.proc.communicate(timeout=10)
        self.output = out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight(server: Server) -> None:
    with Engine(open_store(f"sqlite:///{server.db}")) as engine:
        engine.enqueue([Opportunity("opp-1", "acct-1")])
        _, token = Tokens(engine).create(TokenKind.MEMBER, "ann")
    assert _http(server.port, "GET", "/api/v1/queue", token)[1]["level"] == 1

    # hold SQLite's write lock, so the pull below waits inside the server
    blocker = sqlite3.connect(server.db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    answer: dict[str, Any] = {}

    def pull() -> None:
        answer["status"], answer["body"] = _http(
            server.port, "POST", "/api/v1/members/ann/pull", token, timeout=60
        )

    caller = threading.Thread(target=pull)
    caller.start()
    time.sleep(1.0)  # the request is in flight, waiting for the lock
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert server.proc.poll() is None, "the server quit with a request in flight"
    with pytest.raises(ConnectionRefusedError):  # no new connections while draining
        _http(server.port, "GET", "/healthz", timeout=2)
    blocker.execute("ROLLBACK")
    blocker.close()
    caller.join(30)
    assert answer.get("status") == 200, answer
    assert answer["body"]["released"][0]["id"] == "opp-1"
    # uvicorn re-raises the signal once drained, so the exit status says "SIGTERM"
    assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    server.stop()
    assert "Finished server process" in server.output
    assert "scheduler stopped" in server.output  # the jobs stopped before the store closed
    assert token not in server.output  # uvicorn's access log names no header
    with Engine(open_store(f"sqlite:///{server.db}")) as engine:
        assert engine.opportunity("opp-1").owner_id == "ann"  # the pull was committed


@pytest.mark.slow
def test_a_bad_config_fails_with_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "spe.toml"
    bad.write_text("[store\n", encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from spe_serve.cli import serve_app; serve_app()",
            "serve",
            "--config",
            str(bad),
            "--port",
            str(_free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "not valid TOML" in done.stderr and "fix:" in done.stderr


@pytest.mark.slow
def test_the_serve_benchmark_runs_quick() -> None:
    from tests.test_benchmarks_quick import run_quick

    figures = run_quick("serve_pull")["figures"]
    assert figures["cycles"] == 16 * 15  # type: ignore[index]
    assert figures["floor_requests_per_s"] > 0  # type: ignore[index]
