"""The public test kit: prove a store, an adapter or a plugin the way we do.

- :class:`FakeClock` — time that moves only when told (defined in
  :mod:`spe_core.clock`, re-exported here);
- :class:`~spe_core.testing.store_suite.StoreConformance` — the store contract
  suite (subclass it, provide a ``store`` fixture);
- :func:`~spe_core.testing.stateful.queue_machine` and
  :func:`~spe_core.testing.stateful.differential_machine` — the pull queue's
  hypothesis stateful machines over any store;
- :func:`~spe_core.testing.routing_stateful.routing_machine` and
  :func:`~spe_core.testing.calendar_stateful.calendar_machine` — the routing and
  calendar machines over any store;
- :class:`~spe_core.testing.adapter_contract.AdapterContract` — the adapter
  contract suite (provide a ``harness`` fixture, a
  :class:`~spe_core.testing.adapter_contract.CrmHarness`, optionally with
  ``page_size``, ``delete_record`` and ``add_with_status``); each failure is a
  :class:`~spe_core.testing.adapter_contract.ContractViolation` saying what the
  adapter did and what the contract requires;
- :mod:`spe_core.testing.dictcrm` — an in-memory CRM and its adapter, the
  contract's reference.

docs/testing.md describes each with a runnable example. Needs ``pytest`` and
``hypothesis`` (``pip install 'spe-sdk[testing]'``).
"""

from __future__ import annotations

from spe_core.clock import FakeClock

__all__ = ["FakeClock"]
