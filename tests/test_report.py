"""The HTML report: its data, and the page as a browser shows it (headless Chromium)."""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spe_core import Engine, QueuePolicy, charts
from spe_core.errors import SpeError
from spe_core.events import OpportunityReleased, Recorded, RecordQuarantined
from spe_core.flow import ProcessMap
from spe_core.model import Member, Opportunity
from spe_core.plugins import Plugins
from spe_core.report import collect, render, write_report
from spe_core.store.memory import MemoryStore
from spe_core.testing import FakeClock
from spe_demo import MONDAY, demo_team, promotions_backlog, run_day

CHARTS = ("process-map", "fever", "flow", "pulls", "meetings", "sla", "quarantine")


def _demo(days: int, backlog: int) -> MemoryStore:
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
    engine.add_to_backlog(promotions_backlog(rng, backlog, clock.now()))
    for day in range(days):
        if day:
            clock.advance(hours=15)  # 17:00 -> 08:00 the next morning
        run_day(engine, clock, rng)
    if days > 1:  # and in-person meetings for the field salespeople later in the week
        from spe_core.calendar import CalendarRules
        from spe_core.model import AppointmentRequest

        engine.calendar_rules = CalendarRules(busy_max_age=None)
        field = {m.id: m for m in engine.members() if m.role.value == "field_sales"}
        day = clock.now().replace(hour=8, minute=0) + timedelta(days=1)
        for n, (member_id, hour) in enumerate(
            [("fs-ivan", 0), ("fs-ivan", 2), ("fs-ivan", 5), ("fs-jade", 1), ("fs-jade", 4)]
        ):
            member = field[member_id]
            request = AppointmentRequest(
                f"meet-{n}",
                f"acct-{n}",
                timedelta(hours=1),
                "in_person",
                day,
                day + timedelta(days=3),
                location=member.home_base,
            )
            engine.book(request, member_id, day + timedelta(hours=hour), by=member.coordinator_id)
    return store


@pytest.fixture(scope="module")
def demo_store() -> MemoryStore:
    """One demo day: its events span less than a working day (07:00 to 12:40 UTC)."""
    return _demo(1, 200)


@pytest.fixture(scope="module")
def two_days() -> MemoryStore:
    """Two demo days: enough history for rates and buffer advice."""
    return _demo(2, 400)


@pytest.fixture(scope="module")
def fresh_store() -> MemoryStore:
    """What one sync leaves in a fresh store: many records, minutes of history."""
    store = MemoryStore()
    clock = FakeClock(datetime(2026, 12, 1, 9, tzinfo=UTC))
    engine = Engine(store, clock=clock, plugins=Plugins.create(entry_points=False))
    engine.upsert_members(
        [
            Member("005000000000002AAA", "Ana Ruiz", "inside_sales"),
            Member("005000000000003AAA", "Ben Okafor", "inside_sales"),
        ]
    )
    engine.add_to_backlog(
        [Opportunity(f"006{n:015d}", f"acct-{n}", clock.now()) for n in range(300)]
    )
    engine.replenish()
    for n in range(40):
        clock.advance(seconds=20)
        member = ("005000000000002AAA", "005000000000003AAA")[n % 2]
        (opp,) = engine.pull(member).released
        engine.resolve(opp.id, member, "lost" if n % 3 else "appointment_set")
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


def _open(page: Path, out: Path, width: int = 1000) -> tuple[str, str]:
    """Load ``page`` in headless Chromium at a ``width`` px wide window: (DOM, console
    log); writes a screenshot."""
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
        f"--window-size={width},2400",
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


