"""The sync engine: keeps the core's state in step with a CRM, through any adapter.

One run does three things, in order:

1. **Inbound.** For each stream the adapter declares (members, opportunities,
   tasks, busy calendar time: an inbound ``Busy`` whose ``crm_status`` is
   ``"free"`` removes that entry), read records modified at or after the stream's bookmark, map each
   (a record that cannot be mapped is quarantined with the reason and the rest
   goes on), apply them through the :class:`~spe_core.engine.Engine`, and
   advance the bookmark only after the page is applied and never past the
   signpost (the run's start minus a clock-skew allowance). Reads use ``>=``
   and applying is idempotent, so at-least-once delivery is exact. A record
   read again in the very version already applied (the skew window and
   webhook-applied records come twice) is counted unchanged without being
   mapped or applied again: the engine keeps, per stream, a digest of each
   record applied at or after the bookmark.
2. **Stage.** Turn the events recorded since the outbox cursor into outbox
   items (one per CRM record, latest values win), in one store transaction
   with the cursor, so nothing is staged twice or lost.
3. **Deliver.** Send due outbox items in the adapter's largest batch; delete
   an item only on the CRM's per-record success; retry transient failures
   with exponential backoff and jitter (honouring the CRM's retry-after);
   quarantine an item after repeated permanent failures.

A person's edit in the CRM that contradicts SPE's state (an owner changed by
hand) is a conflict: it is recorded, and by default the CRM wins (the
opportunity is withdrawn from SPE's flow, never silently overwritten); with
``conflicts="spe_wins"`` SPE writes its state back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, cast

import attrs

from spe_core import codec, routing
from spe_core.adapter import (
    Adapter,
    Change,
    ChangeKind,
    Inbound,
    SourceRecord,
    StreamSpec,
    WriteResult,
)
from spe_core.engine import Engine, UnitOfWork
from spe_core.errors import (
    AdapterError,
    BatchRejected,
    ConfigError,
    CrmUnreachable,
    MappingError,
    TransientError,
    TryLater,
)
from spe_core.events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentEvent,
    AppointmentRescheduled,
    Event,
    LeaseExpired,
    OpportunityExpired,
    OpportunityGivenBack,
    OpportunityQueued,
    OpportunityReleased,
    OpportunityResolved,
    OpportunityStale,
    Recorded,
    RecordQuarantined,
    SyncCompleted,
    SyncConflict,
    TaskAccepted,
    TaskCancelled,
    TaskCompleted,
    TaskDeclined,
    TaskEscalated,
    TaskEvent,
    TaskQueued,
    TaskReassigned,
    TaskRouted,
)
from spe_core.inbound import Action, Decision, decide_opportunity
from spe_core.model import Busy, Member, Opportunity, OpportunityStatus, Task
from spe_core.outbox import (
    OutboxItem,
    OutboxStatus,
    Quarantined,
    RetryPolicy,
    after_failure,
    backoff_seconds,
    merge,
)
from spe_core.store.base import Transaction

__all__ = [
    "APPLIED_STREAMS",
    "INBOUND",
    "OUTBOUND",
    "StreamReport",
    "SyncEngine",
    "SyncReport",
    "SyncSettings",
    "UNKNOWN_STREAM_FIX",
    "known_streams",
    "stream_problems",
    "unknown_stream_problem",
    "unknown_stream_reason",
]

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


def _adapter_calls(adapter: object) -> int | None:
    """The adapter's count of API calls, if it keeps one (an int ``calls``)."""
    calls = getattr(adapter, "calls", None)
    return calls if isinstance(calls, int) and not isinstance(calls, bool) else None


def _digest(record: SourceRecord) -> str:
    """A stable digest of a record's content (the same in every process)."""
    # the frozen map's own dict when it has one: the same items in the same order, read
    # without a Python-level call per field (the digest of every record read)
    items = getattr(record.fields, "_items", None)
    fields = items if type(items) is dict else record.fields
    return hashlib.blake2b(repr(tuple(fields.items())).encode(), digest_size=12).hexdigest()


Progress = Callable[[str, int, int | None], None]
"""A progress callback: (phase, done, total or None)."""

RetryNotice = Callable[[int, int, float, str], None]
"""Told before each in-process retry: (attempt, max attempts, delay in seconds, reason),
e.g. to print ``retrying 2/8 in 8 s: HubSpot answered HTTP 503``."""


@attrs.frozen
class SyncSettings:
    """How the sync behaves. Every field has a safe default."""

    clock_skew: timedelta = timedelta(minutes=5)
    conflicts: Literal["crm_wins", "spe_wins"] = "crm_wins"
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    max_wait_seconds: float = 60.0
    """How long one run waits for due retries before leaving them to the next run."""
    max_sleep_seconds: float = 60.0
    """The longest single in-process wait. Backoff delays are capped to it; when the
    CRM asks for a longer pause (a daily limit's ``retry_after``), the run stops with
    :class:`~spe_core.errors.TryLater` instead of sleeping: nothing is lost, the next
    run goes on."""
    read_ahead: int = 1
    """How many pages of a stream are read ahead of the one being applied, in a reader
    thread, for adapters that declare ``reads_in_thread = True`` (the Salesforce and
    HubSpot ones do): the CRM's work on the next page and its HTTP call overlap with
    applying this one. 0, or an adapter that does not declare it: each page is read
    only when the one before is applied, in the caller's thread."""
    fail_fast: bool = False
    """Stop at once on :class:`~spe_core.errors.CrmUnreachable` (refused connection,
    DNS, connect timeout) instead of retrying: for interactive commands, where minutes
    of silent retries help nobody. Long-running syncs keep the default (retry)."""

    def __attrs_post_init__(self) -> None:
        if type(self.read_ahead) is not int or not 0 <= self.read_ahead <= 100:
            raise ConfigError(
                f"sync read_ahead {self.read_ahead!r} is not a whole number from 0 to 100.",
                "use 1 (default: the next page is read while this one is applied) or 0.",
            )
        if self.conflicts not in ("crm_wins", "spe_wins"):
            raise ConfigError(
                f"sync conflicts setting {self.conflicts!r} is not known.",
                "use 'crm_wins' (default: a person's CRM edit is kept) or 'spe_wins'.",
            )


