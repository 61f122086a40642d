"""The process map and flow metrics: make the sales process visible.

A :class:`ProcessMap` groups the flow into a few phases by goal (default:
Demand generation -> Qualifying -> Proposing -> Delivering), each with an
owner role, a goal sentence, its metrics and the CRM stages mapped onto it.
:class:`FlowMetrics` streams the event log once (memory grows with the open
opportunities and the days covered, never with the log's length; cycle-time
percentiles come from a fixed log-bucket histogram) and reports, per phase:
arrivals, throughput, WIP, conversion to the next phase and cycle time (p50,
p85, p95), a Little's-law consistency check, plus the queue's share of time
in each buffer zone, pulls and outcomes per inside member per day, in-person
meetings per field member per day against the target, routing SLA attainment
and the hit rate. :func:`recommend_buffer` turns time-in-zone into Theory of
Constraints buffer management.

Everything here is pure: time comes from the events.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import attrs

from spe_core.errors import ConfigError, InvalidValue
from spe_core.events import (
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
)
from spe_core.model import Outcome, Role, to_role
from spe_core.queue import QueuePolicy, Zone, buffer_zone

__all__ = [
    "DEFAULT_PHASES",
    "ONE_WORKING_DAY",
    "BufferRecommendation",
    "FlowMetrics",
    "FlowReport",
    "HistoryVerdict",
    "Histogram",
    "Phase",
    "PhaseFigures",
    "ProcessMap",
    "duration",
    "enough_history",
    "period",
    "recommend_buffer",
]

DEMAND, QUALIFYING, PROPOSING, DELIVERING = (
    "demand_generation",
    "qualifying",
    "proposing",
    "delivering",
)


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


@attrs.frozen
class Phase:
    """One phase of the process: grouped by its goal, owned by one role, measured."""

    name: str
    owner: Role = attrs.field(converter=to_role)
    goal: str
    metrics: tuple[str, ...] = attrs.field(converter=_strings)
    stages: tuple[str, ...] = attrs.field(default=(), converter=_strings)


DEFAULT_PHASES: tuple[Phase, ...] = (
    Phase(
        DEMAND,
        Role.PROMOTIONS,
        "Keep the queue full of opportunities worth a conversation",
        ("arrivals", "queue level", "time in buffer zones"),
    ),
    Phase(
        QUALIFYING,
        Role.INSIDE_SALES,
        "Turn each opportunity into an appointment, or let it go quickly",
        ("throughput", "conversion", "cycle time", "pulls per member per day"),
    ),
    Phase(
        PROPOSING,
        Role.FIELD_SALES,
        "Meet the customer and win the deal",
        ("meetings per member per day", "conversion", "cycle time"),
    ),
    Phase(
        DELIVERING,
        Role.PROJECT_LEADER,
        "Deliver what was sold, on time",
        ("throughput", "cycle time", "routing SLA attainment"),
    ),
)


@attrs.frozen
class ProcessMap:
    """The phases, in order, and which CRM stage belongs to which phase."""

    phases: tuple[Phase, ...] = DEFAULT_PHASES

    def __attrs_post_init__(self) -> None:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names) or not names:
            raise ConfigError(
                "the process map needs phases with distinct names.",
                "name each [[flow.phases]] once.",
            )
        seen: dict[str, str] = {}
        for phase in self.phases:
            for stage in phase.stages:
                if stage in seen:
                    raise ConfigError(
                        f"CRM stage {stage!r} is mapped to both {seen[stage]} and {phase.name}.",
                        "map each stage to one phase.",
                    )
                seen[stage] = phase.name

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> ProcessMap:
        """From ``[flow]``: ``stages = {phase = [CRM stages]}`` and optional ``[[flow.phases]]``."""
        data = dict(data or {})
        phases = list(DEFAULT_PHASES)
        if "phases" in data:
            try:
                phases = [Phase(**p) for p in data.pop("phases")]
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"[[flow.phases]]: {exc}.", "give each phase name, owner, goal and metrics."
                ) from None
        stages = data.pop("stages", {})
        if data:
            raise ConfigError(
                f"[flow] {sorted(data)[0]} is not a known setting.", "known: phases, stages."
            )
        by_name = {p.name: p for p in phases}
        for phase_name, names in dict(stages).items():
            if phase_name not in by_name:
                raise ConfigError(
                    f"[flow.stages] names phase {phase_name!r}, which is not on the map.",
                    f"use one of: {', '.join(by_name)}.",
                )
            by_name[phase_name] = attrs.evolve(by_name[phase_name], stages=names)
        return cls(tuple(by_name[p.name] for p in phases))

    def phase_of_stage(self, stage: str) -> str | None:
        """The phase a CRM stage belongs to, or None."""
        for phase in self.phases:
            if stage in phase.stages:
                return phase.name
        return None

    def problems(self, crm_stages: Iterable[str]) -> list[str]:
        """What ``spe check`` reports: CRM stages left unmapped, phases with no metric."""
        out = [
            f"CRM stage {s!r} is not mapped to any phase"
            for s in crm_stages
            if self.phase_of_stage(s) is None
        ]
        out += [f"phase {p.name} has no metric" for p in self.phases if not p.metrics]
        return out

    def mermaid(self, report: FlowReport | None = None) -> str:
        """The map as Mermaid flowchart text (for docs), with current figures."""
        lines = ["flowchart LR"]
        for i, phase in enumerate(self.phases):
            figures = _figure_line(report, phase.name)
            stages = f"<br/>stages: {', '.join(phase.stages)}" if phase.stages else ""
            lines.append(
                f'  P{i}["<b>{phase.name.replace("_", " ")}</b><br/>{phase.goal}'
                f'<br/>owner: {phase.owner.value}{stages}{figures}"]'
            )
        for i in range(len(self.phases) - 1):
            lines.append(f"  P{i} --> P{i + 1}")
        return "\n".join(lines)


def _figure_line(report: FlowReport | None, phase: str) -> str:
    lines = [] if report is None else report.figure_lines(phase)
    return "".join(f"<br/>{line}" for line in lines)


def duration(seconds: float | None) -> str:
    """A duration in plain words: ``"-"``, ``"40 s"``, ``"25 min"``, ``"3.5 h"``, ``"2.1 days"``
    (a no-break space between number and unit, so a line never breaks between them)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}\u00a0s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}\u00a0min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:,.1f}\u00a0h"
    return f"{seconds / 86_400:,.1f}\u00a0days"


