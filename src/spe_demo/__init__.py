"""The demo: a simulated working week of SPE on the embedded SQLite store, kept in
step with a local Salesforce or HubSpot emulator, ending with a summary and the
HTML flow report (``python -m spe_demo``, ``spe demo`` or ``scripts/demo``).

It sits outside :mod:`spe_core` because it drives the CRM emulators of
:mod:`spe_adapters`; the core never imports either package.

- :mod:`spe_demo.demo` — the team, Promotions' leads, a day of pulls, the week
  and its printed summary;
- :mod:`spe_demo.crm` — the demo's CRM: an emulator in this process, seeded for
  SPE, and the real adapter configured against it.
"""

from __future__ import annotations

from spe_demo.demo import (
    MONDAY,
    DayReport,
    demo_team,
    main,
    plan_visits,
    promotions_backlog,
    run_day,
)

__all__ = [
    "MONDAY",
    "DayReport",
    "demo_team",
    "main",
    "plan_visits",
    "promotions_backlog",
    "run_day",
]
