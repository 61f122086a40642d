"""SQLite under faults: every failure reaches the caller as a named SpeError, no write
lands in a damaged, deleted or replaced file, and nothing acknowledged is lost."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spe_core import Engine, Opportunity, QueuePolicy
from spe_core.errors import (
    SpeError,
    StoreDamaged,
    StoreError,
    StoreFull,
    StoreGone,
    StoreLocked,
    StoreReadOnly,
)
from spe_core.events import replay
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store.sqlite import SQLiteStore
from spe_core.testing import FakeClock

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
SRC = str(Path(__file__).resolve().parent.parent / "src")


def _engine(url: str) -> Engine:
    return Engine(
        open_store(url),
        clock=FakeClock(T0),
        policy=QueuePolicy(target=10_000, daily_pull_cap=None),
        plugins=Plugins.create(entry_points=False),
    )


def _opps(start: int, n: int, pad: int = 0) -> list[Opportunity]:
    return [
        Opportunity(f"o{i:05d}", f"Account {i} " + "x" * pad, T0) for i in range(start, start + n)
    ]


def _filled(tmp_path: Path, n: int = 200) -> Path:
    path = tmp_path / "spe.db"
    engine = _engine(f"sqlite:///{path}")
    engine.enqueue(_opps(0, n, pad=150))
    engine.store.close()
    return path


def _assert_consistent(path: Path, acknowledged: set[str]) -> None:
    store = open_store(f"sqlite:///{path}")
    try:
        state = {o.id: o for o in store.opportunities()}
        assert acknowledged <= set(state), "an acknowledged write was lost"
        seqs = [r.seq for r in store.events()]
        assert seqs == list(range(1, len(seqs) + 1)), "the event log has a gap"
        assert replay(store.events()) == state, "the event log does not equal the state"
    finally:
        store.close()


def test_a_deleted_file_is_noticed_before_the_next_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spe.db"
    engine = _engine(f"sqlite:///{path}")
    engine.enqueue(_opps(0, 5))
    os.remove(path)
    with pytest.raises(StoreGone, match="deleted") as info:
        engine.enqueue(_opps(5, 5))
    assert str(path) in str(info.value) and info.value.fix
    with pytest.raises(StoreGone):
        list(engine.store.opportunities())
    engine.store.close()


def test_a_replaced_file_is_never_written(tmp_path: Path) -> None:
    path = _filled(tmp_path, 10)
    engine = _engine(f"sqlite:///{path}")
    other = tmp_path / "other.db"
    shutil.copy(path, other)
    os.replace(other, path)
    size = path.stat().st_size
    with pytest.raises(StoreGone, match="replaced"):
        engine.enqueue(_opps(10, 5))
    engine.store.close()
    assert path.stat().st_size == size
    _assert_consistent(path, {f"o{i:05d}" for i in range(10)})


@pytest.mark.parametrize("keep", [1000, 0.5])
def test_a_truncated_file_is_refused_as_damaged_naming_it(tmp_path: Path, keep: float) -> None:
    path = _filled(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(keep if keep > 1 else size * keep) // 4096 * 4096 or int(keep))
    with pytest.raises(StoreDamaged) as info:
        open_store(f"sqlite:///{path}")
    assert str(path) in str(info.value)
    assert "spe store check" in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.Error) or info.value.__cause__ is None


def test_damaged_pages_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    with open(path, "r+b") as f:
        f.seek(4096 * 3)
        f.write(os.urandom(4096 * 2))
    before = path.read_bytes()
    with pytest.raises(StoreDamaged, match=r"integrity check|malformed|damaged"):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == before


def test_another_process_holding_the_lock_gives_store_locked_within_the_bound(
    tmp_path: Path,
) -> None:
    path = _filled(tmp_path, 5)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, sys, time
                conn = sqlite3.connect({str(path)!r}, isolation_level=None)
                conn.execute("BEGIN IMMEDIATE")
                print("locked", flush=True)
                sys.stdin.readline()
                conn.execute("ROLLBACK")
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        engine = _engine(f"sqlite:///{path}?busy_timeout=300ms")
        started = time.monotonic()
        with pytest.raises(StoreLocked, match="busy_timeout") as info:
            engine.enqueue(_opps(5, 1))
        assert time.monotonic() - started < 3
        assert info.value.retryable
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        # reads do not wait behind the other process's write lock
        assert len(list(engine.store.opportunities())) == 5
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
    engine.enqueue(_opps(5, 1))  # the lock is gone: the store works again
    engine.store.close()
    _assert_consistent(path, {f"o{i:05d}" for i in range(6)})


_FSIZE_CHILD = """
import resource, signal, sys
sys.path.insert(0, {src!r})
from datetime import UTC, datetime
from spe_core import Engine, Opportunity, QueuePolicy
from spe_core.errors import SpeError
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.testing import FakeClock

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
t0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
engine = Engine(open_store({url!r}), clock=FakeClock(t0), policy=QueuePolicy(target=10**6),
                plugins=Plugins.create(entry_points=False))