# --- enough history for rates -----------------------------------------------------------------

ONE_WORKING_DAY = timedelta(hours=8)
"""The history a rate (per day) or a buffer recommendation needs: one working day
(the length of the default working hours, 09:00-17:00)."""


@attrs.frozen
class HistoryVerdict:
    """Whether a span of history is long enough for rates and buffer advice, and why."""

    enough: bool
    span: timedelta
    minimum: timedelta

    @property
    def message(self) -> str:
        """One line for a reader: what the history covers and what it is enough for."""
        covered = duration(self.span.total_seconds())
        if self.enough:
            return f"{covered} of history"
        needed = duration(self.minimum.total_seconds())
        return (
            f"not enough history yet: the event log covers {covered}; rates per day and "
            f"buffer advice need at least one working day ({needed}) of it"
        )


def enough_history(span: timedelta, minimum: timedelta = ONE_WORKING_DAY) -> HistoryVerdict:
    """The rule for showing rates (per day) and buffer advice: only once the history
    (first to last event) spans at least ``minimum`` (default one working day). Before,
    minutes of events would read as thousands per day."""
    if minimum <= timedelta(0):
        raise InvalidValue(
            f"the minimum history must be positive, got {minimum}.", "pass e.g. timedelta(hours=8)."
        )
    if span < timedelta(0):
        raise InvalidValue(
            f"a history span cannot be negative, got {span}.",
            "pass the time from the first event to the last (or to now).",
        )
    return HistoryVerdict(span >= minimum, span, minimum)


# --- streaming percentiles ------------------------------------------------------------------