# Measures, in the browser, every piece of text against its box: the page must not
# scroll sideways, no HTML element may be wider inside than its box, every SVG text
# must lie inside its chart (and a process-map text inside its phase's box), and no
# two texts of a chart may overlap. The findings land in <pre id="overflow">.
OVERFLOW_CHECK = """<script>
(() => {
  const found = [];
  const slack = 1;
  const inside = (a, b) => a.left >= b.left - slack && a.right <= b.right + slack
    && a.top >= b.top - slack && a.bottom <= b.bottom + slack;
  const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > slack
    && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > slack;
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) {
    found.push(`the page scrolls sideways: ${root.scrollWidth} px, the window `
      + `${root.clientWidth} px`);
  }
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("svg") || el.id === "overflow" || el.tagName === "SCRIPT") continue;
    if (getComputedStyle(el).display === "inline") continue;
    if (el.scrollWidth > el.clientWidth + slack) {
      found.push(`<${el.tagName.toLowerCase()}> "${el.textContent.slice(0, 40)}" overflows: `
        + `${el.scrollWidth} > ${el.clientWidth} px`);
    }
  }
  for (const svg of document.querySelectorAll("svg")) {
    const chart = svg.dataset.chart;
    const frame = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll("text")].filter(t => t.textContent.trim());
    const boxes = texts.map(t => t.getBoundingClientRect());
    texts.forEach((t, i) => {
      if (!inside(boxes[i], frame)) found.push(`${chart}: "${t.textContent}" leaves the chart`);
      const group = t.closest("[data-box]");
      if (group && !inside(boxes[i], group.querySelector("rect").getBoundingClientRect())) {
        found.push(`${chart}: "${t.textContent}" overflows the box ${group.dataset.box}`);
      }
      for (let j = 0; j < i; j++) {
        if (overlap(boxes[i], boxes[j])) {
          found.push(`${chart}: "${t.textContent}" overlaps "${texts[j].textContent}"`);
        }
      }
    });
  }
  const out = document.createElement("pre");
  out.id = "overflow";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
})();
</script>"""