@attrs.define
class StreamReport:
    """Counts for one inbound stream. Every record read lands in exactly one count:
    ``read == applied + unchanged + ignored + quarantined + conflicts``.
    ``ignored_reasons`` says why records were ignored (reason -> how many),
    ``quarantined_records`` why each record was quarantined (CRM id -> reason).

    A dry run writes nothing; its ``applied`` counts the records a run would apply:
    opportunity records are judged by the inbound rules, and every record of the other
    streams that maps without a problem and was not applied before in this version
    counts (the engine may then find some of them unchanged)."""

    read: int = 0
    applied: int = 0
    unchanged: int = 0
    ignored: int = 0
    quarantined: int = 0
    conflicts: int = 0
    ignored_reasons: dict[str, int] = attrs.Factory(dict)
    quarantined_records: dict[str, str] = attrs.Factory(dict)

    def ignore(self, reason: str, count: int = 1) -> None:
        """Count ``count`` records ignored for ``reason``."""
        if count > 0:
            self.ignored += count
            self.ignored_reasons[reason] = self.ignored_reasons.get(reason, 0) + count

    def quarantine(self, crm_id: str, reason: str) -> None:
        """Count one record quarantined for ``reason``."""
        self.quarantined += 1
        self.quarantined_records[crm_id] = reason


