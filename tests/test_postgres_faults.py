"""PostgreSQL under faults: backends killed at random, a stalled network path, lock
holders past the timeouts, pools of one. Every caller error is an SpeError of the
right kind, every call comes back within its bound, nothing acknowledged is lost."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from spe_core import Engine, Member, Opportunity, OpportunityStatus, QueuePolicy
from spe_core.errors import (
    CommitOutcomeUnknown,
    NotCommitted,
    SpeError,
    StoreError,
    StoreLocked,
    StoreUnavailable,
)
from spe_core.events import OpportunityReleased, Recorded, replay
from spe_core.hookspecs import hookimpl
from spe_core.plugins import Plugins
from spe_core.testing import FakeClock
from tests.pg import URL, drop_test_schemas, needs_postgres, schema_url

pytestmark = [needs_postgres, pytest.mark.postgres]

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
POLICY = QueuePolicy(
    target=10_000, daily_pull_cap=None, default_wip_limit=3, lease=timedelta(hours=1)
)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    drop_test_schemas()


def _store(url: str, **params: str) -> object:
    from spe_core.store.postgres import PostgresStore

    extra = "".join(f"&{k}={v}" for k, v in params.items())
    return PostgresStore(url + extra)


def _engine(store: object) -> Engine:
    return Engine(
        store,  # type: ignore[arg-type]
        policy=POLICY,
        clock=FakeClock(T0),
        plugins=Plugins.create(entry_points=False),
    )


def _seed(engine: Engine, members: list[str], n: int) -> None:
    engine.upsert_members(Member(m, m, "inside_sales") for m in members)
    engine.enqueue(Opportunity(f"o{i:05d}", f"a{i}", T0) for i in range(n))


def _check_log(engine: Engine) -> dict[str, Opportunity]:
    state = {o.id: o for o in engine.store.opportunities()}
    recorded = list(engine.store.events())
    assert [r.seq for r in recorded] == list(range(1, len(recorded) + 1)), "gap in the log"
    assert replay(recorded) == state, "the event log does not equal the state"
    released = Counter(
        r.event.opportunity_id for r in recorded if isinstance(r.event, OpportunityReleased)
    )
    assert [k for k, v in released.items() if v > 1] == [], "released twice"
    return state


class Proxy:
    """A local TCP proxy to the test server that can stall (a silent partition: the
    connection stays up, nothing gets through), lose the reply to a COMMIT (the server
    commits, the client never hears: always, or at random with ``reply_loss``) or lose
    the COMMIT itself on its way (the server never commits)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.replies_to_lose = 0  # the replies to the next COMMITs are lost
        self.requests_to_lose = 0  # the next COMMITs lost on their way to the server
        self.reply_loss = 0.0  # the share of COMMIT replies lost, at random
        self.lost = 0
        self.rng = random.Random(22)
        self.muted: set[socket.socket] = set()
        self.closed = False
        self.sockets: list[socket.socket] = []
        self.clients: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            self.clients.add(client)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                while self.stalled.is_set() and not self.closed:
                    time.sleep(0.02)
                if not data or self.closed:
                    break
                if dst in self.muted:
                    continue  # the reply is lost on the way
                committing = src in self.clients and b"COMMIT\x00" in data
                # a unit commits in pipeline mode (extended protocol: Parse first); a
                # pooled connection's set-up commits with a simple query
                unit = committing and data.startswith(b"P")
                if unit and self.requests_to_lose:
                    self.requests_to_lose -= 1  # the COMMIT never reaches the server
                    self.lost += 1
                    time.sleep(0.3)
                    break
                commit = (unit and self.replies_to_lose > 0) or (
                    committing and self.reply_loss > 0 and self.rng.random() < self.reply_loss
                )
                if commit:
                    self.replies_to_lose = max(0, self.replies_to_lose - 1)
                    self.muted.add(src)
                    self.lost += 1
                dst.sendall(data)
                if commit:
                    time.sleep(0.3)  # the server commits; its reply never arrives
                    break
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for s in self.sockets:
            s.close()


