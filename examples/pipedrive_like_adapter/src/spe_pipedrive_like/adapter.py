"""The SPE adapter for the Pipedrive-like CRM, written from docs/adapters.md alone.

Streams ``members`` (users, with the custom field ``spe_role``) and
``opportunities`` (deals, with ``spe_status``, ``spe_key``, ``spe_tier`` and
``spe_score``), both replicated by ``update_time``, read with ``>=`` and paged
by the CRM's cursor. Deleted deals are read as deleted. Enable it with::

    [adapter]
    name = "pipedrive_like"
    [adapter.pipedrive_like]
    file = "crm.json"     # the CRM's data
    page_size = 100       # optional
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from spe_core import (
    Change,
    ChangeKind,
    ConfigError,
    Inbound,
    InvalidValue,
    MappingError,
    Member,
    Opportunity,
    Role,
    SourceRecord,
    StreamSpec,
    TransientError,
    WriteResult,
)
from spe_pipedrive_like.crm import (
    DEAL_FIELDS,
    USER_FIELDS,
    PipedriveLikeCrm,
    RateLimited,
    format_time,
)

__all__ = ["PipedriveLikeAdapter", "status_from_label", "status_to_label"]

_ENTITY = {"members": "users", "opportunities": "deals"}
_SETTINGS = ("file", "page_size")


def status_to_label(status: str) -> str:
    """The CRM's label for an SPE status: ``appointment_set`` -> ``Appointment set``."""
    return status.replace("_", " ").capitalize()


def status_from_label(label: str | None) -> str | None:
    """The SPE status a label stands for; a label SPE does not know comes through
    unchanged in SPE's spelling (the sync decides what it means)."""
    if not label or not label.strip():
        return None
    return label.strip().lower().replace(" ", "_")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _number(record: SourceRecord, data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        raise MappingError(
            f"deal {record.crm_id}: {key} = {value!r} is not a number.",
            f"enter a number in the deal's {key} field.",
        ) from None


class PipedriveLikeAdapter:
    """SPE adapter over a :class:`PipedriveLikeCrm` (registered as ``pipedrive_like``)."""

    name: ClassVar[str] = "pipedrive_like"
    batch_size = 100

    def __init__(self, crm: PipedriveLikeCrm, page_size: int = 100) -> None:
        self.crm = crm
        self.page_size = page_size

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> PipedriveLikeAdapter:
        """Build from ``[adapter.pipedrive_like]``: ``file`` and an optional ``page_size``."""
        unknown = sorted(set(options) - set(_SETTINGS))
        if unknown:
            raise ConfigError(
                f"[adapter.pipedrive_like] {unknown[0]} is not a known setting.",
                f"use only {', '.join(_SETTINGS)}.",
            )
        if "file" not in options:
            raise ConfigError(
                "[adapter.pipedrive_like] needs file.", 'set file = "path/to/crm.json".'
            )
        size = options.get("page_size", 100)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 500:
            raise ConfigError(
                f"[adapter.pipedrive_like] page_size = {size!r} is not a whole number "
                "from 1 to 500.",
                "set page_size = 100 (or leave it out).",
            )
        return cls(PipedriveLikeCrm(str(options["file"])), page_size=size)

    def streams(self) -> Sequence[StreamSpec]:
        return (StreamSpec("members", "update_time"), StreamSpec("opportunities", "update_time"))

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        entity = _ENTITY[stream]
        # the CRM's filter is inclusive: records modified AT since come too (>=)
        updated_since = None if since is None else format_time(since)
        cursor: str | None = None
        while True:
            try:
                rows, cursor = self.crm.list_records(entity, updated_since, cursor, self.page_size)
            except RateLimited as exc:
                raise TransientError(
                    f"the CRM is rate limiting reads of {entity}.",
                    "the sync retries after the CRM's delay.",
                    retry_after=exc.retry_after,
                ) from None
            if rows:
                yield [
                    SourceRecord(stream, str(r["id"]), _parse_time(r["update_time"]), r)
                    for r in rows
                ]
            if cursor is None:
                return

    def to_inbound(self, record: SourceRecord) -> Inbound:
        data = record.data
        try:
            if record.stream == "members":
                return self._member(record, data)
            return self._deal(record, data)
        except InvalidValue as exc:  # one problem, one fix: no wrapping of the whole message
            raise MappingError(
                f"{record.stream} record {record.crm_id}: {exc.problem}", exc.fix
            ) from None

    def _member(self, record: SourceRecord, data: dict[str, Any]) -> Inbound:
        role = data.get("spe_role")
        if not role:
            raise MappingError(
                f"user {record.crm_id} ({data.get('name')}) has no SPE role.",
                "set the user's spe_role field in the CRM.",
            )
        member = Member(
            f"pdl-user-{record.crm_id}",
            str(data.get("name") or record.crm_id),
            Role.parse(str(role)),
            active=bool(data.get("active_flag", True)),
            external_ids={self.name: record.crm_id},
        )
        return Inbound(member, supplies={"name", "role", "active"})

    def _deal(self, record: SourceRecord, data: dict[str, Any]) -> Inbound:
        if not data.get("org_name"):
            raise MappingError(
                f"deal {record.crm_id} has no organization.", "link the deal to an organization."
            )
        opp = Opportunity(
            id=data.get("spe_key") or f"pdl-{record.crm_id}",
            account_id=str(data["org_name"]),
            queued_at=record.modified_at,
            tier=int(_number(record, data, "spe_tier")),
            score=_number(record, data, "spe_score"),
            external_ids={self.name: record.crm_id},
        )
        owner = data.get("user_id")
        return Inbound(
            opp,
            crm_owner=None if owner is None else str(owner),
            crm_status=status_from_label(data.get("spe_status")),
            deleted=data.get("status") == "deleted",
        )

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        items: list[dict[str, Any]] = []
        for change in changes:
            if change.kind is not ChangeKind.OPPORTUNITY:
                continue
            values = change.data
            item: dict[str, Any] = {"spe_key": change.key}
            if change.crm_id is not None:
                item["id"] = int(change.crm_id)
            if "status" in values:
                item["spe_status"] = status_to_label(str(values["status"]))
            if "owner" in values:
                item["user_id"] = None if values["owner"] is None else int(values["owner"])
            if "account_id" in values:
                item["org_name"] = values["account_id"]
            for field in ("tier", "score"):
                if field in values:
                    item[f"spe_{field}"] = values[field]
            items.append(item)
        try:
            answers = iter(self.crm.batch_upsert_deals(items) if items else [])
        except RateLimited as exc:
            raise TransientError(
                "the CRM is rate limiting writes (429).",
                "the sync retries after the CRM's delay.",
                retry_after=exc.retry_after,
            ) from None
        results: list[WriteResult] = []
        for change in changes:
            if change.kind is not ChangeKind.OPPORTUNITY:
                results.append(
                    WriteResult(change.key, False, error=f"this CRM holds no {change.kind.value}s")
                )
                continue
            answer = next(answers)
            if answer["success"]:
                results.append(WriteResult(change.key, True, crm_id=str(answer["id"])))
            else:
                results.append(WriteResult(change.key, False, error=str(answer["error"])))
        return results

    def check(self) -> list[str]:
        """Every custom field the mapping reads or writes exists in the CRM."""
        problems: list[str] = []
        for entity, wanted in (("users", USER_FIELDS), ("deals", DEAL_FIELDS)):
            have = set(self.crm.fields(entity))
            problems += [
                f"{entity}: the custom field {key} does not exist"
                for key in wanted
                if key not in have
            ]
        return problems

    def close(self) -> None:
        return None