@attrs.define
class SyncReport:
    """What one run did. ``dry_run`` runs read and map but write nothing."""

    adapter: str
    dry_run: bool = False
    streams: dict[str, StreamReport] = attrs.Factory(dict)
    staged: int = 0
    written: int = 0
    retried: int = 0
    failed: int = 0
    quarantined_outbound: int = 0
    pending: int = 0
    calls: int = 0
    split_calls: int = 0
    """Extra write calls made to isolate bad inputs in batches the CRM refused whole."""
    """CRM API calls of the run: the adapter's own count when it keeps one (``calls``,
    as the Salesforce and HubSpot adapters do: reads, writes, logins), else the
    write calls."""
    calls_before: int | None = attrs.field(default=None, repr=False)

    def count_calls(self, now: int | None) -> None:
        """Take the calls from the adapter's counter (``now``) when it keeps one."""
        if now is not None and self.calls_before is not None:
            self.calls = max(self.calls, now - self.calls_before)

    @property
    def read(self) -> int:
        """Records read over every stream."""
        return sum(s.read for s in self.streams.values())

    @property
    def applied(self) -> int:
        """Records that changed the core's state."""
        return sum(s.applied for s in self.streams.values())

    @property
    def unchanged(self) -> int:
        """Records read that changed nothing (already applied, or nothing new)."""
        return sum(s.unchanged for s in self.streams.values())

    @property
    def ignored(self) -> int:
        """Records read that are not SPE's to track (see :attr:`ignored_reasons`)."""
        return sum(s.ignored for s in self.streams.values())

    @property
    def ignored_reasons(self) -> dict[str, int]:
        """Why records were ignored, over every stream: reason -> how many."""
        total: dict[str, int] = {}
        for stream in self.streams.values():
            for reason, count in stream.ignored_reasons.items():
                total[reason] = total.get(reason, 0) + count
        return dict(sorted(total.items()))

    @property
    def quarantined(self) -> int:
        """Records quarantined this run, inbound and outbound."""
        return sum(s.quarantined for s in self.streams.values()) + self.quarantined_outbound

    @property
    def conflicts(self) -> int:
        """Conflicts detected this run."""
        return sum(s.conflicts for s in self.streams.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for ``--json`` output."""
        return {
            "adapter": self.adapter,
            "dry_run": self.dry_run,
            "read": self.read,
            "applied": self.applied,
            "unchanged": self.unchanged,
            "ignored": self.ignored,
            "ignored_reasons": self.ignored_reasons,
            "staged": self.staged,
            "written": self.written,
            "retried": self.retried,
            "quarantined": self.quarantined,
            "conflicts": self.conflicts,
            "pending": self.pending,
            "calls": self.calls,
            "split_calls": self.split_calls,
            "streams": {k: attrs.asdict(v) for k, v in self.streams.items()},
        }


# --- outbound: which events the CRM hears about -------------------------------------------

OutboundRule = Callable[[Event, Transaction, str], Change | None]
"""Turns one event into the change the CRM must hear (or None): (event, tx, crm name)."""


def _member_crm_id(tx: Transaction, member_id: str | None, crm: str) -> str | None:
    if member_id is None:
        return None
    member = tx.get_member(member_id)
    return None if member is None else member.external_id(crm)


def _opportunity_change(
    tx: Transaction, opportunity_id: str, crm: str, values: dict[str, Any]
) -> Change | None:
    opp = tx.get_opportunity(opportunity_id)
    if opp is None or opp.status is OpportunityStatus.WITHDRAWN:
        return None
    crm_id = opp.external_id(crm)
    if crm_id is None:  # created in SPE: the CRM needs what describes it, too
        values = {
            "account_id": opp.account_id,
            "source_campaign": opp.source_campaign,
            "tier": opp.tier,
            "score": opp.score,
            **values,
        }
    return Change(ChangeKind.OPPORTUNITY, opp.id, values, crm_id)


def _typed(cls: type[E], rule: Callable[[E, Transaction, str], Change | None]) -> OutboundRule:
    """An outbound rule for events of ``cls`` (other events have no change under it)."""

    def typed(event: Event, tx: Transaction, crm: str) -> Change | None:
        return rule(event, tx, crm) if isinstance(event, cls) else None

    return typed


def _released(event: OpportunityReleased, tx: Transaction, crm: str) -> Change | None:
    return _opportunity_change(
        tx,
        event.opportunity_id,
        crm,
        {
            "status": "released",
            "owner": _member_crm_id(tx, event.member_id, crm),
            "released_at": event.at,
        },
    )


def _status(status: str) -> OutboundRule:
    def rule(event: Event, tx: Transaction, crm: str) -> Change | None:
        if (
            isinstance(event, OpportunityQueued)
            and not event.from_backlog
            and event.opportunity.external_id(crm) is not None
        ):
            return None  # it came from this CRM already queued: nothing to tell it
        if isinstance(event, OpportunityQueued):
            opp_id = event.opportunity.id
        elif isinstance(
            event, OpportunityGivenBack | LeaseExpired | OpportunityStale | OpportunityExpired
        ):
            opp_id = event.opportunity_id
        else:
            return None
        values: dict[str, Any] = {"status": status}
        if isinstance(event, OpportunityGivenBack | LeaseExpired):
            values["owner"] = None
            values["released_at"] = None
        return _opportunity_change(tx, opp_id, crm, values)

    return rule


def _resolved(event: OpportunityResolved, tx: Transaction, crm: str) -> Change | None:
    return _opportunity_change(tx, event.opportunity_id, crm, {"status": event.outcome.value})


def _task(event: TaskEvent, tx: Transaction, crm: str) -> Change | None:
    task = event.task
    values: dict[str, Any] = {
        "status": task.status.value,
        "owner": _member_crm_id(tx, task.assignee_id, crm) if task.is_open else None,
        "kind": task.kind,
        "priority": task.priority,
        "due": task.complete_by,
    }
    if task.external_id(crm) is None:
        values["account_id"] = task.account_id
    return Change(ChangeKind.TASK, task.id, values, task.external_id(crm))


def _task_cancelled(event: TaskCancelled, tx: Transaction, crm: str) -> Change | None:
    """A task cancelled in SPE is written as cancelled; one cancelled because its record
    was deleted in this CRM is not written back (the record is gone)."""
    return None if event.crm == crm else _task(event, tx, crm)


def _booking(event: AppointmentEvent, tx: Transaction, crm: str) -> Change | None:
    """A booking becomes (or updates, or frees) an event in the member's CRM calendar."""
    booking = event.booking
    where = booking.location
    values: dict[str, Any] = {
        "status": booking.status.value,
        "owner": _member_crm_id(tx, booking.member_id, crm),
        "start": booking.start,
        "end": booking.end,
        "subject": f"{'Visit' if booking.in_person else 'Call'}: {booking.request.account_id}",
        "in_person": booking.in_person,
        "address": None if where is None else where.address or f"{where.lat:.5f},{where.lon:.5f}",
        "account_id": booking.request.account_id,
        "booked_by": booking.by,
    }
    return Change(ChangeKind.BOOKING, booking.id, values, booking.external_id(crm))


#: Event kind -> the rule turning it into a CRM change.
OUTBOUND: dict[str, OutboundRule] = {
    OpportunityQueued.kind: _status("queued"),
    OpportunityReleased.kind: _typed(OpportunityReleased, _released),
    OpportunityGivenBack.kind: _status("queued"),
    LeaseExpired.kind: _status("queued"),
    OpportunityResolved.kind: _typed(OpportunityResolved, _resolved),
    OpportunityStale.kind: _status("nurture"),
    OpportunityExpired.kind: _status("expired"),
    TaskRouted.kind: _typed(TaskEvent, _task),
    TaskQueued.kind: _typed(TaskEvent, _task),
    TaskAccepted.kind: _typed(TaskEvent, _task),
    TaskDeclined.kind: _typed(TaskEvent, _task),
    TaskCompleted.kind: _typed(TaskEvent, _task),
    TaskReassigned.kind: _typed(TaskEvent, _task),
    TaskEscalated.kind: _typed(TaskEvent, _task),
    TaskCancelled.kind: _typed(TaskCancelled, _task_cancelled),
    AppointmentBooked.kind: _typed(AppointmentEvent, _booking),
    AppointmentRescheduled.kind: _typed(AppointmentEvent, _booking),
    AppointmentCancelled.kind: _typed(AppointmentEvent, _booking),
}


class SyncEngine:
    """Runs inbound sync, outbox staging and delivery for one adapter."""

    def __init__(
        self,
        engine: Engine,
        adapter: Adapter,
        settings: SyncSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        progress: Progress | None = None,
        on_retry: RetryNotice | None = None,
    ) -> None:
        self.engine = engine
        self.on_retry = on_retry
        self.adapter = adapter
        self.settings = settings or SyncSettings()
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.progress = progress
        self.crm = adapter.name

    # --- the whole run ------------------------------------------------------------------

    def run(self, *, dry_run: bool = False) -> SyncReport:
        """Inbound, stage, deliver; returns the report (and records ``sync.completed``)."""
        report = SyncReport(self.crm, dry_run=dry_run)
        report.calls_before = _adapter_calls(self.adapter)
        started = self.engine.clock.now()
        if not dry_run:
            # Stage first: SPE's own changes still on their way to the CRM must not be
            # mistaken for a person's edit when the inbound read shows the old values.
            report.staged = self.stage()
        for spec in self.adapter.streams():
            report.streams[spec.name] = self.inbound(spec, started, dry_run=dry_run)
        if dry_run:
            report.staged = self._count_unstaged()
            report.count_calls(_adapter_calls(self.adapter))
            return report
        report.staged += self.stage()
        self.deliver(report)
        report.count_calls(_adapter_calls(self.adapter))
        with self.engine.unit() as u:
            report.pending = len(u.tx.outbox_items(self.crm, OutboxStatus.PENDING))
            u.record(
                SyncCompleted(
                    at=u.now,
                    crm=self.crm,
                    read=report.read,
                    applied=report.applied,
                    written=report.written,
                    retried=report.retried,
                    quarantined=report.quarantined,
                    conflicts=report.conflicts,
                )
            )
        return report

    def read_again(self) -> None:
        """Forget every stream's bookmark and window: the next run reads and maps every
        record again (e.g. after the adapter's mapping settings changed; applying is
        idempotent, records that did not change stay unchanged)."""
        with self.engine.unit() as u:
            for spec in self.adapter.streams():
                for key in (self._bookmark_key(spec.name), self._window_key(spec.name)):
                    if u.tx.get_meta(key) is not None:
                        u.tx.set_meta(key, "")

    def _tick(self, phase: str, done: int, total: int | None = None) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    # --- inbound --------------------------------------------------------------------------

    def _bookmark_key(self, stream: str) -> str:
        return f"sync:{self.crm}:{stream}:bookmark"

    def bookmark(self, stream: str) -> datetime | None:
        """Where the next read of ``stream`` starts (None: from the beginning)."""
        with self.engine.unit() as u:
            value = u.tx.get_meta(self._bookmark_key(stream))
        return datetime.fromisoformat(value) if value else None  # "": read again

    def _advance(self, stream: str, seen: datetime, signpost: datetime) -> None:
        target = min(seen, signpost)
        with self.engine.unit() as u:
            old = u.tx.get_meta(self._bookmark_key(stream))
            if not old or datetime.fromisoformat(old) < target:
                u.tx.set_meta(self._bookmark_key(stream), target.isoformat())

    def inbound(
        self, spec: StreamSpec, started: datetime, *, dry_run: bool = False
    ) -> StreamReport:
        """Read, map and apply one stream; advance its bookmark."""
        report = StreamReport()
        signpost = started - self.settings.clock_skew
        newest: datetime | None = None
        window = self._window(spec.name)
        unknown = self._unknown_stream(spec.name)
        if unknown is not None:
            log.warning("%s", unknown)
        for page in self._pages(spec):
            mapped: list[tuple[SourceRecord, Inbound]] = []
            versions: dict[str, tuple[datetime, str]] = {}
            for record in page:
                report.read += 1
                newest = record.modified_at if newest is None else max(newest, record.modified_at)
                if unknown is not None:  # nothing can apply it: never dropped in silence
                    report.quarantine(record.crm_id, unknown)
                    if not dry_run:
                        self._quarantine_inbound(record, unknown)
                    continue
                digest = _digest(record)
                seen = window.get(record.crm_id)
                if seen is not None and seen[1] == digest:
                    report.unchanged += 1  # this very version was applied before
                    continue
                try:
                    mapped.append((record, self.adapter.to_inbound(record)))
                except MappingError as exc:
                    report.quarantine(record.crm_id, str(exc))
                    if not dry_run:
                        self._quarantine_inbound(record, str(exc))
                    continue
                versions[record.crm_id] = (record.modified_at, digest)
            if dry_run:
                self._judge(spec.name, mapped, report)
            else:
                for crm_id in self._apply(spec.name, mapped, report):
                    versions.pop(crm_id, None)  # judged again when read again
                window.update(versions)
                if spec.is_sorted and newest is not None:
                    self._advance(spec.name, newest, signpost)
            self._tick(f"read {spec.name}", report.read)
        if not dry_run and newest is not None:
            self._advance(spec.name, newest, signpost)
        if not dry_run:
            self._save_window(spec.name, window)
        if not dry_run and spec.name == "busy":
            # the whole calendar stream was read: its members' busy time is fresh as of
            # the signpost (changes made after it come with the next run)
            with self.engine.unit() as u:
                ids = [m.id for m in u.tx.members() if m.external_id(self.crm) is not None]
            self.engine.sync_busy(read_for=ids, read_at=signpost)
        return report

    def apply_records(self, stream: str, records: Sequence[SourceRecord]) -> StreamReport:
        """Map and apply records read outside a stream read (e.g. the ids a CRM webhook
        named): the same quarantine, idempotency and conflict rules as :meth:`inbound`,
        without moving the stream's bookmark (the next run reads them again and, if
        they have not changed since, counts them unchanged)."""
        report = StreamReport()
        mapped: list[tuple[SourceRecord, Inbound]] = []
        versions: dict[str, tuple[datetime, str]] = {}
        unknown = self._unknown_stream(stream)
        for record in records:
            report.read += 1
            if unknown is not None:
                report.quarantine(record.crm_id, unknown)
                self._quarantine_inbound(record, unknown)
                continue
            try:
                mapped.append((record, self.adapter.to_inbound(record)))
            except MappingError as exc:
                report.quarantine(record.crm_id, str(exc))
                self._quarantine_inbound(record, str(exc))
                continue
            versions[record.crm_id] = (record.modified_at, _digest(record))
        for crm_id in self._apply(stream, mapped, report):
            versions.pop(crm_id, None)
        window = self._window(stream)
        window.update(versions)
        self._save_window(stream, window)
        return report

    # The window: per stream, the version (modification time, content digest) of each
    # record applied at or after the bookmark, i.e. of each record the next read will
    # return again. Entries behind the bookmark are dropped when the window is saved.

    def _window_key(self, stream: str) -> str:
        return f"sync:{self.crm}:{stream}:window"

    def _window(self, stream: str) -> dict[str, tuple[datetime, str]]:
        with self.engine.unit() as u:
            value = u.tx.get_meta(self._window_key(stream))
        if not value:
            return {}
        return {
            crm_id: (datetime.fromisoformat(at), digest)
            for crm_id, (at, digest) in json.loads(value).items()
        }

    def _save_window(self, stream: str, window: dict[str, tuple[datetime, str]]) -> None:
        bookmark = self.bookmark(stream)
        kept = {
            crm_id: [at.isoformat(), digest]
            for crm_id, (at, digest) in window.items()
            if bookmark is None or at >= bookmark
        }
        text = json.dumps(kept, separators=(",", ":"))
        key = self._window_key(stream)
        with self.engine.unit() as u:
            if (u.tx.get_meta(key) or "{}") != text:  # most runs change nothing
                u.tx.set_meta(key, text)

    def _pages(self, spec: StreamSpec) -> Iterator[list[SourceRecord]]:
        """The stream's pages from its bookmark; a transient failure restarts the read
        from the bookmark (already-applied pages come again and apply idempotently)."""
        policy = self.settings.retry
        attempt = 0
        while True:
            try:
                pages = self.adapter.read(spec.name, self.bookmark(spec.name))
                # a reader thread only for an adapter that says its read may run in one
                threaded = getattr(self.adapter, "reads_in_thread", False) is True
                yield from _read_ahead(pages, self.settings.read_ahead if threaded else 0)
                return
            except TransientError as exc:
                attempt += 1
                if attempt >= policy.max_transient_attempts or self._gives_up(exc):
                    raise
                self._pause(attempt, exc, f"reading {spec.name}")

    def _unknown_stream(self, stream: str) -> str | None:
        """Why the sync cannot apply records of ``stream`` (None: it can)."""
        if stream in APPLIED_STREAMS or stream in INBOUND:
            return None
        return unknown_stream_reason(self.crm, stream)

    def _quarantine_inbound(self, record: SourceRecord, reason: str) -> None:
        with self.engine.unit() as u:
            self._quarantine_in(u, record, reason)

    def _quarantine_in(self, u: UnitOfWork, record: SourceRecord, reason: str) -> None:
        """Quarantine one inbound record within the unit of work ``u``."""
        raw = codec.dumps({str(k): str(v) for k, v in record.fields.items()})
        u.tx.quarantine_put(
            Quarantined(self.crm, "inbound", record.stream, record.crm_id, reason, u.now, raw)
        )
        u.record(
            RecordQuarantined(
                at=u.now,
                crm=self.crm,
                direction="inbound",
                stream=record.stream,
                key=record.crm_id,
                reason=reason,
            )
        )
        log.warning("quarantined %s record %s: %s", record.stream, record.crm_id, reason)

    def _apply(
        self, stream: str, mapped: list[tuple[SourceRecord, Inbound]], report: StreamReport
    ) -> set[str]:
        """Apply one page of mapped records; returns the CRM ids it quarantined."""
        if stream == "members":
            values = [inbound for _, inbound in mapped if isinstance(inbound.value, Member)]
            report.ignore(_not_a("Member"), len(mapped) - len(values))
            members = [inbound.value for inbound in values]
            supplies = {inbound.value.id: inbound.supplies for inbound in values}
            changed = len(self.engine.upsert_members(members, supplies=supplies))
            report.applied += changed
            report.unchanged += len(members) - changed
            return set()
        if stream == "opportunities":
            return self._apply_opportunities(mapped, report)
        if stream == "busy":
            values = [inbound for _, inbound in mapped if isinstance(inbound.value, Busy)]
            free = [i for i in values if i.deleted or i.crm_status == "free"]
            busy = [i.value for i in values if not (i.deleted or i.crm_status == "free")]
            gone = [(i.value.member_id, i.value.id) for i in free]
            changed = self.engine.sync_busy(busy, gone=gone)
            report.applied += changed
            report.unchanged += len(values) - changed
            report.ignore(_not_a("Busy"), len(mapped) - len(values))
            return set()
        applier = INBOUND.get(stream)
        if applier is None:  # inbound() and apply_records() quarantine these unmapped
            reason = unknown_stream_reason(self.crm, stream)
            with self.engine.unit() as u:
                for record, _ in mapped:
                    self._quarantine_in(u, record, reason)
                    report.quarantine(record.crm_id, reason)
            return {record.crm_id for record, _ in mapped}
        for _, inbound in mapped:
            if applier(self, inbound):
                report.applied += 1
            else:
                report.unchanged += 1
        return set()

    def _decide(
        self,
        tx: Transaction,
        known: Opportunity | None,
        inbound: Inbound,
        owners: dict[str, str | None] | None = None,
    ) -> tuple[Decision, str | None]:
        """The inbound rules' decision for one record, and the CRM id of the member SPE
        released it to (``owners``: those looked up already in this transaction)."""
        owner = None
        if known is not None and known.owner_id is not None:
            if owners is None:
                owner = _member_crm_id(tx, known.owner_id, self.crm)
            elif known.owner_id in owners:
                owner = owners[known.owner_id]
            else:
                owner = owners[known.owner_id] = _member_crm_id(tx, known.owner_id, self.crm)
        pending = None
        if (
            known is not None
            and known.status is OpportunityStatus.RELEASED
            and inbound.crm_owner is not None
            and inbound.crm_owner != owner
        ):
            # the rules weigh SPE's unwritten change only where it decides a conflict:
            # a released opportunity whose CRM owner is not the member SPE released it
            # to. Any other record costs no outbox read.
            pending = tx.outbox_get(self.crm, ChangeKind.OPPORTUNITY.value, inbound.value.id)
        decision = decide_opportunity(
            known,
            inbound,
            crm=self.crm,
            owner_crm_id=owner,
            spe_write_pending=pending is not None
            and pending.status is not OutboxStatus.QUARANTINED,
        )
        return decision, owner

    def _judge(
        self, stream: str, mapped: list[tuple[SourceRecord, Inbound]], report: StreamReport
    ) -> None:
        """A dry run's counts for one mapped page, with nothing written: opportunity
        records judged by the inbound rules, the others counted as to be applied."""
        if stream != "opportunities":
            expected = {"members": Member, "busy": Busy, "tasks": Task}.get(stream, object)
            fits = [i for _, i in mapped if isinstance(i.value, expected)]
            report.applied += len(fits)
            report.ignore(_not_a(expected.__name__), len(mapped) - len(fits))
            return
        with self.engine.unit() as u:
            tx = u.tx
            for record, inbound in mapped:
                value = inbound.value
                if not isinstance(value, Opportunity):
                    report.ignore(_not_a("Opportunity"))
                    continue
                known = tx.get_opportunity(value.id)
                decision, _ = self._decide(tx, known, inbound)
                action = decision.action
                if action is Action.RERANK and known is not None:
                    same = (known.tier, known.score) == (value.tier, value.score)
                    action = Action.UNCHANGED if same else action
                if action in (Action.ADD, Action.RERANK, Action.WITHDRAW):
                    report.applied += 1
                elif action is Action.CONFLICT:
                    report.conflicts += 1
                elif action is Action.QUARANTINE:
                    report.quarantine(record.crm_id, decision.reason)
                elif action is Action.UNCHANGED:
                    report.unchanged += 1
                else:
                    report.ignore(decision.reason or "not SPE's to track")

    def _apply_opportunities(
        self, page: list[tuple[SourceRecord, Inbound]], report: StreamReport
    ) -> set[str]:
        """Apply one page in one unit of work: each record's decision
        (:func:`spe_core.inbound.decide_opportunity`) carried out through the engine.
        A record another process creates at the same moment is created once: its id
        is locked before SPE looks it up, and the later unit finds it stored.

        The bulk path: a new record's opportunity, as the adapter mapped it, is what
        the backlog stores (no second lookup, copy or validation); the page's waiting
        opportunities whose tier or score changed are re-ranked together, the queued
        ones scored in one call of the scoring plugins."""
        seen: dict[str, tuple[SourceRecord, Inbound]] = {}
        for record, inbound in page:
            if not isinstance(inbound.value, Opportunity):
                report.ignore(_not_a("Opportunity"))
                continue
            if inbound.value.id in seen:  # the newest version of a record wins
                report.ignore("an older version of a record read twice in one page")
            seen[inbound.value.id] = (record, inbound)
        quarantined: set[str] = set()
        engine = self.engine
        with engine.unit() as u:
            tx = u.tx
            new: list[Opportunity] = []
            reranks: list[tuple[Opportunity, int, float]] = []
            owners: dict[str, str | None] = {}
            for oid, (record, inbound) in seen.items():
                known = u.get_or_lock("opportunity", oid, tx.get_opportunity)
                decision, owner = self._decide(tx, known, inbound, owners)
                action = decision.action
                if action is Action.ADD:
                    new.append(inbound.value)
                elif action is Action.RERANK and known is not None:
                    reranks.append((known, inbound.value.tier, inbound.value.score))
                elif action is Action.WITHDRAW:
                    engine.withdraw(oid, decision.reason)
                    # deleted, or closed by a person: nothing SPE still meant to write
                    # may land on it (or overwrite the person's edit)
                    tx.outbox_delete(self.crm, ChangeKind.OPPORTUNITY.value, oid)
                    report.applied += 1
                    log.warning("%s: withdrawn from SPE's flow, %s", oid, decision.reason)
                elif action is Action.CONFLICT and known is not None:
                    report.conflicts += 1
                    self._conflict(u, known, owner, inbound.crm_owner)
                elif action is Action.UNCHANGED:
                    report.unchanged += 1
                elif action is Action.QUARANTINE:
                    report.quarantine(record.crm_id, decision.reason)
                    quarantined.add(record.crm_id)
                    self._quarantine_in(u, record, decision.reason)
                else:
                    report.ignore(decision.reason or "not SPE's to track")
            if reranks:
                changed = sum(1 for r in engine._rerank(u, reranks) if r is not None)
                report.applied += changed
                report.unchanged += len(reranks) - changed
            if new:
                # each id was looked up and locked above (get_or_lock): known to be new
                added = len(engine._backlog(u, new))
                report.applied += added
                report.unchanged += len(new) - added
        return quarantined

    def _conflict(
        self, u: UnitOfWork, opp: Opportunity, spe_owner: str | None, crm_owner: str | None
    ) -> None:
        resolution = self.settings.conflicts
        (recorded,) = u.record(
            SyncConflict(
                at=u.now,
                crm=self.crm,
                key=opp.id,
                field="owner",
                spe_value=spe_owner,
                crm_value=crm_owner,
                resolution=resolution,
            )
        )
        if resolution == "spe_wins":
            item = OutboxItem(
                self.crm,
                ChangeKind.OPPORTUNITY,
                opp.id,
                {"owner": spe_owner, "status": opp.status.value},
                recorded.seq,
                opp.external_id(self.crm),
            )
            u.tx.outbox_put(merge(u.tx.outbox_get(self.crm, item.kind.value, item.key), item))
        else:
            self.engine.withdraw(
                opp.id, f"its owner was changed in {self.crm} from {spe_owner} to {crm_owner}"
            )
        log.warning(
            "conflict on %s: owner %s in SPE, %s in %s (%s)",
            opp.id,
            spe_owner,
            crm_owner,
            self.crm,
            resolution,
        )

    # --- stage ----------------------------------------------------------------------------

    def _cursor_key(self) -> str:
        return f"sync:{self.crm}:outbox_cursor"

    def _events_after_cursor(self) -> Iterator[Recorded]:
        with self.engine.unit() as u:
            cursor = int(u.tx.get_meta(self._cursor_key()) or 0)
        return self.engine.store.events(after=cursor)

    def _count_unstaged(self) -> int:
        return sum(1 for r in self._events_after_cursor() if r.event.kind in OUTBOUND)

    def stage(self, page: int = 1000) -> int:
        """Stage the changes recorded since the outbox cursor; returns how many."""
        staged = 0
        while True:
            with self.engine.unit() as u:
                tx = u.tx
                cursor = int(tx.get_meta(self._cursor_key()) or 0)
                # read in this unit's transaction: the store's own read would need a
                # second connection, which a pool of one never frees (self-deadlock)
                batch = tx.events(after=cursor, limit=page)
                if not batch:
                    return staged
                reads = cast("Transaction", _MembersOnce(tx))
                for recorded in batch:
                    rule = OUTBOUND.get(recorded.event.kind)
                    change = None if rule is None else rule(recorded.event, reads, self.crm)
                    if change is None:
                        continue
                    item = OutboxItem(
                        self.crm,
                        change.kind,
                        change.key,
                        change.values,
                        recorded.seq,
                        change.crm_id,
                    )
                    tx.outbox_put(
                        merge(tx.outbox_get(self.crm, change.kind.value, change.key), item)
                    )
                    staged += 1
                tx.set_meta(self._cursor_key(), str(batch[-1].seq))
            self._tick("stage", staged)

    # --- deliver --------------------------------------------------------------------------

    def deliver(self, report: SyncReport | None = None) -> SyncReport:
        """Send due outbox items until none is due (waiting up to ``max_wait_seconds``)."""
        report = report or SyncReport(self.crm)
        size = max(1, self.adapter.batch_size)
        waited = 0.0
        while True:
            with self.engine.unit() as u:
                now = u.now
                due = u.tx.outbox_due(self.crm, now, size * 10)
                # every pending item only when none is due (to know how long to wait):
                # reading them all for each round of writes costs O(n^2) for n items
                pending = [] if due else u.tx.outbox_items(self.crm, OutboxStatus.PENDING)
            if not due:
                upcoming = [i.next_attempt_at for i in pending if i.next_attempt_at is not None]
                if not upcoming:
                    return report
                delay = max(0.0, (min(upcoming) - now).total_seconds())
                if waited + delay > self.settings.max_wait_seconds:
                    return report
                waited += delay
                self.sleep(delay)
                continue
            by_kind: dict[ChangeKind, list[OutboxItem]] = {}
            for item in due:
                by_kind.setdefault(item.kind, []).append(item)
            for items in by_kind.values():
                for start in range(0, len(items), size):
                    self._deliver_batch(items[start : start + size], report)
            self._tick("write", report.written, None)

    # --- waiting and retrying ----------------------------------------------------------------

    def _gives_up(self, exc: TransientError) -> bool:
        """True when ``exc`` should end the call now rather than be retried in-process:
        an unreachable CRM under ``fail_fast``. A pause longer than ``max_sleep_seconds``
        raises :class:`TryLater` from :meth:`_pause`."""
        return self.settings.fail_fast and isinstance(exc, CrmUnreachable)

    def _pause(self, attempt: int, exc: TransientError, doing: str) -> float:
        """Sleep before retry ``attempt + 1`` after ``exc``; returns the delay slept.

        Backoff is capped at ``max_sleep_seconds``; a CRM that asks for a longer pause
        ends the run with :class:`TryLater` (nothing is lost: bookmarks and the outbox
        hold the place)."""
        cap = self.settings.max_sleep_seconds
        if exc.retry_after is not None and exc.retry_after > cap:
            until = self.engine.clock.now() + timedelta(seconds=exc.retry_after)
            raise TryLater(
                f"{exc.problem} The CRM asks to wait {_duration(exc.retry_after)}, longer "
                f"than this run waits ({_duration(cap)}); stopped {doing}, nothing lost.",
                f"run it again after {until:%Y-%m-%d %H:%M} UTC, or raise max_sleep_seconds.",
                until=until,
            ) from exc
        delay = min(cap, backoff_seconds(attempt, self.settings.retry, self.rng.random()))
        delay = max(delay, exc.retry_after or 0.0)
        policy = self.settings.retry
        log.info(
            "%s: retrying %d/%d in %.1fs: %s",
            doing,
            attempt + 1,
            policy.max_transient_attempts,
            delay,
            exc.problem,
        )
        if self.on_retry is not None:
            self.on_retry(attempt + 1, policy.max_transient_attempts, delay, exc.problem)
        self.sleep(delay)
        return delay

    # --- writing a batch --------------------------------------------------------------------

    def _write(self, items: list[OutboxItem], report: SyncReport) -> list[WriteResult] | None:
        """One write call for ``items`` with in-process retries of transient failures;
        None when the items were postponed to a later run instead."""
        policy = self.settings.retry
        attempt = 0
        while True:
            attempt += 1
            report.calls += 1
            try:
                results = list(self.adapter.write([i.change() for i in items]))
            except TransientError as exc:
                report.retried += 1
                if self._gives_up(exc):
                    raise
                if attempt >= policy.max_transient_attempts:
                    delay = backoff_seconds(attempt, policy, self.rng.random(), exc.retry_after)
                    self._postpone(items, delay, str(exc))
                    return None
                self._pause(attempt, exc, f"writing {len(items)} {items[0].kind.value} changes")
                continue
            if len(results) != len(items):
                raise AdapterError(
                    f"the {self.crm} adapter answered {len(results)} results for "
                    f"{len(items)} changes.",
                    "this is a bug in the adapter: it must return one result per change.",
                )
            return results

    def _isolating(
        self,
        items: list[OutboxItem],
        report: SyncReport,
        *,
        refused: bool = False,
        split: bool = False,
    ) -> tuple[list[WriteResult | None], bool]:
        """Results for ``items`` (None for an item postponed to a later run), and whether
        the CRM refused any of them as a batch.

        When the CRM refuses the whole batch for a bad input (:class:`BatchRejected`),
        the batch is split in halves, until each bad input stands alone and fails on
        its own: the good inputs are written in this run. A half whose sibling was
        written whole must hold a bad input, so it is split at once instead of being
        sent whole (``refused``): a batch of n with one bad input costs at most
        2 log2(n) extra calls, and a bad input still gets the CRM's own reason, sent
        alone. ``split``: ``items`` are part of a refused batch (their calls are counted
        in ``SyncReport.split_calls``)."""
        if not refused or len(items) == 1:
            calls = report.calls
            try:
                results = self._write(items, report)
            except BatchRejected as exc:
                if split:
                    report.split_calls += report.calls - calls
                if len(items) == 1:
                    reason = exc.detail or exc.problem
                    failure = WriteResult(
                        items[0].key,
                        ok=False,
                        error=f"{self.crm} refused this record: {reason}",
                        retryable=False,
                    )
                    return [failure], True
            else:
                if split:
                    report.split_calls += report.calls - calls
                return ([None] * len(items) if results is None else list(results)), False
        middle = len(items) // 2
        left, left_refused = self._isolating(items[:middle], report, split=True)
        # the left half written whole (not postponed): the bad input is on the right
        written = not left_refused and all(r is not None for r in left)
        right, _ = self._isolating(items[middle:], report, refused=written, split=True)
        return left + right, True

    def _deliver_batch(self, items: list[OutboxItem], report: SyncReport) -> None:
        policy = self.settings.retry
        answers, _ = self._isolating(items, report)
        with self.engine.unit() as u:
            tx, now = u.tx, u.now
            for item, result in zip(items, answers, strict=True):
                if result is None:  # postponed
                    continue
                if result.ok:
                    tx.outbox_delete(self.crm, item.kind.value, item.key)
                    report.written += 1
                    if (
                        item.kind is ChangeKind.OPPORTUNITY
                        and result.crm_id
                        and result.crm_id != item.crm_id
                    ):
                        self.engine.link(item.key, self.crm, result.crm_id)
                    continue
                report.failed += 1
                if result.retryable:
                    report.retried += 1
                later = after_failure(item, result, now, policy, self.rng.random())
                tx.outbox_put(later)
                if later.status is OutboxStatus.QUARANTINED:
                    report.quarantined_outbound += 1
                    reason = result.error or "the CRM refused the write"
                    tx.quarantine_put(
                        Quarantined(
                            self.crm,
                            "outbound",
                            item.kind.value,
                            item.key,
                            reason,
                            now,
                            codec.dumps(dict(item.values)),
                        )
                    )
                    u.record(
                        RecordQuarantined(
                            at=now,
                            crm=self.crm,
                            direction="outbound",
                            stream=item.kind.value,
                            key=item.key,
                            reason=reason,
                        )
                    )

    def _postpone(self, items: list[OutboxItem], delay: float, error: str) -> None:
        with self.engine.unit() as u:
            at = u.now + timedelta(seconds=delay)
            for item in items:
                u.tx.outbox_put(attrs.evolve(item, next_attempt_at=at, last_error=error))

    # --- reading the results ----------------------------------------------------------------

    def quarantined(self) -> list[Quarantined]:
        """Every quarantined record of this adapter, for the sync report."""
        with self.engine.unit() as u:
            return u.tx.quarantined(self.crm)


class _MembersOnce:
    """A transaction whose ``get_member`` reads each member once (the outbound rules of
    one staged batch ask for the same few owners again and again; staging changes no
    member). Everything else goes to the transaction itself."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._members: dict[str, Member | None] = {}

    def get_member(self, member_id: str) -> Member | None:
        if member_id not in self._members:
            self._members[member_id] = self._tx.get_member(member_id)
        return self._members[member_id]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


_DONE = object()


def _read_ahead(pages: Iterator[list[SourceRecord]], depth: int) -> Iterator[list[SourceRecord]]:
    """``pages``, read up to ``depth`` pages ahead in a reader thread (0: as they are
    asked for). Pages and the reader's error come in the order read: an error ends the
    pages after every page read before it. When the consumer stops early, the reader
    stops after the call it is in (at most ``depth`` + 1 pages read and not applied),
    and the adapter's iterator is closed in the reader's thread."""
    if depth <= 0:
        yield from pages
        return
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for page in pages:
                if not hand(page):
                    return
            hand(_DONE)
        except BaseException as exc:  # handed over and raised in the consumer's thread
            hand(exc)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=reader, name="spe-sync-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


InboundApplier = Callable[[SyncEngine, Inbound], bool]
"""Applies one mapped record of a stream other than members and opportunities
(tasks, busy time); returns True when it changed the core's state."""


def _duration(seconds: float) -> str:
    """``seconds`` in words: ``45 s``, ``12 min``, ``4.7 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _apply_task(sync: SyncEngine, inbound: Inbound) -> bool:
    """A task created in the CRM for SPE: route it (once; later edits are SPE's to make).

    A task deleted in the CRM (``inbound.deleted``, read from its recycle bin) cancels
    the routed SPE task if it is still queued or open; one SPE never routed is not
    routed, and a completed or cancelled one stays as it is.
    """
    task = inbound.value
    if not isinstance(task, Task):
        return False
    with sync.engine.unit() as u:
        # a webhook may be routing the same task right now: the second finds it stored
        known = u.get_or_lock("task", task.id, u.tx.get_task)
        if inbound.deleted:
            if known is None or known.status not in routing.CANCELLABLE:
                return False
            sync.engine.cancel_task(known.id, f"deleted in {sync.crm}", crm=sync.crm)
            return True
        if known is not None:
            return False
        sync.engine.route_task(task)
    return True


#: Stream name -> applier for further streams (members, opportunities and busy time
#: are applied in batches by :meth:`SyncEngine._apply`).
INBOUND: dict[str, InboundApplier] = {"tasks": _apply_task}

APPLIED_STREAMS = frozenset({"members", "opportunities", "busy"})
"""The streams :meth:`SyncEngine._apply` applies in batches (the others: :data:`INBOUND`)."""


def known_streams() -> list[str]:
    """Every stream name the sync can apply, sorted."""
    return sorted(APPLIED_STREAMS | set(INBOUND))


def _not_a(kind: str) -> str:
    return f"the adapter mapped it to something other than a {kind}"


UNKNOWN_STREAM_FIX = (
    "use an adapter version made for this spe-sdk (its streams() may name only those), "
    "or turn the stream off in the adapter's settings in spe.toml."
)


def unknown_stream_problem(crm: str, stream: str) -> str:
    """What is wrong with an adapter stream the sync cannot apply (without the fix)."""
    return (
        f"the {crm} adapter declares the stream {stream!r}, which the sync cannot apply "
        f"(it applies: {', '.join(known_streams())})."
    )


def unknown_stream_reason(crm: str, stream: str) -> str:
    """Why records of ``stream``, which the sync cannot apply, are quarantined."""
    return f"{unknown_stream_problem(crm, stream)} Fix: {UNKNOWN_STREAM_FIX}"


def stream_problems(crm: str, streams: Sequence[StreamSpec]) -> list[str]:
    """The adapter's declared streams the sync cannot apply, for ``spe check``
    (the fix for each is :data:`UNKNOWN_STREAM_FIX`)."""
    return [
        unknown_stream_problem(crm, spec.name)
        for spec in streams
        if spec.name not in APPLIED_STREAMS and spec.name not in INBOUND
    ]