def _proxied(url: str, port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{port}")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def test_a_stalled_network_gives_unavailable_within_the_bound_and_heals() -> None:
    from urllib.parse import urlsplit

    target = urlsplit(URL)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    try:
        url = _proxied(schema_url("spe_test"), proxy.port)
        store = _store(
            url, statement_timeout="1s", connect_timeout="2", pool_timeout="2", pool_max="2"
        )
        engine = _engine(store)
        _seed(engine, ["m1"], 5)
        proxy.stalled.set()
        # the partition lasts 40 s (SPE_TEST_PARTITION_SECONDS=40); calls keep
        # coming all along, and each comes back within its bound
        partition = float(os.environ.get("SPE_TEST_PARTITION_SECONDS", "0"))
        healed_at = time.monotonic() + partition
        calls = 0
        while True:
            for call in (lambda: engine.pull("m1"), lambda: list(engine.store.opportunities())):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable) as info:
                    call()
                calls += 1
                assert time.monotonic() - started < 8, "a call outlived its bound"
                assert info.value.retryable and "PostgreSQL" in str(info.value)
            if time.monotonic() >= healed_at:
                break
        proxy.stalled.clear()
        print(f"{calls} calls during the partition, each back within its bound")
        deadline = time.monotonic() + 20
        while True:  # service resumes by itself
            try:
                assert engine.pull("m1").released
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the store did not heal"
                time.sleep(0.2)
        engine.store.close()
    finally:
        proxy.close()


def test_a_lost_commit_reply_is_resolved_by_the_operation_id() -> None:
    from urllib.parse import urlsplit

    target = urlsplit(URL)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    heard: list[int] = []

    class Listener:
        @hookimpl
        def spe_event(self, recorded: Recorded) -> None:
            heard.append(recorded.seq)

    try:
        url = schema_url("spe_test")
        store = _store(_proxied(url, proxy.port), pool_max="1")
        engine = Engine(
            store,  # type: ignore[arg-type]
            policy=POLICY,
            clock=FakeClock(T0),
            plugins=Plugins.create(entry_points=False, plugins=[Listener()]),
        )
        _seed(engine, ["m1"], 2)
        heard.clear()
        proxy.replies_to_lose = 1
        # the server committed; the reply was lost; the store found the events by the
        # unit's operation id on a fresh connection: the call returns as if nothing broke
        pulled = engine.pull("m1")
        assert proxy.lost == 1 and pulled.opportunity is not None
        state = _check_log(engine)
        assert state[pulled.opportunity.id].owner_id == "m1"
        assert heard == [len(list(engine.store.events()))], "listeners hear the final seq"
        engine.store.close()
    finally:
        proxy.close()


def test_a_lost_commit_reply_without_an_operation_id_is_unknown() -> None:
    """Events appended straight through the store (no unit of work, so no operation id)
    cannot be looked up: a lost reply is CommitOutcomeUnknown, never NotCommitted."""
    from urllib.parse import urlsplit

    from spe_core.events import QueueTargetChanged

    target = urlsplit(URL)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    try:
        store = _store(_proxied(schema_url("spe_test"), proxy.port), pool_max="1")
        proxy.replies_to_lose = 1
        unknown = pytest.raises(CommitOutcomeUnknown, match="no event with an operation id")
        with unknown, store.transaction() as tx:  # type: ignore[attr-defined]
            tx.append(QueueTargetChanged(at=T0, previous=1, target=2, reason="test"))
        assert proxy.lost == 1
        assert len(list(store.events())) == 1  # it had committed  # type: ignore[attr-defined]
        store.close()  # type: ignore[attr-defined]
    finally:
        proxy.close()