def _overflows(page: Path, out: Path) -> list[str]:
    """What the browser finds overflowing on ``page`` at a 1000 px wide window."""
    checked = out / f"checked-{page.name}"
    checked.write_text(
        page.read_text(encoding="utf-8").replace("</body>", OVERFLOW_CHECK + "</body>"),
        encoding="utf-8",
    )
    dom, log = _open(checked, out, width=1000)
    assert _console_errors(log) == []
    match = re.search(r'<pre id="overflow">(.*?)</pre>', dom, re.S)
    assert match, "the overflow check did not run"
    found: list[str] = json.loads(
        match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    return found


@pytest.mark.slow
def test_report_in_a_real_browser(two_days: MemoryStore, tmp_path: Path) -> None:
    page = write_report(_with_quarantines(two_days), tmp_path / "report.html")
    dom, log = _open(page, tmp_path)
    assert _console_errors(log) == []
    for name in CHARTS:
        assert re.search(f'<svg[^>]*data-chart="{name}"', dom), f"chart {name} was not drawn"
    assert dom.count("<polyline") >= 2  # the fever chart's level and target lines
    assert not _png_is_blank(tmp_path / "shot.png")
    assert _overflows(page, tmp_path) == []


def _with_quarantines(store: MemoryStore) -> list[Recorded]:
    """The store's events and records a sync quarantined, with long keys and reasons."""
    events = list(store.events())
    at = events[-1].event.at
    reasons = [
        "Amount: 'twelve thousand' is not a number; fix the value in the CRM and sync again",
        "StageName 'Closed Won - Paid In Full And Delivered' is not mapped to a phase",
    ]
    for n in range(6):
        events.append(
            Recorded(
                len(events) + 1,
                RecordQuarantined(
                    at=at,
                    crm="salesforce",
                    direction="inbound",
                    stream=("opportunities", "members", "tasks")[n % 3],
                    key=f"006{n:015d}AAA",
                    reason=reasons[n % 2],
                ),
            )
        )
    return events


@pytest.mark.slow
def test_short_history_report_fits_too(fresh_store: MemoryStore, tmp_path: Path) -> None:
    page = write_report(fresh_store.events(), tmp_path / "fresh.html")
    assert _overflows(page, tmp_path) == []


@pytest.mark.slow
def test_long_names_and_a_long_process_map_fit_in_a_browser(
    two_days: MemoryStore, tmp_path: Path
) -> None:
    from spe_core.flow import Phase

    pmap = ProcessMap(
        tuple(
            Phase(
                f"phase_{k}_with_an_unusually_long_name",
                "inside_sales",
                "Qualify every inbound opportunity within one working day, or hand it "
                "back with the reason written down for Promotions",
                ("cycle time",),
                (f"Stage {k} - Proposal/Price Quote Negotiation", f"Stage {k}b"),
            )
            for k in range(6)
        )
    )
    long_names = [
        Member(m.id, "Maximilian Alexander von Hohenzollern-Sigmaringen", m.role)
        for m in demo_team()
        if m.id in ("is-ana", "is-ben")
    ] + [Member("fs-ivan", "Ivan Petrov-Wędrowski-Øygarden", "field_sales")]
    page = write_report(
        _with_quarantines(two_days), tmp_path / "long.html", members=long_names, process=pmap
    )
    html = page.read_text(encoding="utf-8")
    assert "Maximilian Alexander von Hohenzollern-Sigmaringen (is-ana)" in html
    assert _overflows(page, tmp_path) == []


@pytest.mark.slow
def test_the_browser_check_would_see_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedThing();</script></body></html>")
    _, log = _open(page, tmp_path)
    assert _console_errors(log), "console errors must be detected"
    (tmp_path / "blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    _open(tmp_path / "blank.html", tmp_path)
    assert _png_is_blank(tmp_path / "shot.png")
    (tmp_path / "overflowing.html").write_text(
        "<!DOCTYPE html><html><body>"
        '<svg data-chart="map" width="300" height="100"><g data-box="qualifying">'
        '<rect x="10" y="10" width="100" height="60"/>'
        '<text x="15" y="30" font-size="12">Turn each opportunity into an appointment</text>'
        '</g><text x="15" y="90">one</text><text x="18" y="92">two</text></svg>'
        '<table style="width:200px;table-layout:fixed"><tr><td style="width:50px">'
        "<div style='width:50px'>005000000000002AAA-and-more-unbreakable-text</div>"
        "</td></tr></table>"
        '<div style="width:1400px">wide</div></body></html>'
    )
    found = _overflows(tmp_path / "overflowing.html", tmp_path)
    assert any("overflows the box qualifying" in f for f in found), found
    assert any('"two" overlaps "one"' in f for f in found), found
    assert any("scrolls sideways" in f for f in found), found
    assert any("<div>" in f and "overflows" in f for f in found), found


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


# --- the report, as a sales manager reads it ---------------------------------------------------


def _svg(html: str, name: str) -> ET.Element:
    match = re.search(rf'<svg[^>]*data-chart="{name}".*?</svg>', html, re.S)
    assert match, f"no {name} chart"
    return ET.fromstring(match.group(0))


def _texts(svg: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")]


def test_people_appear_by_name_not_by_id(fresh_store: MemoryStore, two_days: MemoryStore) -> None:
    html = render(collect(fresh_store.events()))
    pulls = _texts(_svg(html, "pulls"))
    assert "Ana Ruiz" in pulls and "Ben Okafor" in pulls
    assert not any("005000000000002AAA" in t for t in pulls)
    demo = _texts(_svg(render(collect(two_days.events())), "pulls"))
    assert {"Ana Ruiz", "Ben Okafor", "Chloé Martin", "Dan Weber"} <= set(demo)


def test_a_shared_name_carries_the_id_and_the_store_names_the_unnamed() -> None:
    from spe_core.report import people

    names = {"a1": "Ana Ruiz", "a2": "Ana Ruiz", "b": "Ben Okafor"}
    assert people(["a1", "a2", "b", "x9"], names) == {
        "a1": "Ana Ruiz (a1)",
        "a2": "Ana Ruiz (a2)",
        "b": "Ben Okafor",
        "x9": "x9",
    }
    # members handed in (the store's) name people the log does not
    data = collect([])
    data.pulls["x9"][datetime(2026, 1, 5).date()] += 3
    html = render(data, members=[Member("x9", "Xenia Vogel", "inside_sales")])
    assert "Xenia Vogel" in _texts(_svg(html, "pulls"))


NICE = {Decimal(m) for m in ("1", "2", "2.5", "5")}


def _is_nice_step(step: Decimal) -> bool:
    exponent = step.adjusted()
    return step.scaleb(-exponent).normalize() in NICE or (
        step.scaleb(-exponent + 1).normalize() == Decimal(25)
    )


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False), st.integers(2, 8))
def test_axis_ticks_are_nice(top: float, count: int) -> None:
    from spe_core.charts import nice_ticks, number

    ticks = nice_ticks(top, count)
    assert ticks[0] == 0 and ticks[-1] >= top
    steps = {Decimal(repr(b)) - Decimal(repr(a)) for a, b in itertools.pairwise(ticks)}
    step = max(steps)
    assert all(abs(s - step) <= step * Decimal("1e-9") for s in steps)
    assert _is_nice_step(Decimal(str(float(step))).normalize()), ticks
    assert 2 <= len(ticks) <= 2 * count + 1
    for t in ticks:
        label = number(t, float(step))
        assert "e" not in label.lower()
        if t >= 1000:
            assert "," in label


def test_axis_labels_read_plainly() -> None:
    from spe_core import charts

    # the figures: a peak of 17.2 drew 8.62 / 17.2 / 25.9, 1,090 drew 1.09e+03
    for peak, expected in (
        (17.2, {"0", "5", "10", "15", "20"}),
        (1090.0, {"250", "1,000", "1,250", "1,090"}),
    ):
        svg = ET.fromstring(charts.bars("x", "t", ["Ana Ruiz"], [("pulls", [peak])]))
        labels = set(_texts(svg))
        assert expected <= labels, labels
        assert not any(re.search(r"\de[+-]\d|\d\.\d\d", t) for t in labels), labels
    counts = ET.fromstring(charts.bars("q", "t", ["tasks"], [("n", [2.0])], integer=True))
    assert set(_texts(counts)) >= {"0", "1", "2"} and "0.5" not in _texts(counts)
    assert charts.number(1090) == "1,090"
    assert charts.number(6519.4) == "6,519"
    assert charts.number(13.25) == "13.2"


def test_the_fever_chart_legend_names_every_zone(two_days: MemoryStore) -> None:
    texts = _texts(_svg(render(collect(two_days.events())), "fever"))
    for item in ("queue level", "target", "red zone", "yellow zone", "green zone"):
        assert item in texts


def test_legends_never_drop_a_series() -> None:
    from spe_core import charts

    series = [(f"state number {k}", [1.0, 2.0]) for k in range(8)]
    texts = _texts(ET.fromstring(charts.stacked_area("f", "t", ["a", "b"], series)))
    assert all(name in texts for name, _ in series)


def test_every_metric_is_explained_in_plain_words(two_days: MemoryStore) -> None:
    html = render(collect(two_days.events()))
    glossary = re.search(r'<dl class="glossary">(.*?)</dl>', html, re.S)
    assert glossary, "the phase table needs its glossary"
    terms = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", glossary.group(1)))
    for term in ("WIP", "out/day", "cycle p50 / p85 / p95", "Little&#x27;s law gap", "hit rate"):
        assert term in terms and len(terms[term].split()) >= 4, term
    assert "work in progress" in terms["WIP"]
    assert "85 in 100" in terms["cycle p50 / p85 / p95"]
    assert "Little&#x27;s law" in terms["Little&#x27;s law gap"]
    # every drawn chart carries its one-line explanation
    for section in re.findall(r'<section class="chart">(.*?)</section>', html, re.S):
        assert re.search(r'<p class="note">\w', section), section[:80]


def test_empty_panels_are_one_line(demo_store: MemoryStore) -> None:
    html = render(collect(demo_store.events()))
    quarantine = re.search(r'<[^>]*data-chart="quarantine".*?</(p|svg)>', html, re.S)
    assert quarantine and quarantine.group(0).startswith("<p")
    assert "no quarantined records" in quarantine.group(0)
    assert "<th>reason</th>" not in html  # no empty table of quarantined records
    assert '<svg xmlns="http://www.w3.org/2000/svg" data-chart="meetings"' not in html
    assert re.search(r'<p class="empty" data-chart="meetings">.*no meetings booked yet', html)
    # an empty log: every panel but the process map is one line
    empty = render(collect([]))
    assert re.findall(r'<svg[^>]*data-chart="([\w-]+)"', empty) == ["process-map"]
    for name in CHARTS[1:]:
        assert re.search(f'<p class="empty" data-chart="{name}"><b>[^<]+:</b> [^<]+</p>', empty)
    assert '<p class="empty"><b>Outcomes:</b> no opportunity resolved yet</p>' in empty


@given(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)),
)
def test_rates_need_one_working_day_of_history(span: timedelta, minimum: timedelta) -> None:
    from spe_core.flow import ONE_WORKING_DAY, enough_history

    verdict = enough_history(span, minimum)
    assert verdict.enough == (span >= minimum)
    assert ("not enough history yet" in verdict.message) == (not verdict.enough)
    # more history never takes the verdict back
    assert enough_history(span + timedelta(hours=1), minimum).enough >= verdict.enough
    assert enough_history(span).enough == (span >= ONE_WORKING_DAY == timedelta(hours=8))


