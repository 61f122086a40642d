"""The shared SQL layer renders every statement for each store's dialect."""

from __future__ import annotations

import re

import pytest

from spe_core.store.sql import POSTGRES, SQLITE, SharedTransaction
from spe_core.store.sqlite import _SQLiteTransaction

_NAMES = sorted(n for n in vars(SharedTransaction) if n.startswith("_sql_"))


def _transactions() -> list[type[SharedTransaction]]:
    classes: list[type[SharedTransaction]] = [_SQLiteTransaction]
    try:
        from spe_core.store.postgres import _PgTransaction
    except ImportError:  # pragma: no cover - without the postgres extra
        return classes
    return [*classes, _PgTransaction]


@pytest.mark.parametrize("cls", _transactions(), ids=lambda c: c.__name__)
def test_every_statement_is_rendered_for_the_dialect(cls: type[SharedTransaction]) -> None:
    other = "%s" if cls._dialect is SQLITE else "?"
    for name in _NAMES:
        shared, rendered = getattr(SharedTransaction, name), getattr(cls, name)
        assert "{" not in rendered and "}" not in rendered, name
        assert other not in rendered, name
        assert rendered.count(cls._dialect.param) == shared.count("?"), name


def test_only_postgres_locks_rows() -> None:
    assert SQLITE.render("SELECT 1 FROM t WHERE a = ?{lock}{skip_locked}", "x") == (
        "SELECT 1 FROM t WHERE a = ?"
    )
    assert POSTGRES.render("SELECT {opp} FROM t WHERE a = ?{skip_locked}", "data") == (
        "SELECT data FROM t WHERE a = %s FOR UPDATE SKIP LOCKED"
    )
    assert re.search(r"FOR UPDATE$", POSTGRES.render("SELECT 1{lock}", "x"))


def test_a_transaction_class_names_its_dialect() -> None:
    with pytest.raises(TypeError):
        type("T", (SharedTransaction,), {})
