"""The package layout holds: the core never imports the adapters or the demo; the fake
clock lives beside the system clock and the test kit re-exports it."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import spe_core
from spe_core.errors import InvalidValue

CORE = Path(spe_core.__file__).resolve().parent
OUTSIDE = ("spe_adapters", "spe_demo")

# The only places the core reaches outside itself: two `spe` commands, lazily, when run.
ALLOWED = {("cli.py", "emulator"), ("cli.py", "demo")}


def _outside(name: str) -> bool:
    return name.split(".")[0] in OUTSIDE


def _named(node: ast.expr) -> str:
    """The module a dynamic import names: a literal, or an f-string's leading literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return ""


def _imports_outside(tree: ast.AST) -> list[tuple[str, int]]:
    """(enclosing function or <module>, line) of every import of spe_adapters / spe_demo."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name if scope == "<module>" else scope
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            elif isinstance(child, ast.Call) and child.args:
                func = child.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("import_module", "__import__"):
                    names = [_named(child.args[0])]
            if any(_outside(n) for n in names):
                found.append((scope, getattr(child, "lineno", 0)))
            visit(child, inner)

    visit(tree, "<module>")
    return found


def test_the_core_imports_neither_the_adapters_nor_the_demo_except_two_commands() -> None:
    seen: dict[tuple[str, str], int] = {}
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for scope, line in _imports_outside(tree):
            seen[(path.relative_to(CORE).as_posix(), scope)] = line
    module_level = {where: line for where, line in seen.items() if where[1] == "<module>"}
    assert not module_level, f"spe_core imports {OUTSIDE} at import time: {module_level}"
    assert set(seen) <= ALLOWED, f"new imports of {OUTSIDE} in spe_core: {set(seen) - ALLOWED}"


def test_importing_every_core_module_loads_neither_the_adapters_nor_the_demo() -> None:
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import spe_core\n"
        "names = [m.name for m in pkgutil.walk_packages(spe_core.__path__, 'spe_core.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        f"outside = sorted(m for m in sys.modules if m.split('.')[0] in {OUTSIDE!r})\n"
        "print(json.dumps({'imported': names, 'outside': outside}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(CORE.parent)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert "spe_core.cli" in answer["imported"]
    assert "spe_core.testing.store_suite" in answer["imported"]
    assert answer["outside"] == []


def test_the_fake_clock_sits_beside_the_system_clock() -> None:
    from spe_core import clock, testing

    assert testing.FakeClock is clock.FakeClock
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    fake = clock.FakeClock(start)
    assert isinstance(fake, clock.Clock)
    assert fake.advance(minutes=90) == start + timedelta(minutes=90)
    with pytest.raises(InvalidValue, match=r"FakeClock\.advance step .* negative") as caught:
        fake.advance(timedelta(seconds=-1))
    assert "set(when)" in str(caught.value)
    assert fake.now() == start + timedelta(minutes=90)
    with pytest.raises(InvalidValue, match="no time zone"):
        fake.set(datetime(2026, 3, 29, 1, 0))