engine.enqueue([Opportunity("warm-up", "A", t0)])
resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, resource.RLIM_INFINITY))
for i in range(10_000):
    batch = [Opportunity(f"o{{i:05d}}-{{k}}", "A" * 180, t0) for k in range(50)]
    try:
        engine.enqueue(batch)
    except SpeError as exc:
        print("ERROR", type(exc).__name__, str(exc).replace(chr(10), " "), flush=True)
        break
    except BaseException as exc:
        print("RAW", type(exc).__module__, type(exc).__name__, exc, flush=True)
        break
    print("ACK", " ".join(o.id for o in batch), flush=True)
"""


def test_a_file_size_limit_gives_store_full_with_the_real_cause(tmp_path: Path) -> None:
    path = tmp_path / "spe.db"
    code = _FSIZE_CHILD.format(src=SRC, url=f"sqlite:///{path}")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    errors = [line for line in lines if not line.startswith("ACK")]
    assert errors and errors[0].startswith("ERROR StoreFull"), (errors, done.stderr[-2000:])
    assert "cannot rollback" not in errors[0]
    assert str(path) in errors[0]
    acknowledged = {"warm-up"} | {
        i for line in lines if line.startswith("ACK") for i in line.split()[1:]
    }
    assert len(acknowledged) > 5
    _assert_consistent(path, acknowledged)


def test_a_driver_error_the_caller_swallows_never_commits(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "spe.db")
    with pytest.raises(StoreError, match="no such table"), store.transaction() as tx:
        tx.set_meta("k", "v")
        with contextlib.suppress(SpeError):  # a careless caller goes on: no commit then
            tx._x("INSERT INTO no_such_table VALUES (1)")
    with store.transaction() as tx:
        assert tx.get_meta("k") is None
    store.close()


def test_every_sqlite_error_is_translated() -> None:
    from spe_core.store.sqlite import translate

    cases = [
        (sqlite3.OperationalError("database is locked"), 5, StoreLocked),
        (sqlite3.OperationalError("database or disk is full"), 13, StoreFull),
        (sqlite3.DatabaseError("database disk image is malformed"), 11, StoreDamaged),
        (sqlite3.DatabaseError("file is not a database"), 26, StoreDamaged),
        (sqlite3.OperationalError("disk I/O error"), 778, StoreFull),
        (sqlite3.OperationalError("attempt to write a readonly database"), 8, StoreReadOnly),
        (sqlite3.OperationalError("attempt to write a readonly database"), 1032, StoreGone),
    ]
    for exc, code, kind in cases:
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        error = translate(exc, "/x/spe.db", "committing", 30)
        assert type(error) is kind
        assert "/x/spe.db" in str(error) and error.fix


def test_postgres_url_bounds_are_parsed_as_libpq_reads_them() -> None:
    pytest.importorskip("psycopg")
    from spe_core.store.postgres import _Settings

    s = _Settings(
        "postgresql://u:s3cret@db:6432/sales?schema=spe&options=-c%20lock_timeout%3D5s"
        "&application_name=a+b&pool_timeout=500ms&statement_timeout=3s&connect_timeout=4",
        1,
        8,
        10,
    )
    assert "options='-c lock_timeout=5s'" in s.conninfo  # %20 is a space
    assert "application_name=a+b" in s.conninfo  # "+" stays a plus sign, as in libpq
    assert "keepalives=1" in s.conninfo and "connect_timeout=4" in s.conninfo
    assert "lock_timeout" not in s.server  # set in options: not overridden
    assert s.server["statement_timeout"] == "3s"
    assert s.server["idle_in_transaction_session_timeout"] == "60s"
    assert s.pool_timeout == 0.5 and s.statement_bound == 6.0
    assert s.where == "PostgreSQL db:6432/sales (schema spe)"
    for bad in ("lock_timeout=soon", "pool_timeout=-1", "pool_max=0", "connect_timeout=x"):
        with pytest.raises(StoreError, match=bad.split("=")[0]):
            _Settings(f"postgresql://u@db/sales?{bad}", 1, 8, 10)


_WORKER = """
import sys
import time
sys.path.insert(0, {src!r})
from datetime import UTC, datetime
from spe_core import Engine, QueuePolicy
from spe_core.errors import StoreError
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.testing import FakeClock

