"""Example third-party adapter: a CRM kept as a folder of CSV files.

The folder holds ``users.csv`` (id, name, role, modified) and
``opportunities.csv`` (id, key, account, tier, score, status, owner, locked,
modified). A file ``busy`` holding a number N makes the next N writes fail
transiently, as when another program holds the files. A record with
``locked = yes`` refuses writes, as a record under approval does in a CRM.

It is complete on purpose: streams with a replication key, mapping with
``MappingError`` for bad rows, per-record write results, transient errors,
and registration through the ``spe_register_adapters`` hook. Enable it with::

    [adapter]
    name = "csv"
    [adapter.csv]
    folder = "crm"
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from spe_core.adapter import Change, ChangeKind, Inbound, SourceRecord, StreamSpec, WriteResult
from spe_core.errors import ConfigError, MappingError, SpeError, TransientError
from spe_core.model import Member, Opportunity, Role

__all__ = ["OPPORTUNITY_COLUMNS", "USER_COLUMNS", "CsvAdapter"]

USER_COLUMNS = ("id", "name", "role", "modified")
OPPORTUNITY_COLUMNS = (
    "id",
    "key",
    "account",
    "tier",
    "score",
    "status",
    "owner",
    "locked",
    "modified",
)


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every row of a CSV file (none when it does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, columns: Sequence[str], rows: list[dict[str, str]]) -> None:
    """Replace a CSV file atomically."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


class CsvAdapter:
    """SPE adapter over a folder of CSV files (registered as ``csv``)."""

    name: ClassVar[str] = "csv"
    batch_size = 50

    def __init__(
        self, folder: str | Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError(
                f"[adapter.csv] folder {str(self.folder)!r} does not exist.",
                "create it, or point folder at the CRM's export folder.",
            )
        self.clock = clock

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> CsvAdapter:
        """Build from ``[adapter.csv]``: one key, ``folder``."""
        unknown = sorted(set(options) - {"folder"})
        if unknown:
            raise ConfigError(
                f"[adapter.csv] {unknown[0]} is not a known setting.", "the only setting is folder."
            )
        if "folder" not in options:
            raise ConfigError("[adapter.csv] needs folder.", 'set folder = "path/to/crm".')
        return cls(str(options["folder"]))

    def streams(self) -> Sequence[StreamSpec]:
        return (StreamSpec("members", "modified"), StreamSpec("opportunities", "modified"))

    def read(self, stream: str, since: datetime | None) -> Iterator[list[SourceRecord]]:
        name = "users.csv" if stream == "members" else "opportunities.csv"
        records = []
        for row in read_rows(self.folder / name):
            try:
                modified = datetime.fromisoformat(row["modified"])
            except (KeyError, ValueError):
                modified = self.clock()  # the mapping step quarantines it
                row = {**row, "modified_error": "yes"}
            if since is None or modified >= since:
                records.append(SourceRecord(stream, row["id"], modified, row))
        records.sort(key=lambda r: (r.modified_at, r.crm_id))
        for start in range(0, len(records), 100):
            yield records[start : start + 100]

    def to_inbound(self, record: SourceRecord) -> Inbound:
        row = record.data
        if row.get("modified_error"):
            raise MappingError(
                f"row {record.crm_id} has no valid modified time.",
                "write modified as an ISO-8601 time with an offset.",
            )
        if record.stream != "members" and not row.get("account"):
            raise MappingError(
                f"opportunity row {record.crm_id} has no account.", "fill the account column."
            )
        try:
            if record.stream == "members":
                return Inbound(
                    Member(
                        row["id"],
                        row["name"],
                        Role.parse(row["role"]),
                        external_ids={self.name: row["id"]},
                    )
                )
            opp = Opportunity(
                id=row.get("key") or f"csv-{row['id']}",
                account_id=row["account"],
                queued_at=record.modified_at,
                tier=int(row.get("tier") or 0),
                score=float(row.get("score") or 0),
                external_ids={self.name: row["id"]},
            )
        except SpeError as exc:  # a value the library refused: keep its one problem and fix
            raise MappingError(
                f"row {record.crm_id} of {record.stream}: {exc.problem}",
                exc.fix or "correct the row in the CSV file.",
            ) from None
        except KeyError as exc:
            raise MappingError(
                f"row {record.crm_id} of {record.stream} has no {exc} column.",
                "write the file with every column.",
            ) from None
        except ValueError as exc:  # a tier or score that is not a number
            raise MappingError(
                f"row {record.crm_id} of {record.stream}: {exc}.",
                "correct the row in the CSV file.",
            ) from None
        return Inbound(
            opp, crm_owner=row.get("owner") or None, crm_status=row.get("status") or None
        )

    def _busy(self) -> None:
        busy = self.folder / "busy"
        if busy.exists():
            left = int(busy.read_text() or "0")
            if left > 0:
                busy.write_text(str(left - 1))
                raise TransientError(
                    "another program holds the CSV files.",
                    "the sync retries shortly.",
                    retry_after=1.0,
                )

    def write(self, changes: Sequence[Change]) -> Sequence[WriteResult]:
        self._busy()
        path = self.folder / "opportunities.csv"
        rows = read_rows(path)
        by_key = {r["key"]: r for r in rows if r.get("key")}
        by_id = {r["id"]: r for r in rows}
        now = self.clock().isoformat()
        results = []
        for change in changes:
            if change.kind is not ChangeKind.OPPORTUNITY:
                results.append(WriteResult(change.key, False, error="only opportunities"))
                continue
            row = by_key.get(change.key) or by_id.get(change.crm_id or "")
            if row is None:
                row = dict.fromkeys(OPPORTUNITY_COLUMNS, "")
                row["id"] = f"csv{len(rows) + 1:05d}"
                rows.append(row)
                by_id[row["id"]] = row
            if row.get("locked") == "yes":
                results.append(
                    WriteResult(
                        change.key,
                        False,
                        crm_id=row["id"],
                        error="RECORD_LOCKED: the record is locked",
                    )
                )
                continue
            values = change.data
            row["key"] = change.key
            by_key[change.key] = row
            if "status" in values:
                row["status"] = str(values["status"])
            if "owner" in values:
                row["owner"] = values["owner"] or ""
            if "account_id" in values:
                row["account"] = str(values["account_id"])
            row["modified"] = now
            results.append(WriteResult(change.key, True, crm_id=row["id"]))
        write_rows(path, OPPORTUNITY_COLUMNS, rows)
        return results

    def close(self) -> None:
        return None
