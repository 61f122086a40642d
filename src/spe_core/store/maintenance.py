"""Operator checks on a store: integrity, schema version, counts, and whether the event
log is gap-free and equal to the state; and online backups (``spe store check``,
``spe store backup``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from spe_core.errors import StoreError
from spe_core.events import replay, replay_bookings, replay_tasks
from spe_core.store.base import Store

__all__ = ["backup", "check"]

_TABLES = ("members", "opportunities", "tasks", "bookings", "busy", "outbox", "quarantine")


def _kind(store: Store) -> str:
    from spe_core.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return "sqlite"
    if store.url.startswith("memory"):
        return "memory"
    return "postgresql"


def check(store: Store) -> dict[str, Any]:
    """What ``spe store check`` reports. ``ok`` is False when any part fails; every
    problem comes with its fix in ``problems``."""
    kind = _kind(store)
    report: dict[str, Any] = {"store": store.url, "kind": kind, "problems": []}
    problems: list[dict[str, str]] = report["problems"]
    rows: dict[str, int] = {}
    if kind == "sqlite":
        from spe_core.store.sqlite import SCHEMA_VERSION, SQLiteStore

        assert isinstance(store, SQLiteStore)
        found = [str(r[0]) for r in store._read("PRAGMA integrity_check(20)", ())]
        report["integrity"] = "ok" if found == ["ok"] else "; ".join(found)
        if found != ["ok"]:
            problems.append(
                {
                    "problem": f"the integrity check found: {'; '.join(found)[:500]}",
                    "fix": "restore the last backup, or save what is readable with "
                    f"`sqlite3 {store.path} .recover | sqlite3 recovered.db`.",
                }
            )
        version = int(store._read("PRAGMA user_version", ())[0][0])  # type: ignore[call-overload]
        for table in (*_TABLES, "events"):
            rows[table] = int(store._read(f"SELECT COUNT(*) FROM {table}", ())[0][0])  # type: ignore[call-overload]
        report["schema_version"] = {"found": version, "expected": SCHEMA_VERSION}
    elif kind == "postgresql":
        from spe_core.store.postgres import SCHEMA_VERSION, PostgresStore

        assert isinstance(store, PostgresStore)
        report["integrity"] = "not checked (the server's; use the amcheck extension)"
        found_rows = store._read("SELECT COALESCE(MAX(version), 0) FROM spe_schema_migrations", ())
        version = int(found_rows[0][0])
        for table in (*_TABLES, "events"):
            rows[table] = int(store._read(f"SELECT COUNT(*) FROM {table}", ())[0][0])
        report["schema_version"] = {"found": version, "expected": SCHEMA_VERSION}
        report["bounds"] = store.settings.summary()
    else:
        report["integrity"] = "ok (in memory)"
        report["schema_version"] = {"found": None, "expected": None}
    version_info = report["schema_version"]
    if version_info["found"] != version_info["expected"]:
        problems.append(
            {
                "problem": f"schema version {version_info['found']}, this spe-sdk writes "
                f"{version_info['expected']}",
                "fix": "open the store once with this spe-sdk (it migrates), or upgrade "
                "spe-sdk if the store is newer.",
            }
        )
    seqs: list[int] = []
    recorded = list(store.events())
    seqs = [r.seq for r in recorded]
    gaps = [(a, b) for a, b in zip([0, *seqs], seqs, strict=False) if b != a + 1]
    report["events"] = {"count": len(seqs), "last": seqs[-1] if seqs else 0, "gaps": gaps[:10]}
    if gaps:
        problems.append(
            {
                "problem": f"the event log has {len(gaps)} gap(s), the first after seq "
                f"{gaps[0][0]}",
                "fix": "restore the last backup: events were removed by hand.",
            }
        )
    state = {o.id: o for o in store.opportunities()}
    counts: dict[str, int] = {}
    for opp in state.values():
        counts[opp.status.value] = counts.get(opp.status.value, 0) + 1
    report["opportunities"] = dict(sorted(counts.items()))
    if rows:
        report["rows"] = rows
    rebuilt = replay(recorded)
    differ = sorted(k for k in set(rebuilt) | set(state) if rebuilt.get(k) != state.get(k))
    if rows:
        tasks = replay_tasks(recorded)
        bookings = replay_bookings(recorded)
        if len(tasks) != rows["tasks"]:
            differ.append(f"tasks: {len(tasks)} in the log, {rows['tasks']} stored")
        if len(bookings) != rows["bookings"]:
            differ.append(f"bookings: {len(bookings)} in the log, {rows['bookings']} stored")
    report["log_equals_state"] = not differ
    if differ:
        problems.append(
            {
                "problem": f"the state differs from the event log's replay for {len(differ)} "
                f"record(s), e.g. {', '.join(differ[:5])}",
                "fix": "the store was changed outside spe-sdk; restore the last backup.",
            }
        )
    report["ok"] = not problems
    return report


def backup(store: Store, path: str | Path) -> dict[str, Any]:
    """Copy a SQLite store to ``path`` with SQLite's online backup API (writers may keep
    running), then check the copy. For PostgreSQL, the ``pg_dump`` command to run."""
    kind = _kind(store)
    if kind == "postgresql":
        from spe_core.store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        params = store.settings.params
        where = " ".join(
            f"--{flag}={params[key]}"
            for flag, key in (("host", "host"), ("port", "port"), ("username", "user"))
            if params.get(key)
        )
        command = (
            f"pg_dump {where} --dbname={params.get('dbname', '')} --schema={store.schema} "
            f"--format=custom --file={path}"
        )
        return {"store": store.url, "kind": kind, "command": command, "written": False}
    if kind != "sqlite":
        raise StoreError(
            "a memory store has nothing on disk to back up.",
            "back up a sqlite:/// or postgresql:// store.",
        )
    from spe_core.store.sqlite import SQLiteStore, translate

    assert isinstance(store, SQLiteStore)
    target = Path(path).expanduser()
    if target.exists():
        raise StoreError(
            f"backup target {target} exists already.",
            "name a new file; a backup never overwrites one.",
        )
    if not target.resolve().parent.is_dir():
        raise StoreError(
            f"backup target folder {target.resolve().parent} does not exist.",
            "create it first, or name a file in an existing folder.",
        )
    tmp = target.with_name(target.name + ".partial")
    try:
        dest = sqlite3.connect(tmp)
        try:
            store._reader().backup(dest, pages=1024)
            ok = [str(r[0]) for r in dest.execute("PRAGMA quick_check").fetchall()]
        finally:
            dest.close()
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise translate(exc, str(target), "writing the backup", store.timeout) from exc
    if ok != ["ok"]:
        tmp.unlink(missing_ok=True)
        raise StoreError(
            f"the backup of {store.path} failed its check: {'; '.join(ok)[:300]}.",
            "run `spe store check` on the store first.",
        )
    os.replace(tmp, target)
    return {
        "store": store.url,
        "kind": kind,
        "backup": str(target),
        "bytes": target.stat().st_size,
        "written": True,
    }