@attrs.define
class Histogram:
    """Durations in logarithmic buckets (2 % wide): constant memory, percentiles within 2 %."""

    counts: Counter[int] = attrs.Factory(Counter)
    total: int = 0
    sum_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        """Record one duration."""
        bucket = -1 if seconds < 1.0 else int(math.log(seconds) / math.log(1.02))
        self.counts[bucket] += 1
        self.total += 1
        self.sum_seconds += max(0.0, seconds)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in seconds, or None when empty."""
        if not self.total:
            return None
        rank = q * (self.total - 1)
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen > rank:
                return 0.0 if bucket < 0 else 1.02 ** (bucket + 0.5)
        return None

    @property
    def mean(self) -> float | None:
        """The mean duration in seconds, or None when empty."""
        return self.sum_seconds / self.total if self.total else None


# --- metrics ----------------------------------------------------------------------------------


@attrs.define
class PerDay:
    """A count per member per working day in constant memory (events come in time order)."""

    total: int = 0
    days: int = 0
    last: date | None = None

    def add(self, day: date, count: int = 1) -> None:
        """Count ``count`` on ``day``."""
        if day != self.last:
            self.days += 1
            self.last = day
        self.total += count

    @property
    def per_day(self) -> float:
        """The average over the days with any count."""
        return self.total / self.days if self.days else 0.0


@attrs.frozen
class PhaseFigures:
    """One phase's figures over the period."""

    arrivals: int
    departures: int
    wip: int
    conversion: float | None
    cycle_p50: float | None
    cycle_p85: float | None
    cycle_p95: float | None
    average_wip: float
    throughput_per_day: float
    littles_law_gap: float | None
    """|avg WIP - throughput x mean cycle time| / avg WIP (0 when the flow is steady)."""


@attrs.frozen
class FlowReport:
    """Everything :class:`FlowMetrics` measured."""

    start: datetime | None
    end: datetime | None
    phases: dict[str, PhaseFigures]
    end_to_end_p50: float | None
    end_to_end_p85: float | None
    end_to_end_p95: float | None
    zone_share: dict[str, float]
    pulls_per_member_day: dict[str, float]
    outcomes: dict[str, int]
    meetings_per_member_day: dict[str, float]
    meetings_target: float
    sla_attainment: float | None
    hit_rate: float | None
    events: int

    def figure_lines(self, phase: str) -> list[str]:
        """A phase's headline figures as short lines of text (for the map's pictures):
        in / out / WIP, cycle time p50 and p85, conversion; none for an unknown phase."""
        if phase not in self.phases:
            return []
        f = self.phases[phase]
        lines = [f"in {f.arrivals:,}, out {f.departures:,}, WIP {f.wip:,}"]
        if f.cycle_p50 is not None:
            lines.append(f"cycle p50 {duration(f.cycle_p50)}, p85 {duration(f.cycle_p85)}")
        if f.conversion is not None:
            lines.append(f"conversion {100 * f.conversion:.0f}%")
        return lines


