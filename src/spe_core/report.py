"""The HTML flow report: one self-contained file of charts read from the event log.

``spe report --html FILE`` (or :func:`write_report`) streams the store's
events once and draws, as inline SVG (nothing fetched at view time), for a
sales manager:

- the process map with each phase's figures, the phase table and a glossary;
- the buffer's level against its target and zones, day by day (fever chart);
- the cumulative flow: how many opportunities sit in each state each day;
- pulls per inside salesperson per day;
- in-person meetings per field salesperson per day against the target of 4;
- routing SLA attainment;
- the records the sync quarantined, with their reasons.

People appear by name (their id only where two share a name), read from the
members recorded in the log. Each panel carries one line saying what it shows;
a panel with nothing to show is one line. Rates per day and buffer advice
appear only once the log covers one working day
(:func:`spe_core.flow.enough_history`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path

import attrs

from spe_core import charts
from spe_core.errors import InvalidValue
from spe_core.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentEvent,
    AppointmentRescheduled,
    Event,
    LeaseExpired,
    MemberUpserted,
    OpportunityBacklogged,
    OpportunityExpired,
    OpportunityGivenBack,
    OpportunityQueued,
    OpportunityReleased,
    OpportunityResolved,
    OpportunityStale,
    OpportunityWithdrawn,
    QueueReplenished,
    Recorded,
    RecordQuarantined,
)
from spe_core.flow import (
    FlowMetrics,
    FlowReport,
    HistoryVerdict,
    ProcessMap,
    duration,
    enough_history,
    period,
    recommend_buffer,
)
from spe_core.model import Member
from spe_core.queue import QueuePolicy, buffer_zone

__all__ = ["ReportData", "collect", "people", "render", "write_report"]

STATES = ("backlog", "queued", "released", "resolved", "left the queue")


@attrs.define
class ReportData:
    """What the report shows, accumulated in one pass over the events."""

    hours: list[datetime] = attrs.Factory(list)
    """Hour buckets (UTC) in which something happened; levels are taken at their end."""
    level: dict[datetime, int] = attrs.Factory(dict)
    target: dict[datetime, int] = attrs.Factory(dict)
    states: dict[datetime, dict[str, int]] = attrs.Factory(dict)
    pulls: dict[str, Counter[date]] = attrs.Factory(lambda: defaultdict(Counter))
    outcomes: Counter[str] = attrs.Factory(Counter)
    meetings: dict[str, Counter[date]] = attrs.Factory(lambda: defaultdict(Counter))
    sla: Counter[str] = attrs.Factory(Counter)
    quarantined: list[RecordQuarantined] = attrs.Factory(list)
    names: dict[str, str] = attrs.Factory(dict)
    """Member id -> name, from the members recorded in the log (the latest wins)."""
    events: int = 0
    flow: FlowReport | None = None
    process: ProcessMap = attrs.Factory(ProcessMap)


def _state_of(event: Event) -> tuple[str, str] | None:
    if isinstance(event, OpportunityBacklogged):
        return event.opportunity.id, "backlog"
    if isinstance(event, OpportunityQueued):
        return event.opportunity.id, "queued"
    if isinstance(event, OpportunityGivenBack | LeaseExpired):
        return event.opportunity_id, "queued"
    if isinstance(event, OpportunityReleased):
        return event.opportunity_id, "released"
    if isinstance(event, OpportunityResolved):
        return event.opportunity_id, "resolved"
    if isinstance(event, OpportunityStale | OpportunityExpired | OpportunityWithdrawn):
        return event.opportunity_id, "left the queue"
    return None


def collect(
    events: Iterable[Recorded],
    policy: QueuePolicy | None = None,
    process: ProcessMap | None = None,
) -> ReportData:
    """Stream the events once; memory grows with open opportunities, not the log.
    ``process`` is the process map (``[flow]`` in spe.toml; default: the four phases)."""
    policy = policy or QueuePolicy()
    data = ReportData(process=process or ProcessMap())
    flow = FlowMetrics(data.process, policy)
    status: dict[str, str] = {}
    counts: Counter[str] = Counter()
    target = policy.target
    hour: datetime | None = None

    def close(h: datetime) -> None:
        data.level[h] = counts["queued"]
        data.target[h] = target
        data.states[h] = {s: counts[s] for s in STATES}

    for recorded in events:
        event = recorded.event
        data.events += 1
        flow.feed(recorded)
        today = event.at.date()
        this_hour = event.at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if hour is not None and this_hour != hour:
            close(hour)
        if this_hour != hour:
            hour = this_hour
            data.hours.append(this_hour)
        change = _state_of(event)
        if change is not None:
            oid, new = change
            old = status.get(oid)
            if old is not None:
                counts[old] -= 1
            if new in ("resolved", "left the queue"):
                status.pop(oid, None)
            else:
                status[oid] = new
            counts[new] += 1
        if isinstance(event, QueueReplenished):
            target = event.target
        elif isinstance(event, OpportunityReleased):
            data.pulls[event.member_id][today] += 1
        elif isinstance(event, OpportunityResolved):
            data.outcomes[event.outcome.value] += 1
        elif isinstance(event, RecordQuarantined):
            data.quarantined.append(event)
        elif isinstance(event, MemberUpserted):
            data.names[event.member.id] = event.member.name
        _calendar_and_routing(event, today, data)
    if hour is not None:
        close(hour)
    data.flow = flow.report()
    return data


def _calendar_and_routing(event: Event, today: date, data: ReportData) -> None:
    """In-person meetings per field member and day, and routing SLA attainment."""
    kind = event.kind
    if isinstance(event, AppointmentEvent):
        if not event.in_person:
            return
        if isinstance(event, AppointmentBooked):
            data.meetings[event.member_id][event.start.date()] += 1
        elif isinstance(event, AppointmentRescheduled):
            data.meetings[event.from_member_id][event.from_start.date()] -= 1
            data.meetings[event.member_id][event.start.date()] += 1
        elif isinstance(event, AppointmentCancelled):
            data.meetings[event.member_id][event.start.date()] -= 1
    elif kind == "task.completed":
        on_time = getattr(event, "within_sla", None)
        if on_time is not None:
            data.sla["met" if on_time else "missed"] += 1


def _points(hours: list[datetime]) -> list[datetime]:
    """The hour buckets to plot: every hour for short spans, the last of each day beyond 72."""
    if len(hours) <= 72:
        return hours
    last: dict[date, datetime] = {}
    for h in hours:
        last[h.date()] = h
    return list(last.values())


def people(ids: Iterable[str], names: Mapping[str, str]) -> dict[str, str]:
    """A label per member id: the name, with the id only where two of ``ids`` share a
    name; the id alone for a member the log does not name."""
    ids = list(ids)
    counts = Counter(names.get(i) for i in ids if i in names)
    return {
        i: (i if i not in names else names[i] if counts[names[i]] == 1 else f"{names[i]} ({i})")
        for i in ids
    }


GLOSSARY = (
    ("in / out", "opportunities that entered / left the phase during the period."),
    ("WIP", "work in progress: opportunities in the phase right now."),
    ("out/day", "throughput: opportunities leaving the phase per day, on average."),
    ("conversion", "of those that left the phase, the share that moved on to a later phase."),
    (
        "cycle p50 / p85 / p95",
        "time spent in the phase: half of the opportunities were through within p50, "
        "85 in 100 within p85 (a fair promise), 95 in 100 within p95.",
    ),
    (
        "Little's law gap",
        "in a steady flow, WIP = out/day x average cycle time (Little's law); the gap "
        "says how far apart the two sides are: near 0% steady, large when work piles up "
        "or drains.",
    ),
    ("end to end", "time from entering the process to leaving it, won, lost or dropped."),
    ("hit rate", "won deals / (won + lost)."),
)


def _panel(chart: str, note: str) -> str:
    """A chart in its box with its one-line explanation; an empty panel stays one line."""
    if chart.startswith("<p"):
        return chart
    return f'<section class="chart">{chart}<p class="note">{escape(note)}</p></section>'


def render(
    data: ReportData,
    policy: QueuePolicy | None = None,
    title: str = "SPE flow report",
    members: Iterable[Member] | None = None,
) -> str:
    """The report as one HTML document. ``members`` (e.g. the store's) name people
    the log does not; by default names come from the members recorded in the log."""
    policy = policy or QueuePolicy()
    names = dict(data.names)
    names.update({m.id: m.name for m in members or ()})
    history = enough_history(period(data.flow) if data.flow else timedelta(0))
    points = _points(data.hours)
    by_day = len(data.hours) > 72
    labels = [p.strftime("%a %d %b") if by_day else p.strftime("%a %H:00") for p in points]
    unit = "day" if by_day else "hour"
    fever_title = f"Queue level against its target, by {unit} (UTC)"
    flow_title = f"Cumulative flow: opportunities in each state, by {unit} (UTC)"
    if len(points) == 1:  # one hour of events: a number says more than a chart
        (p,) = points
        zone = buffer_zone(data.level[p], data.target[p], policy).value
        fever_chart = charts.empty(
            "fever",
            "Queue level",
            f"{data.level[p]:,} queued against a target of {data.target[p]:,} ({zone} zone); "
            "the chart needs a second hour of events",
        )
        in_states = ", ".join(f"{data.states[p][s]:,} {s}" for s in STATES)
        flow_chart = charts.empty(
            "flow",
            "Opportunities in each state",
            f"{in_states}; the chart needs a second hour of events",
        )
    else:
        fever_chart = charts.fever(
            "fever",
            fever_title,
            labels,
            [data.level[p] for p in points],
            [data.target[p] for p in points],
            policy.red_below,
            policy.green_above,
        )
        flow_chart = charts.stacked_area(
            "flow", flow_title, labels, [(s, [data.states[p][s] for p in points]) for s in STATES]
        )
    sections = [
        _panel(
            fever_chart,
            "Fever chart: the blue line is how many opportunities wait in the queue, the "
            "dashed line its target. Green: plenty to pull; yellow: watch; red: inside "
            "sales may run dry, Promotions should add opportunities.",
        ),
        _panel(
            flow_chart,
            "Each band is how many opportunities were in that state; a band that keeps "
            "widening shows where work piles up.",
        ),
    ]
    inside = people(data.pulls, names)
    order = sorted(data.pulls, key=lambda m: inside[m].casefold())
    if history.enough:
        pulls = [sum(data.pulls[m].values()) / max(1, len(data.pulls[m])) for m in order]
        pulls_title = "Pulls per inside salesperson per working day"
        pulls_note = (
            "Opportunities each inside salesperson took from the queue, per day on which "
            "they pulled."
        )
    else:
        pulls = [float(sum(data.pulls[m].values())) for m in order]
        pulls_title = "Pulls per inside salesperson so far"
        pulls_note = (
            "Opportunities each inside salesperson took from the queue so far (a daily "
            "rate needs one working day of history)."
        )
    sections.append(
        _panel(
            charts.bars(
                "pulls",
                pulls_title,
                [inside[m] for m in order],
                [("pulls", pulls)],
                integer=not history.enough,
            )
            if order
            else charts.empty("pulls", "Pulls", "nobody has pulled from the queue yet"),
            pulls_note,
        )
    )
    field = people(data.meetings, names)
    field_order = sorted(data.meetings, key=lambda m: field[m].casefold())
    meetings_title = "In-person meetings per field salesperson per day (target 4)"
    sections.append(
        _panel(
            charts.bars(
                "meetings",
                meetings_title,
                [field[m] for m in field_order],
                [
                    (
                        "meetings per day",
                        [
                            sum(data.meetings[m].values())
                            / max(1, sum(1 for n in data.meetings[m].values() if n))
                            for m in field_order
                        ],
                    )
                ],
                target=4.0,
            )
            if field_order
            else charts.empty("meetings", "In-person meetings", "no meetings booked yet"),
            "Meetings booked for each field salesperson, per day with a meeting; the dashed "
            "line is the target of 4 a day.",
        )
    )
    total = sum(data.sla.values())
    sections.append(
        _panel(
            charts.bars(
                "sla",
                "Routing SLA attainment (% of routed tasks done in time)",
                [f"{total:,} routed tasks"],
                [("met %", [100.0 * data.sla["met"] / total])],
                target=95.0,
            )
            if total
            else charts.empty("sla", "Routing SLA attainment", "no routed task completed yet"),
            "Share of the routed tasks completed before their deadline; the dashed line is "
            "the 95% target.",
        )
    )
    by_stream = Counter(q.stream for q in data.quarantined)
    streams = sorted(by_stream)
    sections.append(
        _panel(
            charts.bars(
                "quarantine",
                "Quarantined sync records by stream",
                streams,
                [("records", [float(by_stream[s]) for s in streams])],
                integer=True,
            )
            if by_stream
            else charts.empty("quarantine", "Quarantined sync records", "no quarantined records"),
            "Records the sync set aside because they could not be applied: fix each in the "
            "CRM (reasons below) and sync again.",
        )
    )
    quarantine_table = ""
    if data.quarantined:
        shown = data.quarantined[-200:]
        rows = "".join(
            f"<tr><td>{escape(q.crm)}</td><td>{escape(q.direction)}</td>"
            f"<td>{escape(q.stream)}</td><td>{escape(q.key)}</td><td>{escape(q.reason)}</td></tr>"
            for q in shown
        )
        more = (
            f"<p>The last {len(shown):,} of {len(data.quarantined):,}.</p>"
            if len(data.quarantined) > len(shown)
            else ""
        )
        quarantine_table = (
            "<h2>Quarantined records</h2>"
            "<table><tr><th>CRM</th><th>direction</th><th>stream</th><th>key</th>"
            f"<th>reason</th></tr>{rows}</table>{more}"
        )
    if data.outcomes:
        outcome_rows = "".join(
            f"<tr><td>{escape(k.replace('_', ' '))}</td><td class='n'>{v:,}</td></tr>"
            for k, v in sorted(data.outcomes.items())
        )
        outcomes = (
            f"<h2>Outcomes</h2><table><tr><th>outcome</th><th>count</th></tr>{outcome_rows}</table>"
        )
    else:
        outcomes = '<p class="empty"><b>Outcomes:</b> no opportunity resolved yet</p>'
    flow_html = _flow_section(data.flow, data.process, policy, history) if data.flow else ""
    span = ""
    if data.flow and data.flow.start and data.flow.end:
        span = (
            f" from {data.flow.start:%a %d %b %Y %H:%M} to {data.flow.end:%a %d %b %Y %H:%M} "
            f"UTC ({duration(period(data.flow).total_seconds())})"
        )
    notice = (
        "" if history.enough else f'<p class="notice">{escape(history.message.capitalize())}.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 800px; }}
section.chart {{ margin: 18px 0; border: 1px solid #ddd; padding: 8px; }}
section.chart svg {{ display: block; }}
p.note {{ margin: 6px 4px 0; color: #444; font-size: 13px; }}
p.empty {{ margin: 10px 0; padding: 6px 8px; border: 1px solid #ddd; color: #444; }}
p.notice {{ padding: 8px; background: #fbefc4; border: 1px solid #e0c870; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 3px 7px; }}
td.n {{ text-align: right; }}
dl.glossary {{ font-size: 13px; color: #333; }}
dl.glossary dt {{ font-weight: bold; float: left; clear: left; width: 150px; }}
dl.glossary dd {{ margin: 0 0 4px 160px; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>{data.events:,} events{span}. Generated by spe-sdk from the event log.</p>
{notice}
{flow_html}
{"".join(sections)}
{outcomes}
{quarantine_table}
</body></html>
"""


def _flow_section(
    flow: FlowReport, process: ProcessMap, policy: QueuePolicy, history: HistoryVerdict
) -> str:
    """The process map with its figures, the phase table, its glossary and the buffer
    recommendation (rates and advice only with enough history)."""
    rates = history.enough

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    rows = "".join(
        f"<tr><td>{escape(name.replace('_', ' '))}</td><td class='n'>{f.arrivals:,}</td>"
        f"<td class='n'>{f.departures:,}</td><td class='n'>{f.wip:,}</td>"
        + (f"<td class='n'>{charts.number(f.throughput_per_day)}</td>" if rates else "")
        + f"<td class='n'>{pct(f.conversion)}</td><td class='n'>{duration(f.cycle_p50)}</td>"
        f"<td class='n'>{duration(f.cycle_p85)}</td><td class='n'>{duration(f.cycle_p95)}</td>"
        + (f"<td class='n'>{pct(f.littles_law_gap)}</td>" if rates else "")
        + "</tr>"
        for name, f in flow.phases.items()
    )
    glossary = "".join(
        f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>"
        for term, text in GLOSSARY
        if rates or term not in ("out/day", "Little's law gap")
    )
    if rates:
        rec = recommend_buffer(flow.zone_share, policy, history=period(flow))
        advice = (
            f"{escape(rec.action)} the target ({rec.current_target:,} &rarr; "
            f"{rec.recommended_target:,}): {escape(rec.evidence)}."
        )
    else:
        advice = f"{escape(history.message)}."
    hit = "-" if flow.hit_rate is None else f"{100 * flow.hit_rate:.0f}%"
    return (
        f'<section class="chart">{charts.process_map(process, flow)}'
        '<p class="note">The phases an opportunity goes through, who owns each, and its '
        "figures over the period.</p></section>"
        "<h2>Phases</h2><table><tr><th>phase</th><th>in</th><th>out</th><th>WIP</th>"
        + ("<th>out/day</th>" if rates else "")
        + "<th>conversion</th><th>cycle p50</th><th>p85</th><th>p95</th>"
        + ("<th>Little's law gap</th>" if rates else "")
        + f"</tr>{rows}</table>"
        f'<dl class="glossary">{glossary}</dl>'
        f"<p>End to end: p50 {duration(flow.end_to_end_p50)}, p85 "
        f"{duration(flow.end_to_end_p85)}, p95 {duration(flow.end_to_end_p95)}. "
        f"Hit rate: {hit}.</p>"
        f"<p><b>Buffer management:</b> {advice}</p>"
    )


def write_report(
    events: Iterable[Recorded],
    path: str | Path,
    policy: QueuePolicy | None = None,
    members: Iterable[Member] | None = None,
    process: ProcessMap | None = None,
) -> Path:
    """Collect, render and write the report; returns its path. ``members`` (e.g. the
    store's) name people; by default the members recorded in the log do. ``process``:
    the process map (default: the four phases)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise InvalidValue(
            f"cannot write the report to {target}: the folder {target.parent} does not exist.",
            "create the folder first, or give a path in an existing folder.",
        )
    page = render(collect(events, policy, process), policy, members=members)
    target.write_text(page, encoding="utf-8")
    return target
