"""The adapter contract suite: every CRM adapter must pass it.

Subclass :class:`AdapterContract` and provide a ``harness`` fixture yielding
a :class:`CrmHarness`: the adapter under test plus a handful of operations on
the CRM behind it (seed a user or a queued record, read a record back, edit
an owner by hand, inject faults). The suite then runs the same scenarios on
every adapter: members and roles in, queued records in, each mapped value
carrying its CRM id, reads at the bookmark instant (``>=``), owners and
statuses out, conflicts, malformed records, transient and per-record
failures, and idempotent reruns.

Three cases need an optional capability of the harness and are skipped, with
the reason, when it lacks it: paging and records edited during a read
(:class:`PagedHarness`: ``page_size``), deleted records
(:class:`DeletingHarness`: ``delete_record``) and statuses SPE does not know
(:class:`StatusHarness`: ``add_with_status``).

Every failure is a :class:`ContractViolation` whose message says what the
adapter did and what the contract requires.

The harness's ``clock`` is shared by the engine and the CRM (emulators take
an injectable clock), so bookmarks and signposts are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar, Protocol

import pytest

from spe_core.adapter import Adapter, Change, Inbound, SourceRecord, StreamSpec, WriteResult
from spe_core.clock import FakeClock
from spe_core.engine import Engine
from spe_core.errors import MappingError
from spe_core.model import Opportunity, OpportunityStatus
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy
from spe_core.store.memory import MemoryStore
from spe_core.sync import StreamReport, SyncEngine, SyncReport, SyncSettings

__all__ = [
    "AdapterContract",
    "ContractViolation",
    "CrmHarness",
    "DeletingHarness",
    "PagedHarness",
    "StatusHarness",
    "contract_rig",
    "require",
]

UNKNOWN_STATUS = "on_hold_by_legal"
"""A status SPE does not know, for the pass-through case."""


class CrmHarness(Protocol):
    """What the contract suite needs to drive one CRM behind one adapter."""

    # read-only in the protocol, so a plain attribute of a narrower type satisfies it
    @property
    def adapter(self) -> Adapter:
        """The adapter under test, connected to the CRM this harness drives."""
        ...

    @property
    def clock(self) -> FakeClock:
        """The time of the CRM and of the engine: the CRM stamps modifications with it."""
        ...

    def add_user(self, name: str, role: str) -> str:
        """Create a CRM user with an SPE role; returns the CRM user id."""
        ...

    def add_queued(self, account: str, tier: int, score: float) -> str:
        """Create a record SPE should queue; returns its CRM id."""
        ...

    def add_malformed(self) -> str:
        """Create a record marked queued that cannot be mapped (e.g. no account)."""
        ...

    def read_back(self, crm_id: str) -> dict[str, Any]:
        """The record's SPE view: ``{"status": ..., "owner": crm user id or None, "key": ...}``."""
        ...

    def edit_owner(self, crm_id: str, owner: str) -> None:
        """A person sets the record's owner by hand in the CRM."""
        ...

    def fail_next_writes(self, count: int) -> None:
        """Make the next ``count`` write calls fail transiently (rate limit or 5xx)."""
        ...

    def fail_record(self, crm_id: str) -> None:
        """Make every write to this record fail permanently inside an otherwise fine batch."""
        ...

    def record_count(self) -> int:
        """How many opportunity records the CRM holds."""
        ...


class PagedHarness(CrmHarness, Protocol):
    """Optional: the harness knows its adapter's page size (paging cases)."""

    page_size: int
    """The most records one page of ``adapter.read`` holds; the suite creates more
    than two pages' worth. Make the CRM's page small in the harness (an emulator
    setting) so the case stays fast."""


class DeletingHarness(CrmHarness, Protocol):
    """Optional: the CRM can delete records (deleted-records case)."""

    def delete_record(self, crm_id: str) -> None:
        """A person deletes the opportunity record (into the CRM's recycle bin, where
        the adapter reads it as deleted)."""
        ...


class StatusHarness(CrmHarness, Protocol):
    """Optional: records with any value in the SPE status field (unknown-status case)."""

    def add_with_status(self, account: str, status: str) -> str:
        """Create an opportunity record whose SPE status field holds ``status``, as the
        adapter's field mapping would write that SPE status; returns its CRM id."""
        ...


