"""The public API: what an integration needs is importable from ``spe_core`` itself."""

from __future__ import annotations

import inspect

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
