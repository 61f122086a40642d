"""An in-memory CRM and its adapter: the reference for the adapter contract suite.

``DictCrm`` holds users and opportunity records in dicts with a modification
clock, and can be told to fail (a transient error on the next calls, or a
per-record failure for chosen keys). Deleted records go to a recycle bin the
adapter reads, as Salesforce's ``queryAll`` does. ``DictCrmAdapter`` implements
:class:`~spe_core.adapter.Adapter` over it exactly as a real adapter does over
HTTP, so the sync engine's behaviour can be pinned down without a network,
and the contract suite has a reference implementation to pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

import attrs

from spe_core.adapter import Change, ChangeKind, Inbound, SourceRecord, StreamSpec, WriteResult
from spe_core.errors import BatchRejected, CrmUnreachable, MappingError, TransientError
from spe_core.model import Member, Opportunity, Role

__all__ = ["DictCrm", "DictCrmAdapter"]


@attrs.define
class DictCrm:
    """A tiny CRM: users and opportunity records with SPE fields."""

    clock: Any
    users: dict[str, dict[str, Any]] = attrs.Factory(dict)
    records: dict[str, dict[str, Any]] = attrs.Factory(dict)
    recycle_bin: dict[str, dict[str, Any]] = attrs.Factory(dict)
    transient_failures: int = 0
    failing_keys: dict[str, bool] = attrs.Factory(dict)  # SPE key or CRM id -> retryable
    rejecting_keys: set[str] = attrs.Factory(set)
    """SPE keys whose presence makes the CRM refuse the whole batch, writing nothing
    (as HubSpot's batch update does for one invalid input)."""
    retry_after: float = 2.0
    """The ``retry_after`` of the transient failures."""
    unreachable: bool = False
    """Every call fails as if the connection were refused."""
    calls: int = 0
    _ids: Iterator[int] = attrs.Factory(lambda: itertools.count(1))

    def _stamp(self) -> datetime:
        now: datetime = self.clock.now()
        return now

    def add_user(self, crm_id: str, name: str, role: str) -> None:
        """Add a user with an SPE role."""
        self.users[crm_id] = {"Id": crm_id, "Name": name, "Role": role, "Modified": self._stamp()}

    def add_record(self, **fields: Any) -> str:
        """Create an opportunity record; returns its CRM id."""
        crm_id = f"R{next(self._ids):06d}"
        self.records[crm_id] = {"Id": crm_id, "Modified": self._stamp(), **fields}
        return crm_id

    def edit(self, crm_id: str, **fields: Any) -> None:
        """A person edits a record in the CRM's UI."""
        self.records[crm_id].update(fields, Modified=self._stamp())

    def delete(self, crm_id: str) -> None:
        """A person deletes a record: it moves to the recycle bin, marked ``IsDeleted``."""
        record = self.records.pop(crm_id)
        self.recycle_bin[crm_id] = {**record, "IsDeleted": True, "Modified": self._stamp()}

    def by_key(self, key: str) -> dict[str, Any] | None:
        """The record whose SPE key is ``key``."""
        return next((r for r in self.records.values() if r.get("Key") == key), None)


class DictCrmAdapter:
    """The adapter over a :class:`DictCrm`."""

    name: ClassVar[str] = "dictcrm"
    batch_size = 5

    def __init__(self, crm: DictCrm) -> None:
        self.crm = crm

    def streams(self) -> Sequence[StreamSpec]:
        return (StreamSpec("members", "Modified"), StreamSpec("opportunities", "Modified"))

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        self.crm.calls += 1
        if self.crm.unreachable:
            raise CrmUnreachable("the CRM refused the connection.", "start it.")
        if stream == "members":
            source = list(self.crm.users.values())
        else:
            source = [*self.crm.records.values(), *self.crm.recycle_bin.values()]
        rows = sorted(
            (r for r in source if since is None or r["Modified"] >= since),
            key=lambda r: (r["Modified"], r["Id"]),
        )
        for start in range(0, len(rows), 3):
            yield [SourceRecord(stream, r["Id"], r["Modified"], r) for r in rows[start : start + 3]]

    def to_inbound(self, record: SourceRecord) -> Inbound:
        data = record.data
        if record.stream == "members":
            member = Member(
                f"u-{record.crm_id}",
                data["Name"],
                Role.parse(data["Role"]),
                external_ids={self.name: record.crm_id},
            )
            return Inbound(member)
        if not data.get("Account"):
            raise MappingError(
                f"record {record.crm_id} has no Account.", "fill the Account field in the CRM."
            )
        opp = Opportunity(
            id=data.get("Key") or f"dc-{record.crm_id}",
            account_id=data["Account"],
            queued_at=record.modified_at,
            tier=int(data.get("Tier", 0)),
            score=float(data.get("Score", 0)),
            external_ids={self.name: record.crm_id},
        )
        return Inbound(
            opp,
            crm_owner=data.get("Owner"),
            crm_status=data.get("Status"),
            deleted=bool(data.get("IsDeleted")),
        )

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        self.crm.calls += 1
        if self.crm.unreachable:
            raise CrmUnreachable("the CRM refused the connection.", "start it.")
        if self.crm.transient_failures > 0:
            self.crm.transient_failures -= 1
            raise TransientError(
                "the CRM is busy (503).", "retry later.", retry_after=self.crm.retry_after
            )
        bad = sorted(c.key for c in changes if c.key in self.crm.rejecting_keys)
        if bad:
            raise BatchRejected(
                f"the CRM refused a batch of {len(changes)} (nothing written).",
                "the sync isolates the bad inputs.",
                detail=f"INVALID_VALUE in {', '.join(bad)}",
            )
        results = []
        for change in changes:
            failing = self.crm.failing_keys
            if change.key in failing or (change.crm_id or "") in failing:
                retryable = failing.get(change.key, failing.get(change.crm_id or "", False))
                results.append(
                    WriteResult(
                        change.key,
                        False,
                        error="UNABLE_TO_LOCK_ROW" if retryable else "FIELD_CUSTOM_VALIDATION",
                        retryable=retryable,
                    )
                )
                continue
            if change.kind is not ChangeKind.OPPORTUNITY:  # it holds opportunities only
                results.append(
                    WriteResult(change.key, False, error="UNSUPPORTED_KIND", retryable=False)
                )
                continue
            record = self.crm.by_key(change.key)
            if record is None and change.crm_id is not None:
                record = self.crm.records.get(change.crm_id)
            if record is None:
                crm_id = self.crm.add_record(Key=change.key)
                record = self.crm.records[crm_id]
            values = change.data
            fields: dict[str, Any] = {"Key": change.key}
            if "status" in values:
                fields["Status"] = values["status"]
            if "owner" in values:
                fields["Owner"] = values["owner"]
            for name, field in (("account_id", "Account"), ("tier", "Tier"), ("score", "Score")):
                if name in values:  # what describes an opportunity created in SPE
                    fields[field] = values[name]
            record.update(fields, Modified=self.crm.clock.now())
            results.append(WriteResult(change.key, True, crm_id=record["Id"]))
        return results

    def close(self) -> None:
        return None