def test_a_lost_commit_request_is_found_not_committed_and_done_once_more() -> None:
    from urllib.parse import urlsplit

    target = urlsplit(URL)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    try:
        url = schema_url("spe_test")
        engine = _engine(_store(_proxied(url, proxy.port), pool_max="1"))
        _seed(engine, ["m1"], 2)
        proxy.requests_to_lose = 1
        pulled = engine.pull("m1")  # NotCommitted on the first try; the engine tries again
        assert proxy.lost == 1 and len(pulled.released) == 1
        state = _check_log(engine)
        assert sum(o.status is OpportunityStatus.RELEASED for o in state.values()) == 1
        # twice in a row: the caller hears NotCommitted (retryable), nothing was written
        proxy.requests_to_lose = 2
        with pytest.raises(NotCommitted, match="nothing was committed") as info:
            engine.pull("m1")
        assert info.value.retryable and proxy.lost == 3
        state = _check_log(engine)
        assert sum(o.status is OpportunityStatus.RELEASED for o in state.values()) == 1
        engine.store.close()
    finally:
        proxy.close()


def test_commit_replies_lost_at_random_orphan_no_claim() -> None:
    """The issue's figure: 5 % of COMMIT replies lost, 0 claims orphaned past one retry.
    Each worker retries a failed call once with the same operation id."""
    from urllib.parse import urlsplit

    target = urlsplit(URL)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    try:
        url = schema_url("spe_test")
        seed = _engine(_store(url))
        members = [f"m{i}" for i in range(4)]
        _seed(seed, members, 240)
        store = _store(_proxied(url, proxy.port), pool_max="4")
        proxy.reply_loss = 0.05
        raw: list[BaseException] = []
        orphaned: list[str] = []
        believed: dict[str, str] = {}

        def twice(fn):  # type: ignore[no-untyped-def]
            op = uuid.uuid4().hex
            try:
                return fn(op)
            except StoreError:
                return fn(op)  # the one retry, with the same operation id

        def work(member: str) -> None:
            engine = _engine(store)
            try:
                for _ in range(30):
                    pulled = twice(lambda op: engine.pull(member, 2, operation_id=op))
                    for opp in pulled.released:
                        believed[opp.id] = member
                        twice(
                            lambda op, o=opp: engine.resolve(o.id, member, "won", operation_id=op)
                        )
            except BaseException as exc:
                raw.append(exc)

        threads = [threading.Thread(target=work, args=(m,)) for m in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        proxy.reply_loss = 0.0
        assert raw == [], [f"{type(e).__name__}: {e}" for e in raw]
        state = _check_log(seed)
        orphaned = [o.id for o in state.values() if o.status is OpportunityStatus.RELEASED]
        assert orphaned == []
        resolved = {o.id: o.owner_id for o in state.values() if o.status.value == "resolved"}
        assert resolved == believed  # every claim the workers heard of, and no other
        assert proxy.lost >= 5, "the proxy lost too few replies to show anything"
        print(f"{proxy.lost} COMMIT replies lost, {len(resolved)} resolved, 0 orphaned")
        store.close()  # type: ignore[attr-defined]
        seed.store.close()
    finally:
        proxy.close()


def test_a_lock_held_past_lock_timeout_gives_store_locked() -> None:
    import psycopg

    url = schema_url()
    engine = _engine(_store(url, lock_timeout="300ms"))
    _seed(engine, ["m1"], 3)
    schema = engine.store.schema  # type: ignore[attr-defined]
    with psycopg.connect(URL) as holder:
        holder.execute(f'LOCK TABLE "{schema}".members IN ACCESS EXCLUSIVE MODE'.encode())
        started = time.monotonic()
        with pytest.raises(StoreLocked, match="lock_timeout") as info:
            engine.pull("m1")
        assert time.monotonic() - started < 5
        assert info.value.retryable
        assert isinstance(info.value.__cause__, psycopg.errors.LockNotAvailable)
        holder.rollback()
    assert engine.pull("m1").released  # the lock is gone: it works again
    _check_log(engine)
    engine.store.close()


def test_url_values_reach_the_server_as_written_and_connect_timeout_is_honoured() -> None:
    url = schema_url() + "&options=-c%20lock_timeout%3D4321ms&application_name=spe%20faults"
    store = _store(url)
    with store.transaction() as tx:  # type: ignore[attr-defined]
        assert tx._one("SHOW lock_timeout")[0] == "4321ms"
        assert tx._one("SHOW statement_timeout")[0] == "20s"  # our default
        assert tx._one("SHOW application_name")[0] == "spe faults"
    store.close()  # type: ignore[attr-defined]
    # a server that accepts the TCP connection and never answers
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot connect"):
            _store(f"postgresql://spe@127.0.0.1:{port}/none?connect_timeout=1")
        assert time.monotonic() - started < 4
    finally:
        silent.close()


def test_sync_and_engine_on_a_pool_of_one_do_not_deadlock() -> None:
    from spe_core.sync import SyncEngine
    from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter

    engine = _engine(_store(schema_url(), pool_max="1", pool_timeout="3"))
    _seed(engine, ["m1"], 5)
    sync = SyncEngine(engine, DictCrmAdapter(DictCrm(FakeClock(T0))), sleep=lambda s: None)
    started = time.monotonic()
    assert sync.stage() > 0
    engine.pull("m1")
    assert time.monotonic() - started < 3
    engine.store.close()


def test_waiters_hold_no_pooled_connection_and_the_listener_heals() -> None:
    import psycopg

    tag = f"spe_listen_{uuid.uuid4().hex[:8]}"
    store = _store(schema_url(), pool_max="1", pool_timeout="2", application_name=tag)
    engine = _engine(store)
    _seed(engine, ["m1"], 1)
    woke: list[bool] = []
    waiters = [
        threading.Thread(target=lambda: woke.append(store.wait_for_work(8)))  # type: ignore[attr-defined]
        for _ in range(2)
    ]
    for w in waiters:
        w.start()
    time.sleep(0.5)
    assert engine.pull("m1").released  # the one pooled connection is free for work
    # kill the listening backend: the store reconnects and waiters still wake on NOTIFY
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
            "application_name = %s AND query LIKE 'LISTEN%%'",
            (tag,),
        )
    time.sleep(1.0)
    engine.enqueue([Opportunity("late", "a", T0)])
    for w in waiters:
        w.join(10)
    assert woke == [True, True]
    engine.store.close()