@given(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_buffer_advice_waits_for_a_working_day(span: timedelta, red: float, green: float) -> None:
    from spe_core.flow import ONE_WORKING_DAY, recommend_buffer

    policy = QueuePolicy(target=60)
    share = {"red": red, "yellow": max(0.0, 1 - red - green), "green": green}
    advice = recommend_buffer(share, policy, history=span)
    if span < ONE_WORKING_DAY:
        assert (advice.action, advice.recommended_target) == ("keep", 60)
        assert advice.evidence.startswith("not enough history yet")
    else:
        assert advice == recommend_buffer(share, policy)


def test_the_history_rule_refuses_nonsense() -> None:
    from spe_core.flow import enough_history

    with pytest.raises(SpeError, match="cannot be negative"):
        enough_history(timedelta(minutes=-1))
    with pytest.raises(SpeError, match="must be positive"):
        enough_history(timedelta(hours=1), timedelta(0))


def test_one_hour_of_events_is_told_in_numbers_not_drawn(fresh_store: MemoryStore) -> None:
    html = render(collect(fresh_store.events()))
    fever = re.search(r'<p class="empty" data-chart="fever">(.*?)</p>', html)
    assert fever and re.search(
        r"\d+ queued against a target of 100 \((red|yellow|green) zone\)", fever[1]
    )
    flow = re.search(r'<p class="empty" data-chart="flow">(.*?)</p>', html)
    assert flow and "200 backlog, 60 queued, 0 released, 40 resolved" in flow[1]


def test_minutes_of_history_show_no_rates_and_no_buffer_advice(
    fresh_store: MemoryStore, two_days: MemoryStore
) -> None:
    html = render(collect(fresh_store.events()))
    assert "not enough history yet" in html.lower()
    assert "<th>out/day</th>" not in html
    assert not re.search(r"(raise|lower|keep) the target", html)
    assert "per working day" not in html
    enough = render(collect(two_days.events()))
    assert "not enough history yet" not in enough.lower()
    assert "<th>out/day</th>" in enough
    assert re.search(r"Buffer management:</b> (raise|lower|keep) the target", enough)


def test_process_map_text_fits_its_boxes_between_words() -> None:
    from spe_core.charts import text_width
    from spe_core.flow import FlowMetrics

    pmap = ProcessMap.from_config(
        {"stages": {"proposing": ["Needs Analysis", "Proposal/Price Quote", "Negotiation/Review"]}}
    )
    start = datetime(2026, 1, 5, 8, tzinfo=UTC)
    report = FlowMetrics(pmap).feed_all([]).report(start)
    svg = ET.fromstring(charts.process_map(pmap, report))
    ns = "{http://www.w3.org/2000/svg}"
    width = float(svg.get("width", "0"))
    assert width <= 800  # fits the report's column at a 1000 px window
    for group in svg.iter(f"{ns}g"):
        rect = group.find(f"{ns}rect")
        assert rect is not None
        right = float(rect.get("x", "0")) + float(rect.get("width", "0"))
        bottom = float(rect.get("y", "0")) + float(rect.get("height", "0"))
        phase = next(p for p in pmap.phases if p.name == group.get("data-box"))
        words = set(
            re.findall(
                r"[\w/'-]+",
                " ".join([phase.goal, *phase.stages, phase.name.replace("_", " ").capitalize()]),
            )
        )
        for text in group.iter(f"{ns}text"):
            line = text.text or ""
            size = float(text.get("font-size", "10"))
            bold = text.get("font-weight") == "bold"
            assert float(text.get("x", "0")) + text_width(line, size, bold) <= right
            assert float(text.get("y", "0")) <= bottom
            if not any(k in line for k in ("owner:", " in ", "in ", "cycle", "conversion")):
                for word in re.findall(r"[\w/'-]+", line.replace("CRM stages:", "")):
                    assert word in words, f"{word!r} is a broken word in {line!r}"


def test_a_report_to_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpeError, match="does not exist") as caught:
        write_report([], tmp_path / "missing" / "r.html")
    assert caught.value.fix and "create the folder" in caught.value.fix


