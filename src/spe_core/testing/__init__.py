"""The public test kit: prove a store, an adapter or a plugin the way we do.

- :class:`FakeClock` — time that moves only when told;
- :class:`~spe_core.testing.store_suite.StoreConformance` — the store contract
  suite (subclass it, provide a ``store`` fixture);
- :func:`~spe_core.testing.stateful.queue_machine` and
  :func:`~spe_core.testing.stateful.differential_machine` — the hypothesis
  stateful machines over any store.

Needs ``pytest`` and ``hypothesis`` (``pip install 'spe-sdk[testing]'``).
"""

from __future__ import annotations

from spe_core.clock import FakeClock

__all__ = ["FakeClock"]