def _kill_worker(url: str, tag: str, members: list[str], seconds: float, out: object) -> None:
    """One worker process of the kill test: a store (a pool of two) and a thread per
    member pulling and resolving until ``seconds`` have passed; each failed call is
    tried again with the same operation id. Reports what it saw on ``out``."""
    kinds: Counter[str] = Counter()
    for attempt in range(100):  # the killer may end the session that opens the store
        try:
            store = _store(url, application_name=tag, pool_max="2")
            break
        except StoreError as exc:
            kinds[type(exc).__name__] += 1
            if attempt == 99:
                out.put(({}, [f"cannot open the store: {exc}"], [], 0.0, 0))  # type: ignore[attr-defined]
                return
            time.sleep(0.05)
    raw: list[str] = []
    resolved: set[str] = set()
    calls: list[float] = []
    end = time.monotonic() + seconds

    def call(fn: object) -> object:
        op = uuid.uuid4().hex
        for attempt in range(20):
            started = time.monotonic()
            try:
                return fn(op)  # type: ignore[operator]
            except StoreError as exc:
                kinds[type(exc).__name__] += 1
                if attempt == 19:
                    raise
            except SpeError as exc:  # WrongState: a retry that acted twice
                kinds[type(exc).__name__] += 1
                raise
            finally:
                calls.append(time.monotonic() - started)
        raise AssertionError("unreachable")

    def work(member: str) -> None:
        engine = _engine(store)
        try:
            while time.monotonic() < end:
                pulled = call(lambda op: engine.pull(member, 1, operation_id=op))
                for opp in pulled.released:  # type: ignore[attr-defined]
                    call(lambda op, o=opp: engine.resolve(o.id, member, "won", operation_id=op))
                    resolved.add(opp.id)
        except SpeError:
            pass  # counted
        except BaseException as exc:
            raw.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    alive = sum(t.is_alive() for t in threads)
    out.put((dict(kinds), raw, sorted(resolved), max(calls, default=0.0), alive))  # type: ignore[attr-defined]
    store.close()  # type: ignore[attr-defined]