# --- layout, checked on the estimate the charts lay text out with ------------------------------

SVG = "{http://www.w3.org/2000/svg}"
NAMES = st.text(
    st.characters(categories=("L", "N", "P", "Zs"), max_codepoint=0x2FFF), min_size=1, max_size=70
)


def _text_boxes(svg: ET.Element) -> list[tuple[str, float, float]]:
    """(text, left, right) of every text, from its anchor and estimated width."""
    from spe_core.charts import text_width

    out = []
    for text in svg.iter(f"{SVG}text"):
        line = text.text or ""
        width = text_width(
            line, float(text.get("font-size", "10")), text.get("font-weight") == "bold"
        )
        x = float(text.get("x", "0"))
        anchor = text.get("text-anchor", "start")
        left = x - width if anchor == "end" else x - width / 2 if anchor == "middle" else x
        out.append((line, left, left + width))
    return out


def _assert_inside(svg: ET.Element) -> None:
    width = float(svg.get("width", "0"))
    assert width <= 800, "wider than the report's column at a 1000 px window"
    for line, left, right in _text_boxes(svg):
        assert left >= 0 and right <= width, f"{line!r} runs out of the chart: {left}..{right}"


@given(
    st.lists(NAMES, min_size=1, max_size=12),
    st.lists(st.floats(0, 1e7, allow_nan=False), min_size=12, max_size=12),
    st.none() | st.floats(0, 1e7, allow_nan=False),
)
def test_bar_charts_keep_any_names_and_values_inside(
    names: list[str], values: list[float], target: float | None
) -> None:
    _assert_inside(
        ET.fromstring(
            charts.bars(
                "b", "Pulls per inside salesperson", names, [("n", values[: len(names)])], target
            )
        )
    )


