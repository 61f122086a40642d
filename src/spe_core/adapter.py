"""The adapter contract: what a CRM adapter provides to the sync engine.

An adapter *translates*; it never decides. It declares its streams (members,
opportunities, tasks, busy calendar time) with their replication key, reads
source records changed since a bookmark the sync engine gives it, maps one
record onto an SPE value (or raises :class:`~spe_core.errors.MappingError`),
and writes a batch of :class:`Change` values, returning one
:class:`WriteResult` per change. The sync engine owns bookmarks, the outbox,
retries, backoff and quarantine, so every adapter behaves the same way.

Register an adapter class through the ``spe_register_adapters`` hook.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from spe_core.errors import InvalidValue
from spe_core.model import FrozenMap, aware_field, check_items, shown

__all__ = [
    "Adapter",
    "CheckResult",
    "CheckStatus",
    "Checkable",
    "Change",
    "ChangeKind",
    "Inbound",
    "SourceRecord",
    "StreamSpec",
    "WriteResult",
]


@attrs.frozen
class StreamSpec:
    """One inbound stream: its name, the CRM field it is replicated by, and
    whether the adapter yields it sorted by that field (then the bookmark can
    advance page by page)."""

    name: str
    replication_key: str
    is_sorted: bool = True


def _frozen_mapping(
    value: Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> FrozenMap[str, Any]:
    """A :class:`~spe_core.model.FrozenMap` of ``value`` (a mapping's keys sorted; pairs
    kept in the order given)."""
    if type(value) is FrozenMap:
        return value
    if isinstance(value, Mapping):
        return FrozenMap(sorted(value.items()))
    pairs = check_items(value, tuple, "mapping")
    for pair in pairs:
        if len(pair) != 2:
            raise InvalidValue(
                f"mapping entry {shown(pair)} is not a (name, value) pair.",
                "pass a dict such as {'status': 'released'}.",
            )
    return FrozenMap((str(k), v) for k, v in pairs)


@attrs.frozen
class SourceRecord:
    """A CRM record as read: its stream, CRM id, modification time and raw fields."""

    stream: str
    crm_id: str
    modified_at: datetime = attrs.field(validator=aware_field)
    fields: FrozenMap[str, Any] = attrs.field(converter=_frozen_mapping, repr=False)
    """The raw fields, read-only (``record.fields["Name"]``); give a dict or pairs."""

    @property
    def data(self) -> dict[str, Any]:
        """The raw fields as a new (changeable) dict."""
        return dict(self.fields)


def _optional_names(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class Inbound:
    """A mapped record: the SPE value plus what the CRM says about ownership and status.

    ``crm_owner`` is the CRM id of the record's owner (a user or owner id);
    ``crm_status`` is the SPE status the CRM field holds (``queued``,
    ``released``, an outcome, ...) or None when the field is empty.
    ``supplies`` names the attributes of ``value`` the CRM record holds (a
    User has a name, role and time zone but no skills or sales coordinator):
    the others keep the values SPE already has. None: the record holds them all.
    ``deleted`` says the record was deleted in the CRM (read from its recycle
    bin): an opportunity still open in SPE is withdrawn from the flow, busy
    time is freed.
    """

    value: Any
    crm_owner: str | None = None
    crm_status: str | None = None
    supplies: frozenset[str] | None = attrs.field(default=None, converter=_optional_names)
    deleted: bool = False


class ChangeKind(enum.StrEnum):
    """What an outbound change updates in the CRM."""

    OPPORTUNITY = "opportunity"
    TASK = "task"
    BOOKING = "booking"


@attrs.frozen
class Change:
    """One record to write to the CRM, in SPE's terms.

    ``key`` is the SPE key (the opportunity, task or booking id; the adapter
    writes it to the idempotency field, so writes are upserts); ``crm_id`` the
    CRM record id when known; ``values`` logical field names (``status``,
    ``owner`` as a CRM user id, ``released_at``, ``subject``, ``start``, ...)
    that the adapter's field mapping turns into CRM fields.
    """

    kind: ChangeKind = attrs.field(converter=ChangeKind)
    key: str
    values: FrozenMap[str, Any] = attrs.field(converter=_frozen_mapping)
    """The logical values, read-only (``change.values["status"]``); give a dict or pairs."""
    crm_id: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The logical values as a new (changeable) dict."""
        return dict(self.values)