class ContractViolation(AssertionError):
    """A contract case failed: the message says what the adapter did wrong and what
    the contract requires."""


def require(condition: bool, did: str, requires: str) -> None:
    """Raise :class:`ContractViolation` unless ``condition``: ``did`` says what the
    adapter did, ``requires`` what the contract requires instead."""
    __tracebackhide__ = True  # pytest shows the failing case, not this helper
    if not condition:
        raise ContractViolation(f"{did}\nThe adapter contract requires: {requires}")


def _capability(h: CrmHarness, name: str, what: str) -> Any:
    """The harness's optional capability ``name``, or skip the case saying why."""
    found = getattr(h, name, None)
    if found is None:
        pytest.skip(f"the harness has no {name} ({what}): this case needs it")
    return found


@contextmanager
def contract_rig(
    harness: CrmHarness, adapter: Adapter | None = None
) -> Iterator[tuple[CrmHarness, Engine, SyncEngine]]:
    """The harness, an engine on a fresh memory store at the harness's clock, and a
    sync over ``adapter`` (default: the harness's), as every case uses them."""
    store = MemoryStore()
    engine = Engine(
        store,
        clock=harness.clock,
        policy=QueuePolicy(target=1000, daily_pull_cap=None, default_wip_limit=50),
        plugins=Plugins.create(entry_points=False),
    )

    def sleep(seconds: float) -> None:
        harness.clock.advance(seconds=seconds)

    sync = SyncEngine(engine, adapter or harness.adapter, SyncSettings(), sleep=sleep)
    try:
        yield harness, engine, sync
    finally:
        store.close()