@given(
    st.lists(st.sampled_from(["Mon 07:00", "Tue 13:00", "Wed 05 Jan"]), min_size=1, max_size=90),
    st.floats(0, 1e6, allow_nan=False),
)
def test_time_charts_keep_their_labels_inside(labels: list[str], peak: float) -> None:
    n = len(labels)
    level = [peak * (k % 3) / 2 for k in range(n)]
    _assert_inside(ET.fromstring(charts.fever("f", "t", labels, level, [peak] * n, 0.33, 0.67)))
    flow = [("backlog", level), ("queued", [peak] * n)]
    _assert_inside(ET.fromstring(charts.stacked_area("s", "t", labels, flow)))


@given(
    st.lists(
        st.tuples(NAMES, NAMES, st.lists(NAMES, max_size=4)),
        min_size=1,
        max_size=7,
        unique_by=lambda p: p[0],
    )
)
def test_any_process_map_keeps_its_text_in_its_boxes(
    phases: list[tuple[str, str, list[str]]],
) -> None:
    from spe_core.flow import Phase

    stages = [s for _, _, ss in phases for s in ss]
    if len(set(stages)) != len(stages):
        return  # a stage on two phases is refused by ProcessMap
    pmap = ProcessMap(
        tuple(Phase(name, "inside_sales", goal, ("m",), ss) for name, goal, ss in phases)
    )
    svg = ET.fromstring(charts.process_map(pmap))
    _assert_inside(svg)
    for group in svg.iter(f"{SVG}g"):
        rect = group.find(f"{SVG}rect")
        assert rect is not None
        right = float(rect.get("x", "0")) + float(rect.get("width", "0"))
        for line, left, end in _text_boxes(group):
            assert float(rect.get("x", "0")) <= left and end <= right, line


def test_a_process_map_with_its_own_phases_is_measured_and_drawn(two_days: MemoryStore) -> None:
    from spe_core.flow import Phase

    pmap = ProcessMap(
        (
            Phase("calling", "inside_sales", "Reach the customer", ("conversion",)),
            Phase("visiting", "field_sales", "Meet the customer", ("cycle time",)),
        )
    )
    html = render(collect(two_days.events(), process=pmap))  # it raised KeyError
    texts = _texts(_svg(html, "process-map"))
    assert "Calling" in texts and "Visiting" in texts
