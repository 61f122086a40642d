"""The plugin system: every hook documented and tested, blocking, fail-fast."""

from __future__ import annotations

import ast
import inspect
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from spe_core import hookimpl, hookspecs
from spe_core.errors import ConfigError
from spe_core.model import Opportunity
from spe_core.plugins import Plugins

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("spe_"))


def _signature(name: str) -> str:
    fn = getattr(hookspecs, name)
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_exact_signature(name: str) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert f"\n## {name}\n" in docs, f"docs/plugins.md has no '## {name}' section"
    section = docs.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
    assert _signature(name) in section, f"the signature of {name} in docs/plugins.md is stale"
    assert getattr(hookspecs, name).__doc__, f"{name} has no docstring"


META_TESTS = {"test_hook_is_documented_with_its_exact_signature", "test_hook_has_a_test_of_its_own"}


def _test_sources() -> list[str]:
    out = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and (
                node.name.startswith(("test_", "Test")) and node.name not in META_TESTS
            ):
                out.append(ast.get_source_segment(text, node) or "")
    return out


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test_of_its_own(name: str) -> None:
    assert any(re.search(rf"\b{name}\b", src) for src in _test_sources()), (
        f"no test function or class exercises {name}"
    )


def test_a_misspelt_hook_fails_at_start() -> None:
    class Typo:
        @hookimpl
        def spe_scor_opportunity(self, opportunity: Opportunity, now: datetime) -> float:
            return 1.0

    with pytest.raises(Exception, match="spe_scor_opportunity"):
        Plugins.create([Typo()], entry_points=False)


def test_blocking_by_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPE_BLOCK_PLUGINS", "spe.defaults, nothing")
    plugins = Plugins.create(entry_points=False)
    assert "spe.defaults" not in plugins.names()
    assert plugins.manager.is_blocked("nothing")
    monkeypatch.delenv("SPE_BLOCK_PLUGINS")
    assert "spe.defaults" in Plugins.create(entry_points=False).names()


def test_adapter_registration_through_the_callback() -> None:
    class FakeCrmAdapter:
        pass

    class Registrar:
        @hookimpl
        def spe_register_adapters(self, register: Any) -> None:
            register("fakecrm", FakeCrmAdapter)

    class Clash:
        @hookimpl
        def spe_register_adapters(self, register: Any) -> None:
            register("fakecrm", object)

    plugins = Plugins.create([Registrar()], entry_points=False)
    assert plugins.adapters()["fakecrm"] is FakeCrmAdapter
    plugins.register(Clash())
    with pytest.raises(ConfigError, match="two plugins register an adapter named 'fakecrm'"):
        plugins.adapters()


def test_the_default_score_is_the_opportunitys_own() -> None:
    from datetime import UTC

    now = datetime(2026, 1, 5, tzinfo=UTC)
    opp = Opportunity("o", "a", now, score=7)
    assert Plugins.create(entry_points=False).score(opp, now) == 7.0


def test_spe_score_opportunities_scores_a_page_in_one_call() -> None:
    from datetime import UTC

    now = datetime(2026, 1, 5, tzinfo=UTC)
    page = [Opportunity(f"o{i}", "a", now, score=i) for i in range(4)]
    calls: list[int] = []

    class Batch:
        @hookimpl
        def spe_score_opportunities(
            self, opportunities: list[Opportunity], now: datetime
        ) -> list[float | None]:
            calls.append(len(opportunities))
            # the last place is left to the per-item hook (the default: its own score)
            return [o.score * 10 for o in opportunities[:-1]] + [None]

    plugins = Plugins.create([Batch()], entry_points=False)
    assert plugins.scores(page, now) == [0.0, 10.0, 20.0, 3.0]
    assert calls == [4]


def test_without_a_batch_plugin_each_opportunity_is_asked_of_the_per_item_hook() -> None:
    from datetime import UTC

    now = datetime(2026, 1, 5, tzinfo=UTC)
    page = [Opportunity(f"o{i}", "a", now, score=i) for i in range(3)]
    asked: list[str] = []

    class One:
        @hookimpl
        def spe_score_opportunity(self, opportunity: Opportunity, now: datetime) -> float | None:
            asked.append(opportunity.id)
            return None if opportunity.id == "o1" else 100.0

    plugins = Plugins.create([One()], entry_points=False)
    assert plugins.scores(page, now) == [100.0, 1.0, 100.0]
    assert asked == ["o0", "o1", "o2"]
    assert Plugins.create(entry_points=False).scores(page, now) == [0.0, 1.0, 2.0]


def test_a_batch_score_of_the_wrong_length_is_a_config_error() -> None:
    from datetime import UTC

    now = datetime(2026, 1, 5, tzinfo=UTC)

    class Short:
        @hookimpl
        def spe_score_opportunities(
            self, opportunities: list[Opportunity], now: datetime
        ) -> list[float]:
            return [1.0]

    plugins = Plugins.create([Short()], entry_points=False)
    page = [Opportunity("a1", "a", now), Opportunity("a2", "a", now)]
    with pytest.raises(ConfigError, match="one score"):
        plugins.scores(page, now)
