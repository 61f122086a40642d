"""Two coordinators booking the same member at the same moment: exactly one wins."""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from spe_core.calendar import CalendarRules
from spe_core.engine import Engine
from spe_core.errors import RuleViolation, StoreError
from spe_core.model import AppointmentRequest, Location, Member
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.testing import FakeClock

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 4, 9, tzinfo=BERLIN)
SLOT = datetime(2026, 12, 7, 10, tzinfo=BERLIN)
HOME = Location(48.137, 11.575)
CONTENDERS = 6


def _engine(store: Store) -> Engine:
    return Engine(
        store,
        clock=FakeClock(NOW),
        plugins=Plugins.create(entry_points=False),
        calendar_rules=CalendarRules(busy_max_age=None),
    )


def _request(i: int) -> AppointmentRequest:
    # different requests, all at the same place, each wanting 10:00-11:00 or 10:30-11:30
    return AppointmentRequest(
        f"r{i}",
        f"a{i}",
        timedelta(hours=1),
        "in_person",
        NOW,
        NOW + timedelta(days=7),
        location=HOME,
    )


def _setup(store: Store) -> None:
    _engine(store).upsert_members(
        [Member("f1", "Fay", "field_sales", time_zone="Europe/Berlin", home_base=HOME)]
    )


def _book(store: Store, i: int) -> str:
    try:
        _engine(store).book(_request(i), "f1", SLOT + timedelta(minutes=30 * (i % 2)), by=f"c{i}")
    except (RuleViolation, StoreError) as exc:
        return type(exc).__name__
    return "booked"


def race_for_one_slot(make_store: Callable[[], Store]) -> None:
    """Run CONTENDERS threads through one store (a connection pool for PostgreSQL)."""
    first = make_store()
    _setup(first)
    results: list[str] = []
    barrier = threading.Barrier(CONTENDERS)

    def run(i: int) -> None:
        barrier.wait()
        results.append(_book(first, i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CONTENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("booked") == 1, results
    engine = _engine(first)
    assert len(engine.bookings(NOW, NOW + timedelta(days=7))) == 1
    assert engine.validate_calendar("f1", NOW, NOW + timedelta(days=7)) == []


def _process(path: str, i: int, out: mp.Queue[str]) -> None:
    out.put(_book(open_store(f"sqlite:///{path}"), i))


def test_processes_on_one_sqlite_file_never_double_book(tmp_path: Path) -> None:
    path = str(tmp_path / "spe.db")
    _setup(open_store(f"sqlite:///{path}"))
    ctx = mp.get_context("spawn")
    out: mp.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(path, i, out)) for i in range(CONTENDERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results.count("booked") == 1, results
    engine = _engine(open_store(f"sqlite:///{path}"))
    assert len(engine.bookings(NOW, NOW + timedelta(days=7))) == 1


def test_threads_on_the_memory_store_never_double_book() -> None:
    race_for_one_slot(lambda: open_store("memory:"))
