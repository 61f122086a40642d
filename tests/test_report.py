"""The HTML report: its data, and the page as a browser shows it (headless Chromium)."""

from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from spe_core import Engine, QueuePolicy
from spe_core.events import OpportunityReleased
from spe_core.plugins import Plugins
from spe_core.report import collect, render, write_report
from spe_core.store.memory import MemoryStore
from spe_core.testing import FakeClock
from spe_demo import MONDAY, demo_team, promotions_backlog, run_day

CHARTS = ("process-map", "fever", "flow", "pulls", "meetings", "sla", "quarantine")


@pytest.fixture(scope="module")
def demo_store() -> MemoryStore:
    store = MemoryStore()
    clock = FakeClock(MONDAY)
    engine = Engine(
        store,
        policy=QueuePolicy(target=80, lease=timedelta(hours=2)),
        clock=clock,
        plugins=Plugins.create(entry_points=False),
    )
    engine.upsert_members(demo_team())
    rng = random.Random(3)
    engine.add_to_backlog(promotions_backlog(rng, 200, clock.now()))
    run_day(engine, clock, rng)
    return store


def test_report_data_agrees_with_the_log(demo_store: MemoryStore) -> None:
    data = collect(demo_store.events())
    releases = Counter(
        r.event.member_id for r in demo_store.events() if isinstance(r.event, OpportunityReleased)
    )
    assert {m: sum(c.values()) for m, c in data.pulls.items()} == dict(releases)
    last = data.hours[-1]
    states = data.states[last]
    by_status = Counter(o.status.value for o in demo_store.opportunities())
    assert states["queued"] == by_status["queued"] == data.level[last]
    assert states["backlog"] == by_status["backlog"]
    assert states["released"] == by_status["released"]
    assert states["resolved"] == by_status["resolved"]
    assert sum(states.values()) == len(list(demo_store.opportunities()))


def test_report_html_has_every_chart(demo_store: MemoryStore) -> None:
    html = render(collect(demo_store.events()))
    for name in CHARTS:
        assert f'data-chart="{name}"' in html
    assert "<script" not in html  # nothing to run, nothing fetched
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "headless Chromium is not installed: scripts/test installs Debian's "
        "`chromium` package when run as root (apt-get install chromium)"
    )


def _open(page: Path, out: Path) -> tuple[str, str]:
    """Load ``page`` in headless Chromium: (DOM, console log); writes a screenshot."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={out / 'profile'}",
        "--window-size=900,2400",
        "--enable-logging=stderr",
        "--v=0",
    ]
    shot = subprocess.run(
        [_chromium(), *flags, f"--screenshot={out / 'shot.png'}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = subprocess.run(
        [_chromium(), *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return dom.stdout, shot.stderr + dom.stderr


def _console_errors(log: str) -> list[str]:
    return [
        line
        for line in log.splitlines()
        if "CONSOLE" in line and re.search(r"Uncaught|Error|error", line)
    ]


def _png_is_blank(path: Path) -> bool:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    distinct = len(set(raw[::7]))
    ink = sum(1 for b in raw[::7] if b < 0xF0) / max(1, len(raw[::7]))
    return distinct < 20 or ink < 0.01


@pytest.mark.slow
def test_report_in_a_real_browser(demo_store: MemoryStore, tmp_path: Path) -> None:
    page = write_report(demo_store.events(), tmp_path / "report.html")
    dom, log = _open(page, tmp_path)
    assert _console_errors(log) == []
    for name in CHARTS:
        assert f'data-chart="{name}"' in dom, f"chart {name} was not drawn"
    assert dom.count("<polyline") >= 2  # the fever chart's level and target lines
    assert not _png_is_blank(tmp_path / "shot.png")


@pytest.mark.slow
def test_the_browser_check_would_see_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedThing();</script></body></html>")
    _, log = _open(page, tmp_path)
    assert _console_errors(log), "console errors must be detected"
    (tmp_path / "blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    _open(tmp_path / "blank.html", tmp_path)
    assert _png_is_blank(tmp_path / "shot.png")


def test_meetings_follow_bookings_reschedules_and_cancellations() -> None:
    from datetime import UTC, datetime

    from spe_core.calendar import CalendarRules
    from spe_core.model import AppointmentRequest, Location, Member

    clock = FakeClock(datetime(2026, 12, 4, 9, tzinfo=UTC))
    store = MemoryStore()
    engine = Engine(
        store,
        clock=clock,
        plugins=Plugins.create(entry_points=False),
        calendar_rules=CalendarRules(busy_max_age=None),
    )
    home = Location(48.137, 11.575)
    engine.upsert_members([Member("f1", "Fay", "field_sales", home_base=home)])
    monday = datetime(2026, 12, 7, tzinfo=UTC)

    def request(rid: str, in_person: bool = True) -> AppointmentRequest:
        return AppointmentRequest(
            rid,
            "acme",
            timedelta(hours=1),
            "in_person" if in_person else "conference_call",
            monday,
            monday + timedelta(days=5),
            location=home if in_person else None,
        )

    engine.book(request("a"), "f1", monday.replace(hour=9), by="c")
    engine.book(request("b"), "f1", monday.replace(hour=11), by="c")
    engine.book(request("call", in_person=False), "f1", monday.replace(hour=15), by="c")
    engine.reschedule("b", monday.replace(hour=10) + timedelta(days=1), by="c")
    engine.cancel_booking("call", by="c")
    meetings = collect(store.events()).meetings["f1"]
    assert {d: n for d, n in meetings.items() if n} == {
        monday.date(): 1,
        (monday + timedelta(days=1)).date(): 1,
    }
