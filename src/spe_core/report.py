"""The HTML flow report: one self-contained file of charts read from the event log.

``spe report --html FILE`` (or :func:`write_report`) streams the store's
events once and draws, as inline SVG (nothing fetched at view time):

- the buffer's level against its target and zones, day by day (fever chart);
- the cumulative flow: how many opportunities sit in each state each day;
- pulls per inside salesperson per day;
- in-person meetings per field salesperson per day against the target of 4;
- routing SLA attainment;
- the records the sync quarantined, with their reasons.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path

import attrs

from spe_core import charts
from spe_core.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentEvent,
    AppointmentRescheduled,
    Event,
    LeaseExpired,
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
from spe_core.flow import FlowMetrics, FlowReport, ProcessMap, recommend_buffer
from spe_core.queue import QueuePolicy

__all__ = ["ReportData", "collect", "render", "write_report"]

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
    events: int = 0
    flow: FlowReport | None = None


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


def collect(events: Iterable[Recorded], policy: QueuePolicy | None = None) -> ReportData:
    """Stream the events once; memory grows with open opportunities, not the log."""
    policy = policy or QueuePolicy()
    data = ReportData()
    flow = FlowMetrics(policy=policy)
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


def render(
    data: ReportData, policy: QueuePolicy | None = None, title: str = "SPE flow report"
) -> str:
    """The report as one HTML document."""
    policy = policy or QueuePolicy()
    points = _points(data.hours)
    by_day = len(data.hours) > 72
    labels = [p.date().isoformat() if by_day else p.strftime("%d %H:00") for p in points]
    unit = "day" if by_day else "hour"
    sections = [
        charts.fever(
            "fever",
            f"Buffer level against target, by {unit} (fever chart)",
            labels,
            [data.level[p] for p in points],
            [data.target[p] for p in points],
            policy.red_below,
            policy.green_above,
        ),
        charts.stacked_area(
            "flow",
            f"Cumulative flow: opportunities in each state, by {unit}",
            labels,
            [(s, [data.states[p][s] for p in points]) for s in STATES],
        ),
    ]
    members = sorted(data.pulls)
    sections.append(
        charts.bars(
            "pulls",
            "Pulls per inside salesperson per working day",
            members,
            [
                (
                    "pulls per day",
                    [sum(data.pulls[m].values()) / max(1, len(data.pulls[m])) for m in members],
                )
            ],
        )
    )
    field = sorted(data.meetings)
    sections.append(
        charts.bars(
            "meetings",
            "In-person meetings per field salesperson per day (target 4)",
            field,
            [
                (
                    "meetings per day",
                    [sum(data.meetings[m].values()) / max(1, len(data.meetings[m])) for m in field],
                )
            ],
            target=4.0,
        )
        if field
        else charts.empty(
            "meetings",
            "In-person meetings per field salesperson per day (target 4)",
            "no meetings booked yet",
        )
    )
    total = sum(data.sla.values())
    sections.append(
        charts.bars(
            "sla",
            "Routing SLA attainment (% of tasks done in time)",
            ["tasks"],
            [("met %", [100.0 * data.sla["met"] / total])],
            target=95.0,
        )
        if total
        else charts.empty("sla", "Routing SLA attainment", "no routed task completed yet")
    )
    by_stream = Counter(q.stream for q in data.quarantined)
    sections.append(
        charts.bars(
            "quarantine",
            "Quarantined sync records by stream",
            sorted(by_stream),
            [("records", [by_stream[s] for s in sorted(by_stream)])],
        )
        if by_stream
        else charts.empty("quarantine", "Quarantined sync records", "no record quarantined")
    )
    rows = "".join(
        f"<tr><td>{escape(q.crm)}</td><td>{escape(q.direction)}</td><td>{escape(q.stream)}</td>"
        f"<td>{escape(q.key)}</td><td>{escape(q.reason)}</td></tr>"
        for q in data.quarantined[-200:]
    )
    outcome_rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in sorted(data.outcomes.items())
    )
    flow_html = _flow_section(data.flow, policy) if data.flow else ""
    body = "".join(f'<section class="chart">{s}</section>' for s in sections)
    days = len({h.date() for h in data.hours})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 820px; }}
section.chart {{ margin: 18px 0; border: 1px solid #ddd; padding: 6px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>{data.events} events over {days} day(s). Generated by spe-sdk from the event log.</p>
{flow_html}
{body}
<h2>Outcomes</h2><table><tr><th>outcome</th><th>count</th></tr>{outcome_rows}</table>
<h2>Quarantined records</h2>
<table><tr><th>CRM</th><th>direction</th><th>stream</th><th>key</th><th>reason</th></tr>{rows}
</table></body></html>
"""


def _flow_section(flow: FlowReport, policy: QueuePolicy) -> str:
    """The process map with its figures, the phase table and the buffer recommendation."""

    def h(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds / 3600:.1f} h"

    rows = "".join(
        f"<tr><td>{escape(name.replace('_', ' '))}</td><td>{f.arrivals}</td>"
        f"<td>{f.departures}</td><td>{f.wip}</td><td>{f.throughput_per_day:.1f}</td>"
        f"<td>{'-' if f.conversion is None else f'{100 * f.conversion:.0f}%'}</td>"
        f"<td>{h(f.cycle_p50)}</td><td>{h(f.cycle_p85)}</td><td>{h(f.cycle_p95)}</td>"
        f"<td>{'-' if f.littles_law_gap is None else f'{100 * f.littles_law_gap:.0f}%'}</td></tr>"
        for name, f in flow.phases.items()
    )
    rec = recommend_buffer(flow.zone_share, policy)
    hit = "-" if flow.hit_rate is None else f"{100 * flow.hit_rate:.0f}%"
    return (
        f'<section class="chart">{charts.process_map(ProcessMap(), flow)}</section>'
        "<h2>Phases</h2><table><tr><th>phase</th><th>in</th><th>out</th><th>WIP</th>"
        "<th>out/day</th><th>conversion</th><th>cycle p50</th><th>p85</th><th>p95</th>"
        f"<th>Little's law gap</th></tr>{rows}</table>"
        f"<p>End to end: p50 {h(flow.end_to_end_p50)}, p85 {h(flow.end_to_end_p85)}, "
        f"p95 {h(flow.end_to_end_p95)}. Hit rate (won / won + lost): {hit}.</p>"
        f"<p><b>Buffer management:</b> {escape(rec.action)} the target "
        f"({rec.current_target} &rarr; {rec.recommended_target}): {escape(rec.evidence)}.</p>"
    )


def write_report(
    events: Iterable[Recorded], path: str | Path, policy: QueuePolicy | None = None
) -> Path:
    """Collect, render and write the report; returns its path."""
    target = Path(path)
    target.write_text(render(collect(events, policy), policy), encoding="utf-8")
    return target