@attrs.frozen
class WriteResult:
    """The CRM's answer for one change: success (with the record id), or an error.

    ``retryable`` failures (a locked row, a rate limit inside a batch) are
    tried again later; others count towards quarantine.
    """

    key: str
    ok: bool
    crm_id: str | None = None
    error: str | None = None
    retryable: bool = False


@runtime_checkable
class Adapter(Protocol):
    """What the sync engine needs from a CRM adapter."""

    name: ClassVar[str]
    """The adapter's registered name, e.g. ``"salesforce"``; also the key of
    the CRM's record ids in ``external_ids``."""

    batch_size: int
    """The largest batch the CRM's write endpoint takes (Salesforce 200, HubSpot 100)."""

    def streams(self) -> Sequence[StreamSpec]:
        """The inbound streams this adapter reads, in the order they should be synced."""
        ...

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        """Pages of records of ``stream`` modified at or after ``since`` (None: all).

        Within a sorted stream, pages come in replication-key order. An adapter whose
        class sets ``reads_in_thread = True`` lets the sync engine iterate this in a
        reader thread, a page ahead of the one it applies (``SyncSettings.read_ahead``),
        while :meth:`to_inbound` runs in the caller's thread: set it only when ``read``
        uses nothing bound to the calling thread (a sqlite3 connection, say) and
        ``to_inbound`` no state that ``read`` changes. Without it, pages are read in the
        caller's thread, one at a time.
        """
        ...

    def to_inbound(self, record: SourceRecord) -> Inbound:
        """Map one source record onto an SPE value, or raise ``MappingError``."""
        ...

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        """Write up to ``batch_size`` changes; one result per change, in order.

        Raise :class:`~spe_core.errors.TransientError` when the whole call may
        succeed later (rate limit, 5xx, timeout), ``AdapterError`` when it
        never will.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class CheckStatus(enum.StrEnum):
    """The outcome of one part of an adapter's :meth:`Checkable.check`."""

    OK = "ok"
    PROBLEM = "problem"
    NOT_CHECKED = "not checked"
    """The part could not be checked (an earlier part failed, e.g. the login):
    never reported as success."""


@attrs.frozen
class CheckResult:
    """One part of a CRM connection check, with the fix when it is a problem.

    ``part`` names what was checked, e.g. ``"login"``, ``"time zone"``,
    ``"field Opportunity.SPE_Status__c"``, ``"scope crm.objects.deals.write"``,
    ``"API usage"``; ``detail`` says what was found, in one line.
    """

    part: str
    status: CheckStatus = attrs.field(converter=CheckStatus)
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        """True only for a part that was checked and found right."""
        return self.status is CheckStatus.OK


@runtime_checkable
class Checkable(Protocol):
    """An adapter that can check its connection and mapping against the real CRM.

    ``spe check`` calls it; an adapter without it is reported as "not checked".
    """

    def check(self) -> Sequence[CheckResult]:
        """Log in, read what the mapping needs (fields, types, scopes, time zone) and
        return one result per part checked, in order.

        Never raises for a problem it can describe: a refused login, an unreachable
        host, a bad certificate or a missing field each become a ``PROBLEM`` result
        with its fix (``CrmUnreachable``, ``AuthenticationFailed`` and
        ``CertificateProblem`` from :mod:`spe_core.errors` say which), and the parts
        that could not be reached after it are ``NOT_CHECKED``.
        """
        ...
