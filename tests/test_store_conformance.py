"""The shipped store conformance suite, run on the embedded stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.store.memory import MemoryStore
from spe_core.store.sqlite import SQLiteStore
from spe_core.testing.store_suite import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        s = MemoryStore()
        yield s
        s.close()


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = SQLiteStore(tmp_path / "spe.db")
        yield s
        s.close()


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory:"), MemoryStore)
    s = open_store(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(s, SQLiteStore)
    assert s.path == f"{tmp_path}/a.db"
    s.close()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://x", "unknown store URL scheme 'mysql'"),
        ("sqlite://", "names no file"),
        ("sqlite:////no/such/dir/x.db", "does not exist"),
    ],
)
def test_bad_store_urls_say_what_to_do(url: str, words: str) -> None:
    from spe_core.errors import StoreError

    with pytest.raises(StoreError, match=words) as info:
        open_store(url)
    assert "Fix:" in str(info.value)


def test_sqlite_reopen_keeps_state_and_schema(tmp_path: Path) -> None:
    from spe_core.model import Member

    path = tmp_path / "spe.db"
    s = SQLiteStore(path)
    with s.transaction() as tx:
        tx.put_member(Member("m1", "Ann", "inside_sales"))
    s.close()
    s = SQLiteStore(path)
    with s.transaction() as tx:
        assert tx.get_member("m1") is not None
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    import sqlite3

    from spe_core.errors import StoreError

    path = tmp_path / "spe.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=999")
    conn.close()
    with pytest.raises(StoreError, match="newer than"):
        SQLiteStore(path)