def _during_read(adapter: Adapter, stream: str, hook: Callable[[list[SourceRecord]], None]) -> Any:
    """``adapter``, except that ``hook(first page)`` runs after the first page of
    ``stream`` has been handed on and before the adapter is asked for the next one:
    a person editing the CRM while the sync pages through it."""

    class DuringRead:
        name: ClassVar[str] = adapter.name
        batch_size = adapter.batch_size
        fired = False

        def streams(self) -> Sequence[StreamSpec]:
            return adapter.streams()

        def read(self, name: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
            for page in adapter.read(name, since):
                yield page
                if name == stream and not self.fired:
                    self.fired = True
                    hook(page)

        def to_inbound(self, record: SourceRecord) -> Inbound:
            return adapter.to_inbound(record)

        def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
            return adapter.write(changes)

        def close(self) -> None:
            adapter.close()

    return DuringRead()


def _read_all(adapter: Adapter, stream: str, since: datetime | None) -> list[SourceRecord]:
    records: list[SourceRecord] = []
    for page in adapter.read(stream, since):
        records.extend(page)
    wrong = sorted({r.stream for r in records} - {stream})
    require(
        not wrong,
        f"read({stream!r}, ...) yielded SourceRecords whose stream is {wrong}.",
        "every SourceRecord a read yields names the stream it was read from.",
    )
    return records


def _stream_names(adapter: Adapter) -> list[str]:
    return [s.name for s in adapter.streams()]


def _linked(engine: Engine, crm: str) -> set[str]:
    return {
        crm_id
        for o in engine.store.opportunities()
        if (crm_id := o.external_id(crm)) is not None
    }


_EXTERNAL_IDS = (
    "each value to_inbound returns carries its CRM record id under the adapter's name: "
    "external_ids={adapter.name: record.crm_id}, so that SPE's writes find the record "
    "again and conflicts, deletes and reruns are matched to it."
)
_READ_ALL = (
    "read(stream, since) yields, page after page, every record of the stream modified "
    "at or after since (None: every record); to_inbound maps a record whose SPE status "
    "is queued onto an Opportunity with crm_status='queued'."
)


def _stream(report: SyncReport, name: str) -> StreamReport:
    found = report.streams.get(name)
    require(
        found is not None,
        f"the sync read the streams {sorted(report.streams)}, not {name!r}.",
        "streams() declares 'members' and 'opportunities' by those names.",
    )
    return found or StreamReport()


def _pull_one(engine: Engine, member_id: str) -> Opportunity:
    released = engine.pull(member_id).released
    require(
        len(released) == 1,
        f"member {member_id} pulled {len(released)} opportunities from a queue the harness "
        f"filled (queue: {engine.queue_status().level}).",
        _READ_ALL,
    )
    return released[0]


class AdapterContract:
    """Scenarios every adapter must pass. Provide a ``harness`` fixture."""

    @pytest.fixture
    def rig(self, harness: CrmHarness) -> Iterator[tuple[CrmHarness, Engine, SyncEngine]]:
        with contract_rig(harness) as rig:
            yield rig

    @staticmethod
    def _seed(h: CrmHarness, queued: int) -> tuple[str, str, list[str]]:
        ana = h.add_user("Ana Ruiz", "inside_sales")
        ben = h.add_user("Ben Okafor", "inside_sales")
        records = [h.add_queued(f"acct-{i}", i % 3, float(i)) for i in range(queued)]
        h.clock.advance(minutes=10)
        return ana, ben, records

    @staticmethod
    def _bring_in(engine: Engine, sync: SyncEngine) -> None:
        """Sync the CRM's queued records into the backlog, replenish the queue from it,
        and confirm the queue to the CRM."""
        sync.run()
        engine.replenish()
        sync.run()

    @staticmethod
    def _member_id(engine: Engine, crm_id: str, crm: str) -> str:
        found = [m.id for m in engine.members() if m.external_id(crm) == crm_id]
        require(
            len(found) == 1,
            f"after a sync, {len(found)} members carry the CRM user id {crm_id!r} under "
            f"{crm!r} (members: {[(m.id, m.external_id(crm)) for m in engine.members()]}).",
            "read('members', since) returns every CRM user, and to_inbound maps each onto a "
            "Member with " + _EXTERNAL_IDS,
        )
        return found[0]

    @staticmethod
    def _require_streams(h: CrmHarness) -> None:
        names = _stream_names(h.adapter)
        require(
            "members" in names and "opportunities" in names,
            f"streams() declares {names}.",
            "streams() declares 'members' and 'opportunities' by those names (and, if the "
            "adapter reads them, 'tasks' and 'busy'); the sync ignores other names.",
        )

    def test_members_and_queued_records_come_in(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        self._require_streams(h)
        ana, _, records = self._seed(h, 12)
        report = sync.run()
        opps = _stream(report, "opportunities")
        require(
            opps.applied == 12,
            f"the sync applied {opps.applied} of the 12 queued records the harness created "
            f"(read {opps.read}, quarantined {opps.quarantined}, ignored {opps.ignored}, "
            f"unchanged {opps.unchanged}).",
            _READ_ALL,
        )
        member = engine.member(self._member_id(engine, ana, h.adapter.name))
        require(
            (member.role.value, member.name) == ("inside_sales", "Ana Ruiz"),
            f"the user 'Ana Ruiz' with role 'inside_sales' came in as {member.name!r} with "
            f"role {member.role.value!r}.",
            "to_inbound maps a user onto a Member with the CRM's name and SPE role.",
        )
        # records marked queued in the CRM wait in the backlog; replenishment decides
        backlog = engine.queue_status().backlog
        require(
            backlog == 12,
            f"{backlog} of 12 queued records reached SPE's backlog.",
            "records whose SPE status is queued map with crm_status='queued'.",
        )
        engine.replenish()
        missing = sorted(set(records) - _linked(engine, h.adapter.name))
        require(
            not missing,
            f"the CRM records {missing} came in as opportunities without their CRM id.",
            _EXTERNAL_IDS,
        )

    def test_every_mapped_value_carries_its_crm_id(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, _, _ = rig
        self._require_streams(h)
        self._seed(h, 4)
        crm = h.adapter.name
        for stream in ("members", "opportunities"):
            for record in _read_all(h.adapter, stream, None):
                value = h.adapter.to_inbound(record).value
                got = value.external_id(crm)
                require(
                    got == record.crm_id,
                    f"to_inbound mapped {stream} record {record.crm_id!r} onto a "
                    f"{type(value).__name__} whose external id under {crm!r} is {got!r} "
                    f"(external_ids={dict(value.external_ids)!r}).",
                    _EXTERNAL_IDS,
                )

    def test_read_includes_records_modified_at_the_bookmark_instant(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, _, _ = rig
        self._seed(h, 4)
        for stream in ("members", "opportunities"):
            everything = _read_all(h.adapter, stream, None)
            require(
                bool(everything),
                f"read({stream!r}, None) yielded no record although the CRM holds some.",
                "read(stream, None) yields every record of the stream.",
            )
            instant = max(r.modified_at for r in everything)
            expected = {r.crm_id for r in everything if r.modified_at >= instant}
            got = {r.crm_id for r in _read_all(h.adapter, stream, instant)}
            missing = sorted(expected - got)
            require(
                not missing,
                f"read({stream!r}, since={instant.isoformat()}) left out {missing}, modified "
                f"exactly at that instant: the adapter compares with '>' instead of '>='.",
                "read(stream, since) returns records modified AT OR AFTER since (>=). The "
                "bookmark is the newest modification time already applied, and records "
                "sharing that instant (or written a moment late with it) would be lost.",
            )

    def test_every_page_is_read(self, rig: tuple[CrmHarness, Engine, SyncEngine]) -> None:
        h, engine, sync = rig
        size: int = _capability(h, "page_size", "the most records one page of read holds")
        _, _, records = self._seed(h, 2 * size + 1)
        report = _stream(sync.run(), "opportunities")
        missing = sorted(set(records) - _linked(engine, h.adapter.name))
        require(
            not missing,
            f"one sync of {len(records)} queued records (more than two pages of {size}) read "
            f"{report.read} and brought in {len(records) - len(missing)}; missing: "
            f"{missing[:10]}.",
            "read(stream, since) yields every page: follow the CRM's next-page cursor "
            "until the CRM says there is no more.",
        )

    def test_a_record_edited_during_a_read_is_not_lost(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, _ = rig
        size: int = _capability(h, "page_size", "the most records one page of read holds")
        ana, _, records = self._seed(h, 2 * size + 1)
        edited: list[str] = []

        def edit(page: list[SourceRecord]) -> None:
            edited.append(page[0].crm_id)
            h.edit_owner(page[0].crm_id, ana)

        def sleep(seconds: float) -> None:
            h.clock.advance(seconds=seconds)

        sync = SyncEngine(
            engine, _during_read(h.adapter, "opportunities", edit), SyncSettings(), sleep=sleep
        )
        sync.run()
        h.clock.advance(minutes=10)
        sync.run()
        missing = sorted(set(records) - _linked(engine, h.adapter.name))
        require(
            not missing,
            f"record {edited} was edited in the CRM while the sync paged through "
            f"opportunities; after that run and the next, the records {missing[:10]} "
            "never came in.",
            "a read returns every record modified at or after since even when records "
            "change between its pages: page by the replication key and the record id "
            "(keyset paging) or over a snapshot, never by offset into a live result.",
        )

    def test_deleted_records_leave_the_flow(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        delete = _capability(h, "delete_record", "a person deletes a record in the CRM")
        ana, _, _ = self._seed(h, 4)
        self._bring_in(engine, sync)
        crm = h.adapter.name
        released = _pull_one(engine, self._member_id(engine, ana, crm))
        sync.run()
        queued = [o for o in engine.store.opportunities() if o.status is OpportunityStatus.QUEUED]
        require(bool(queued), "none of the 4 queued records reached SPE's queue.", _READ_ALL)
        waiting = queued[0]
        h.clock.advance(minutes=10)
        for opp in (released, waiting):
            delete(opp.external_id(crm))
        h.clock.advance(minutes=10)
        sync.run()
        for opp in (released, waiting):
            now = engine.opportunity(opp.id).status
            require(
                now is OpportunityStatus.WITHDRAWN,
                f"the CRM record {opp.external_id(crm)!r} was deleted while SPE held it "
                f"{opp.status.value}; after a sync it is still {now.value} in SPE.",
                "read(stream, since) also returns records deleted at or after since (from "
                "the CRM's recycle bin or deleted-records endpoint), and to_inbound maps "
                "them with Inbound(value, deleted=True).",
            )
        others = [o for o in engine.store.opportunities() if o.id not in (released.id, waiting.id)]
        require(
            all(o.status is OpportunityStatus.QUEUED for o in others),
            "deleting two records also changed others: "
            f"{[(o.id, o.status.value) for o in others]}.",
            "only the deleted records are read with deleted=True.",
        )

    def test_an_unknown_status_is_passed_through(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, _, _ = rig
        add = _capability(h, "add_with_status", "a record with any SPE status value")
        crm_id = add("acct-odd", UNKNOWN_STATUS)
        h.clock.advance(minutes=10)
        found = [r for r in _read_all(h.adapter, "opportunities", None) if r.crm_id == crm_id]
        require(
            bool(found),
            f"read('opportunities', None) did not return the record {crm_id!r} whose status "
            f"is {UNKNOWN_STATUS!r}.",
            "read returns every record of the stream, whatever its field values; mapping "
            "decides, and the sync after it.",
        )
        record = found[-1]
        try:
            status = h.adapter.to_inbound(record).crm_status
        except MappingError as exc:
            status = f"MappingError: {exc}"
        require(
            status == UNKNOWN_STATUS,
            f"a record whose SPE status field holds {UNKNOWN_STATUS!r} was mapped with "
            f"crm_status={status!r}.",
            "to_inbound passes the status it does not know through unchanged in "
            "Inbound.crm_status: the sync decides (it warns and quarantines the record), "
            "the adapter translates only.",
        )

    def test_owner_and_status_go_out_exactly(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, ben, _ = self._seed(h, 30)
        self._bring_in(engine, sync)
        crm = h.adapter.name
        a, b = self._member_id(engine, ana, crm), self._member_id(engine, ben, crm)
        for opp in engine.pull(a, 5).released[:2]:
            engine.resolve(opp.id, a, "appointment_set")
        engine.pull(b, 4)
        sync.run()
        for opp in engine.store.opportunities():
            crm_id = opp.external_id(crm)
            require(
                crm_id is not None,
                f"opportunity {opp.id} has no CRM id under {crm!r} after the sync.",
                _EXTERNAL_IDS,
            )
            back = h.read_back(crm_id or "")
            expected_status = opp.outcome.value if opp.outcome else opp.status.value
            require(
                back["status"] == expected_status,
                f"SPE holds opportunity {opp.id} (CRM record {crm_id}) {expected_status}, "
                f"but after the sync the CRM record reads {back!r}.",
                "write(changes) sets the record's SPE status field to Change.data['status'] "
                "and answers ok only once the CRM has stored it.",
            )
            if opp.status is OpportunityStatus.RELEASED or opp.outcome is not None:
                owner = engine.member(opp.owner_id or "").external_id(crm)
                require(
                    back["owner"] == owner,
                    f"opportunity {opp.id} is released to the CRM user {owner!r}, but the "
                    f"CRM record's owner is {back['owner']!r}.",
                    "write(changes) sets the record's owner to Change.data['owner'] (a CRM "
                    "user id; None clears it).",
                )
        again = sync.run()
        require(
            (again.applied, again.written, again.conflicts) == (0, 0, 0),
            f"a second sync with nothing changed applied {again.applied}, wrote "
            f"{again.written} and found {again.conflicts} conflicts.",
            "records SPE wrote read back as SPE wrote them (status and owner), so a rerun "
            "changes nothing.",
        )

    def test_transient_failures_are_retried(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, _, _ = self._seed(h, 8)
        self._bring_in(engine, sync)
        engine.pull(self._member_id(engine, ana, h.adapter.name), 8)
        h.fail_next_writes(2)
        report = sync.run()
        require(
            report.retried >= 2 and report.written == 8 and report.pending == 0,
            f"with the next 2 write calls failing transiently, the sync retried "
            f"{report.retried} times, wrote {report.written} of 8 and left "
            f"{report.pending} pending.",
            "write() raises TransientError (with retry_after when the CRM says) for a "
            "rate limit, a 5xx or a timeout of the whole call, never returns failed "
            "results for it nor raises anything else.",
        )

    def test_a_bad_record_is_quarantined_and_the_rest_syncs(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        self._seed(h, 5)
        bad = h.add_malformed()
        h.clock.advance(minutes=10)
        report = sync.run()
        quarantined = [(q.key, q.reason) for q in sync.quarantined()]
        require(
            _stream(report, "opportunities").quarantined == 1
            and engine.queue_status().backlog == 5
            and [k for k, _ in quarantined] == [bad]
            and all(reason for _, reason in quarantined),
            f"with 5 good records and the malformed record {bad!r}, the sync quarantined "
            f"{quarantined} and brought {engine.queue_status().backlog} into the backlog.",
            "to_inbound raises MappingError(problem, fix) for a record it cannot map (and "
            "only for it), so the sync quarantines that record with the reason and goes on.",
        )

    def test_a_permanently_failing_write_is_quarantined(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, _, _ = self._seed(h, 4)
        self._bring_in(engine, sync)
        member = self._member_id(engine, ana, h.adapter.name)
        pulled = engine.pull(member, 4).released
        victim = pulled[0].external_id(h.adapter.name)
        require(victim is not None, f"opportunity {pulled[0].id} has no CRM id.", _EXTERNAL_IDS)
        h.fail_record(victim or "")
        for _ in range(4):
            sync.run()
            h.clock.advance(minutes=10)
        outbound = [q.key for q in sync.quarantined() if q.direction == "outbound"]
        require(
            outbound == [pulled[0].id],
            f"with every write to the record {victim!r} refused by the CRM, the sync "
            f"quarantined the outbound changes {outbound}, not [{pulled[0].id!r}].",
            "write(changes) returns one WriteResult per change, in order: ok=False with "
            "the CRM's error (retryable=False) for the refused record, ok=True for the "
            "others of the batch; it does not raise for one record's failure.",
        )
        for opp in pulled[1:]:
            crm_id = opp.external_id(h.adapter.name) or ""
            back = h.read_back(crm_id)
            require(
                back["status"] == "released",
                f"opportunity {opp.id} shared a batch with a refused record; its CRM "
                f"record reads {back!r}, not released.",
                "the other changes of a batch land although one record is refused.",
            )

    def test_a_hand_edited_owner_is_a_conflict_the_crm_wins(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, ben, _ = self._seed(h, 3)
        self._bring_in(engine, sync)
        opp = _pull_one(engine, self._member_id(engine, ana, h.adapter.name))
        sync.run()
        crm_id = opp.external_id(h.adapter.name) or ""
        h.clock.advance(minutes=20)
        h.edit_owner(crm_id, ben)
        h.clock.advance(minutes=10)
        report = sync.run()
        status = engine.opportunity(opp.id).status
        require(
            report.conflicts == 1 and status is OpportunityStatus.WITHDRAWN,
            f"a person moved record {crm_id!r} from {ana!r} to {ben!r} in the CRM; the sync "
            f"found {report.conflicts} conflicts and the opportunity is {status.value}.",
            "read() returns the edited record (its replication key changes on every edit) "
            "and to_inbound reports the CRM's owner id in Inbound.crm_owner.",
        )
        owner = h.read_back(crm_id)["owner"]
        require(
            owner == ben,
            f"after the conflict the CRM record's owner is {owner!r}, not the person's "
            f"choice {ben!r}.",
            "the CRM wins a conflict: nothing overwrites a person's edit.",
        )

    def test_reruns_never_duplicate_records(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, _, _ = self._seed(h, 6)
        before = h.record_count()
        for _ in range(3):
            sync.run()
            h.clock.advance(minutes=10)
        engine.replenish()
        engine.pull(self._member_id(engine, ana, h.adapter.name), 3)
        for _ in range(3):
            sync.run()
            h.clock.advance(minutes=10)
        after = h.record_count()
        require(
            after == before,
            f"the CRM held {before} opportunity records; after six syncs it holds {after}.",
            "write(changes) updates the record with Change.crm_id (or the one whose "
            "idempotency field holds Change.key) and creates a record only when neither "
            "exists: writes are upserts, so reruns never duplicate.",
        )