def test_backends_killed_at_random_under_concurrent_workers() -> None:
    """The issue's run: backends killed at random under 3 processes x 2 threads pulling
    and resolving (8 s here; SPE_TEST_FAULT_SECONDS=120 for the full two minutes)."""
    import multiprocessing

    import psycopg

    seconds = float(os.environ.get("SPE_TEST_FAULT_SECONDS", "8"))
    tag = f"spe_kill_{uuid.uuid4().hex[:8]}"
    url = schema_url(durable=True)
    members = [f"m{i}" for i in range(6)]
    seed = _engine(_store(url))
    _seed(seed, members, 3000)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_kill_worker, args=(url, tag, members[i::3], seconds, out))
        for i in range(3)
    ]
    for w in workers:
        w.start()
    killed = 0
    rng = random.Random(7)
    with psycopg.connect(URL, autocommit=True) as admin:
        deadline = time.monotonic() + seconds + 15  # the workers take a while to start
        while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
            pids = [
                r[0]
                for r in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (tag,)
                )
            ]
            if pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (rng.choice(pids),))
                killed += 1
            time.sleep(rng.uniform(0.01, 0.08))
    reports = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(30)
    kinds: Counter[str] = Counter()
    for k, *_ in reports:
        kinds.update(k)
    raw = [e for _, r, *_ in reports for e in r]
    resolved = {i for _, _, ids, *_ in reports for i in ids}
    longest = max(r[3] for r in reports)
    assert raw == [], raw  # no driver error reached a caller
    assert sum(r[4] for r in reports) == 0, "a worker thread hung"
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]
    assert killed > 20
    assert set(kinds) <= {"StoreUnavailable", "NotCommitted", "CommitOutcomeUnknown"}, kinds
    assert longest < 35
    state = _check_log(seed)  # gap-free, equal to the state, nothing released twice
    assert all(state[i].status is OpportunityStatus.RESOLVED for i in resolved), "lost a resolve"
    assert len(state) == 3000
    print(
        f"{killed} backends killed; {dict(kinds)}; {len(resolved)} resolved; "
        f"longest call {longest:.2f}s"
    )
    seed.store.close()


def test_every_driver_error_is_translated() -> None:
    import psycopg
    from psycopg_pool import PoolTimeout

    from spe_core.errors import StoreDamaged, StoreFull, StoreGone, StoreReadOnly
    from spe_core.store.postgres import _Settings, translate

    settings = _Settings("postgresql://u:s3cretpw@db.example:5432/sales?schema=spe", 1, 8, 10)
    cases = [
        (PoolTimeout("couldn't get a connection after 10.00 sec"), StoreUnavailable),
        (
            psycopg.OperationalError("server closed the connection unexpectedly s3cretpw"),
            StoreUnavailable,
        ),
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), StoreLocked),
        (psycopg.errors.DeadlockDetected("deadlock detected"), StoreLocked),
        (
            psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
            StoreUnavailable,
        ),
        (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), StoreReadOnly),
        (psycopg.errors.DiskFull("could not extend file"), StoreFull),
        (psycopg.errors.DataCorrupted("invalid page in block 7"), StoreDamaged),
        (psycopg.errors.UndefinedTable('relation "members" does not exist'), StoreGone),
        (psycopg.errors.AdminShutdown("terminating connection"), StoreUnavailable),
    ]
    for exc, kind in cases:
        error = translate(exc, settings, "committing")
        assert type(error) is kind, (exc, error)
        assert "db.example:5432/sales (schema spe)" in str(error) and error.fix
        assert "s3cretpw" not in str(error)
    assert issubclass(CommitOutcomeUnknown, SpeError)
