"""The public API: what an integration needs is importable from ``spe_core`` itself."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import spe_core
from spe_core import adapter, errors, model


def test_every_exported_name_exists() -> None:
    missing = [name for name in spe_core.__all__ if not hasattr(spe_core, name)]
    assert missing == []


def test_errors_values_and_the_adapter_contract_are_exported() -> None:
    wanted = {
        *errors.__all__,
        *(n for n in model.__all__ if inspect.isclass(getattr(model, n))),
        *adapter.__all__,
        "Engine",
        "SyncEngine",
        "RoutingTable",
        "CalendarRules",
        "MemberSettings",
        "UnitOfWork",
        "FakeClock",
    }
    assert sorted(wanted - set(spe_core.__all__)) == []


# --- spe_core.__all__ and docs/api.md agree -----------------------------------------------------

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def documented() -> set[str]:
    """The spe_core names docs/api.md documents: ``:::`` targets (a module without a
    members list documents its ``__all__``) and the names of members lists."""
    names: set[str] = set()
    lines = API_PAGE.read_text().splitlines()
    for index, line in enumerate(lines):
        target = re.match(r"^::: (spe_core[\w.]*)\s*$", line)
        if target is None:
            continue
        path = target.group(1)
        members = None
        for follow in lines[index + 1 : index + 4]:
            found = re.match(r"^\s+members: \[(.*)\]\s*$", follow)
            if found:
                members = [m.strip() for m in found.group(1).split(",") if m.strip()]
        last = path.rpartition(".")[2]
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError:
            module = None
        if module is None:  # a class or function: spe_core.engine.Engine
            names.add(last)
        elif members is not None:
            names.update(members)
        else:
            names.update(getattr(module, "__all__", ()))
    return names


def test_every_exported_name_is_documented_in_the_api_page() -> None:
    missing = set(spe_core.__all__) - documented() - {"__version__"}
    assert sorted(missing) == [], "document these in docs/api.md"


def test_every_documented_type_is_exported() -> None:
    # rule functions stay in their modules (from spe_core.queue import pull_allowance);
    # every documented class, enum and error is importable from spe_core itself
    # (the inbound rules the sync applies, Action and Decision, stay in spe_core.inbound)
    types = {
        name
        for name in documented()
        if name[:1].isupper() and not name.isupper()
    } - {"Upcaster", "Action", "Decision"}
    assert sorted(types - set(spe_core.__all__)) == [], "export these from spe_core"