class FlowMetrics:
    """Accumulates flow metrics from a stream of recorded events (``feed`` each, then
    ``report``). Feed events in log order."""

    def __init__(
        self,
        process: ProcessMap | None = None,
        policy: QueuePolicy | None = None,
        meetings_target: float = 4.0,
    ) -> None:
        self.process = process or ProcessMap()
        self.policy = policy or QueuePolicy()
        self.meetings_target = meetings_target
        names = [p.name for p in self.process.phases]
        self.order = {name: i for i, name in enumerate(names)}
        self.where: dict[str, tuple[str, datetime]] = {}
        self.first_seen: dict[str, datetime] = {}
        self.arrivals: Counter[str] = Counter()
        self.departures: Counter[str] = Counter()
        self.forward: Counter[str] = Counter()
        self.wip: Counter[str] = Counter()
        self.wip_area: dict[str, float] = defaultdict(float)  # phase -> item-seconds
        # phases off the map (the built-in ones, when [[flow.phases]] renames them) are
        # measured too, so feeding never fails; the report shows the map's phases
        self.cycle: dict[str, Histogram] = defaultdict(Histogram)
        self.end_to_end = Histogram()
        self.queued: set[str] = set()
        self.target = self.policy.target
        self.zone_seconds: dict[str, float] = defaultdict(float)
        self.pulls: dict[str, PerDay] = defaultdict(PerDay)
        self.outcomes: Counter[str] = Counter()
        self.meetings: dict[str, PerDay] = defaultdict(PerDay)
        self.sla: Counter[bool] = Counter()
        self.start: datetime | None = None
        self.last: datetime | None = None
        self.events = 0

    # --- time-weighted state -----------------------------------------------------------

    def _tick(self, at: datetime) -> None:
        if self.last is not None and at > self.last:
            seconds = (at - self.last).total_seconds()
            for phase, count in self.wip.items():
                if count:
                    self.wip_area[phase] += count * seconds
            zone = buffer_zone(len(self.queued), self.target, self.policy)
            self.zone_seconds[zone.value] += seconds
        if self.start is None:
            self.start = at
        if self.last is None or at > self.last:
            self.last = at

    def _enter(self, oid: str, phase: str, at: datetime) -> None:
        self._leave(oid, at, phase)
        self.where[oid] = (phase, at)
        self.arrivals[phase] += 1
        self.wip[phase] += 1
        self.first_seen.setdefault(oid, at)

    def _leave(self, oid: str, at: datetime, to: str | None = None) -> None:
        current = self.where.pop(oid, None)
        if current is None:
            return
        phase, since = current
        self.departures[phase] += 1
        self.wip[phase] -= 1
        self.cycle[phase].add((at - since).total_seconds())
        if to is not None and self.order.get(to, -1) > self.order.get(phase, -1):
            self.forward[phase] += 1

    def _exit(self, oid: str, at: datetime) -> None:
        self._leave(oid, at)
        first = self.first_seen.pop(oid, None)
        if first is not None:
            self.end_to_end.add((at - first).total_seconds())

    # --- feeding ------------------------------------------------------------------------

    def feed(self, item: Recorded | Event) -> None:
        """Account for one event (in log order)."""
        event = item.event if isinstance(item, Recorded) else item
        at = event.at
        self._tick(at)
        self.events += 1
        if isinstance(event, OpportunityBacklogged):
            self._enter(event.opportunity.id, DEMAND, at)
        elif isinstance(event, OpportunityQueued):
            if event.opportunity.id not in self.where:
                self._enter(event.opportunity.id, DEMAND, at)
            self.queued.add(event.opportunity.id)
        elif isinstance(event, OpportunityReleased):
            self.queued.discard(event.opportunity_id)
            self._enter(event.opportunity_id, QUALIFYING, at)
            self.pulls[event.member_id].add(at.date())
        elif isinstance(event, OpportunityGivenBack | LeaseExpired):
            self.queued.add(event.opportunity_id)
            self._enter(event.opportunity_id, DEMAND, at)
        elif isinstance(event, OpportunityResolved):
            self.outcomes[event.outcome.value] += 1
            if event.outcome is Outcome.APPOINTMENT_SET:
                self._enter(event.opportunity_id, PROPOSING, at)
            elif event.outcome is Outcome.WON:
                self._enter(event.opportunity_id, DELIVERING, at)
            else:
                self._exit(event.opportunity_id, at)
        elif isinstance(event, OpportunityStale | OpportunityExpired | OpportunityWithdrawn):
            self.queued.discard(event.opportunity_id)
            self._exit(event.opportunity_id, at)
        elif isinstance(event, QueueReplenished):
            self.target = event.target
        else:
            self._other(event, at)

    def _other(self, event: Event, at: datetime) -> None:
        kind = event.kind
        if kind == "opportunity.stage_changed":
            phase = self.process.phase_of_stage(str(getattr(event, "stage", "")))
            oid = str(getattr(event, "opportunity_id", ""))
            if phase is not None:
                self._enter(oid, phase, at)
            elif getattr(event, "closed", False):
                self._exit(oid, at)
        elif kind == "appointment.booked" and getattr(event, "in_person", True):
            member = getattr(event, "member_id", None)
            start = getattr(event, "start", at)
            if member is not None:
                self.meetings[str(member)].add(start.date())
        elif kind == "task.completed":
            within = getattr(event, "within_sla", None)
            if within is not None:
                self.sla[bool(within)] += 1

    def feed_all(self, events: Iterable[Recorded | Event]) -> FlowMetrics:
        """Feed every event; returns self."""
        for item in events:
            self.feed(item)
        return self

    # --- results ------------------------------------------------------------------------

    def report(self, now: datetime | None = None) -> FlowReport:
        """The figures so far (``now`` closes the time-weighted figures; default: last event)."""
        end = now or self.last
        if end is not None:
            self._tick(end)
        seconds = (end - self.start).total_seconds() if end and self.start else 0.0
        days = max(seconds / 86_400, 1e-9)
        phases = {}
        for phase in self.process.phases:
            name = phase.name
            hist = self.cycle[name]
            departures = self.departures[name]
            avg_wip = self.wip_area[name] / seconds if seconds else float(self.wip[name])
            throughput = departures / days if seconds else 0.0
            gap = None
            if hist.mean is not None and avg_wip > 0:
                gap = abs(avg_wip - throughput * hist.mean / 86_400) / avg_wip
            phases[name] = PhaseFigures(
                arrivals=self.arrivals[name],
                departures=departures,
                wip=self.wip[name],
                conversion=self.forward[name] / departures if departures else None,
                cycle_p50=hist.quantile(0.50),
                cycle_p85=hist.quantile(0.85),
                cycle_p95=hist.quantile(0.95),
                average_wip=avg_wip,
                throughput_per_day=throughput,
                littles_law_gap=gap,
            )
        total_zone = sum(self.zone_seconds.values())
        won, lost = self.outcomes[Outcome.WON.value], self.outcomes[Outcome.LOST.value]
        sla_total = sum(self.sla.values())
        return FlowReport(
            start=self.start,
            end=end,
            phases=phases,
            end_to_end_p50=self.end_to_end.quantile(0.5),
            end_to_end_p85=self.end_to_end.quantile(0.85),
            end_to_end_p95=self.end_to_end.quantile(0.95),
            zone_share={
                z.value: (self.zone_seconds[z.value] / total_zone if total_zone else 0.0)
                for z in Zone
            },
            pulls_per_member_day={m: c.per_day for m, c in self.pulls.items()},
            outcomes=dict(self.outcomes),
            meetings_per_member_day={m: c.per_day for m, c in self.meetings.items()},
            meetings_target=self.meetings_target,
            sla_attainment=self.sla[True] / sla_total if sla_total else None,
            hit_rate=won / (won + lost) if won + lost else None,
            events=self.events,
        )