engine = Engine(open_store({url!r}), clock=FakeClock(datetime(2026, 1, 5, 8, tzinfo=UTC)),
                policy=QueuePolicy(target=10**6, daily_pull_cap=None),
                plugins=Plugins.create(entry_points=False))
member = sys.argv[1]
while True:
    try:
        pulled = engine.pull(member).released
        if not pulled:  # the queue ran dry: wait to be killed (a kill must always land)
            time.sleep(0.01)
        for opp in pulled:
            engine.resolve(opp.id, member, "won")
            print("ACK", opp.id, flush=True)
    except StoreError as exc:
        print("ERROR", type(exc).__name__, flush=True)
"""


def test_workers_killed_with_sigkill_lose_nothing(tmp_path: Path) -> None:
    import random

    from spe_core import Member

    path = tmp_path / "spe.db"
    url = f"sqlite:///{path}"
    engine = _engine(url)
    members = ["m1", "m2"]
    engine.upsert_members(Member(m, m, "inside_sales") for m in members)
    engine.enqueue(_opps(0, 20_000))  # more than two workers get through in the run
    engine.store.close()
    code = _WORKER.format(src=SRC, url=url)
    acknowledged: set[str] = set()
    rng = random.Random(3)
    kills = 0
    for _ in range(6):
        procs = [
            subprocess.Popen([sys.executable, "-c", code, m], stdout=subprocess.PIPE, text=True)
            for m in members
        ]
        time.sleep(rng.uniform(0.5, 1.5))
        for p in procs:
            if p.poll() is None:
                p.kill()
                kills += 1
        for p in procs:
            out, _ = p.communicate(timeout=30)
            lines = out.splitlines()
            assert all(line.startswith(("ACK", "ERROR Store")) for line in lines), lines[-3:]
            acknowledged |= {line.split()[1] for line in lines if line.startswith("ACK")}
    assert kills == 12  # every worker of every round was still running when killed
    _assert_consistent(path, set())
    store = open_store(url)
    state = {o.id: o for o in store.opportunities()}
    store.close()
    assert all(state[i].outcome is not None for i in acknowledged), "lost a resolve"
    store = open_store(url)
    released = [r for r in store.events() if r.event.kind == "opportunity.released"]
    store.close()
    ids = [r.event.opportunity_id for r in released]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids)), "released twice"
    print(f"{kills} kills, {len(acknowledged)} resolves acknowledged, {len(ids)} releases")
