"""A small Pipedrive-like CRM: users, deals, cursor paging and a batch endpoint.

It stands in for the CRM's HTTP API, with that API's habits: integer ids,
``update_time`` as ``"YYYY-MM-DD HH:MM:SS"`` in UTC (whole seconds, so many
records share an instant), list endpoints filtered by ``updated_since``
(inclusive) and paged by an opaque cursor, deleted deals kept with
``status = "deleted"``, custom fields named by key, a batch update endpoint
with one result per item, and ``RateLimited`` when it is busy. Data lives in
memory, or in a JSON file when given a path (read before and written after
every call, so separate processes see one CRM).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["DEAL_FIELDS", "USER_FIELDS", "PipedriveLikeCrm", "RateLimited", "format_time"]

DEAL_FIELDS = ("spe_status", "spe_key", "spe_tier", "spe_score")
"""The deal custom fields the SPE adapter maps."""
USER_FIELDS = ("spe_role",)
"""The user custom fields the SPE adapter maps."""


class RateLimited(Exception):
    """HTTP 429: try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"429 Too Many Requests (retry after {retry_after}s)")
        self.retry_after = retry_after


def format_time(when: datetime) -> str:
    """The CRM's time format: UTC, whole seconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _empty() -> dict[str, Any]:
    return {
        "users": {},
        "deals": {},
        "next_id": 1,
        "fields": {"deals": list(DEAL_FIELDS), "users": list(USER_FIELDS)},
        "busy_calls": 0,
        "locked": [],
    }


class PipedriveLikeCrm:
    """The CRM. ``clock`` stamps ``update_time``; ``path`` keeps the data in a JSON file."""

    def __init__(
        self,
        path: str | Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = None if path is None else Path(path)
        self.clock = clock
        self.calls = 0
        self.data = _empty()
        if self.path is not None and not self.path.exists():
            self._save()

    # --- persistence ----------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        if self.path is not None:
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
        return self.data

    def _save(self) -> None:
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)

    def _now(self) -> str:
        return format_time(self.clock())

    def _new_id(self, data: dict[str, Any]) -> int:
        new: int = data["next_id"]
        data["next_id"] = new + 1
        return new

    # --- what people do in the CRM's UI ---------------------------------------------

    def add_user(self, name: str, **custom: Any) -> int:
        """A new user; custom fields by key (``spe_role``)."""
        data = self._load()
        uid = self._new_id(data)
        data["users"][str(uid)] = {
            "id": uid,
            "name": name,
            "active_flag": True,
            "update_time": self._now(),
            **custom,
        }
        self._save()
        return uid

    def add_deal(self, title: str, org_name: str | None, **custom: Any) -> int:
        """A new open deal; custom fields by key (``spe_status``, ``spe_tier``, ...)."""
        data = self._load()
        did = self._new_id(data)
        data["deals"][str(did)] = {
            "id": did,
            "title": title,
            "org_name": org_name,
            "user_id": None,
            "status": "open",
            "update_time": self._now(),
            **custom,
        }
        self._save()
        return did

    def update_deal(self, deal_id: int, **fields: Any) -> None:
        """A person edits a deal."""
        data = self._load()
        data["deals"][str(deal_id)].update(fields, update_time=self._now())
        self._save()

    def delete_deal(self, deal_id: int) -> None:
        """A person deletes a deal (it stays readable with ``status = "deleted"``)."""
        self.update_deal(deal_id, status="deleted")

    def deal(self, deal_id: int) -> dict[str, Any]:
        """One deal, as stored."""
        found: dict[str, Any] = self._load()["deals"][str(deal_id)]
        return found

    def deal_count(self) -> int:
        """How many deals the CRM holds (deleted ones included)."""
        return len(self._load()["deals"])

    # --- faults, for tests ----------------------------------------------------------

    def rate_limit_next(self, calls: int) -> None:
        """The next ``calls`` write calls answer 429."""
        data = self._load()
        data["busy_calls"] = calls
        self._save()

    def lock_deal(self, deal_id: int) -> None:
        """The deal is locked (under approval): every update of it fails."""
        data = self._load()
        data["locked"].append(deal_id)
        self._save()

    def drop_field(self, entity: str, key: str) -> None:
        """An admin deletes a custom field."""
        data = self._load()
        data["fields"][entity].remove(key)
        self._save()

    # --- the API ----------------------------------------------------------------------

    def fields(self, entity: str) -> list[str]:
        """``GET /{entity}Fields``: the custom field keys of ``users`` or ``deals``."""
        self.calls += 1
        return list(self._load()["fields"][entity])

    def list_records(
        self, entity: str, updated_since: str | None, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """``GET /{entity}?updated_since=&cursor=&limit=``: items updated at or after
        ``updated_since``, by (update_time, id), deleted deals included; the next
        cursor or None."""
        self.calls += 1
        rows = sorted(
            (
                r
                for r in self._load()[entity].values()
                if updated_since is None or r["update_time"] >= updated_since
            ),
            key=lambda r: (r["update_time"], r["id"]),
        )
        if cursor is not None:
            after_time, _, after_id = cursor.partition("|")
            rows = [r for r in rows if (r["update_time"], r["id"]) > (after_time, int(after_id))]
        page = [dict(r) for r in rows[:limit]]
        more = len(rows) > limit
        return page, (f"{page[-1]['update_time']}|{page[-1]['id']}" if more else None)

    def batch_upsert_deals(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``POST /deals/batch``: each item updates the deal with its ``id``, or the one
        whose ``spe_key`` matches, or creates one; one result per item."""
        self.calls += 1
        data = self._load()
        if data["busy_calls"] > 0:
            data["busy_calls"] -= 1
            self._save()
            raise RateLimited(2.0)
        results: list[dict[str, Any]] = []
        deals = data["deals"]
        for item in items:
            fields = dict(item)
            deal_id = fields.pop("id", None)
            deal = deals.get(str(deal_id)) if deal_id is not None else None
            if deal is None and fields.get("spe_key"):
                deal = next(
                    (d for d in deals.values() if d.get("spe_key") == fields["spe_key"]), None
                )
            if deal is not None and deal["id"] in data["locked"]:
                results.append({"success": False, "error": "DEAL_LOCKED: the deal is locked"})
                continue
            if deal is None:
                new = self._new_id(data)
                deal = {"id": new, "title": fields.get("org_name") or str(new), "status": "open"}
                deals[str(new)] = deal
            deal.update(fields, update_time=self._now())
            results.append({"success": True, "id": deal["id"]})
        self._save()
        return results