# --- buffer management -----------------------------------------------------------------------


@attrs.frozen
class BufferRecommendation:
    """Theory-of-Constraints buffer management: what to do with the queue's target, and why."""

    action: str  # "raise", "lower" or "keep"
    current_target: int
    recommended_target: int
    evidence: str

    def apply(self, policy: QueuePolicy) -> QueuePolicy:
        """``policy`` with the recommended target."""
        return attrs.evolve(policy, target=self.recommended_target)


def recommend_buffer(
    zone_share: Mapping[str, float],
    policy: QueuePolicy,
    *,
    red_limit: float = 0.25,
    green_limit: float = 0.75,
    history: timedelta | None = None,
) -> BufferRecommendation:
    """Raise the target by a third when the queue sat in red for more than ``red_limit``
    of the time, lower it by a third when it sat in green for more than ``green_limit``.
    Given the ``history`` the shares come from (e.g. ``period(report)``), keep the
    target while it is shorter than one working day (:func:`enough_history`)."""
    target = policy.target
    if history is not None:
        verdict = enough_history(history)
        if not verdict.enough:
            return BufferRecommendation("keep", target, target, verdict.message)
    red, green = zone_share.get("red", 0.0), zone_share.get("green", 0.0)
    evidence = (
        f"red {100 * red:.0f}% / yellow {100 * zone_share.get('yellow', 0.0):.0f}% / "
        f"green {100 * green:.0f}% of the time"
    )
    if red > red_limit:
        return BufferRecommendation(
            "raise",
            target,
            math.ceil(target * 4 / 3),
            f"{evidence}: red above {100 * red_limit:.0f}%; raise the target by a third",
        )
    if green > green_limit:
        return BufferRecommendation(
            "lower",
            target,
            max(1, math.floor(target * 2 / 3)),
            f"{evidence}: green above {100 * green_limit:.0f}%; lower the target by a third",
        )
    return BufferRecommendation("keep", target, target, f"{evidence}: within limits")


def period(report: FlowReport) -> timedelta:
    """How long the report covers."""
    if report.start is None or report.end is None:
        return timedelta(0)
    return report.end - report.start
