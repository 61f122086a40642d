"""The plugin manager behind a small typed facade.

The engine never calls ``pm.hook`` directly: it calls :class:`Plugins`, whose
methods are typed and apply the built-in defaults. :meth:`Plugins.create`
registers the built-ins, loads the ``spe`` entry-point group, honours
``SPE_BLOCK_PLUGINS`` (a comma-separated list of plugin names not to load) and
runs ``check_pending()`` so that a misspelt ``spe_`` hook fails at start.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pluggy

from spe_core import calendar, hookspecs
from spe_core.calendar import CalendarRules, TravelFn
from spe_core.errors import ConfigError
from spe_core.events import Recorded
from spe_core.model import Location, Opportunity, Task
from spe_core.routing import Candidate, Route

__all__ = ["BLOCK_ENV", "ENTRY_POINT_GROUP", "Plugins"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "spe"
BLOCK_ENV = "SPE_BLOCK_PLUGINS"

#: Modules holding the built-in hook implementations, registered under these names.
BUILTINS: tuple[tuple[str, str], ...] = (("spe.defaults", "spe_core.defaults"),)


class Plugins:
    """Typed access to every hook. Build one with :meth:`create`."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self._adapters: dict[str, Any] | None = None

    @classmethod
    def create(
        cls,
        plugins: Iterable[object] = (),
        *,
        entry_points: bool = True,
        blocked: Iterable[str] | None = None,
    ) -> Plugins:
        """A facade over a new manager with the built-ins, entry points and ``plugins``.

        ``blocked`` names plugins not to load (default: from ``SPE_BLOCK_PLUGINS``).
        """
        import importlib

        manager = pluggy.PluginManager(hookspecs.PROJECT)
        manager.add_hookspecs(hookspecs)
        names = blocked if blocked is not None else os.environ.get(BLOCK_ENV, "").split(",")
        for name in (n.strip() for n in names):
            if name:
                manager.set_blocked(name)
        for name, module in BUILTINS:
            if not manager.is_blocked(name):
                manager.register(importlib.import_module(module), name=name)
        if entry_points:
            manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for plugin in plugins:
            manager.register(plugin)
        manager.check_pending()
        return cls(manager)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register one more plugin (an object or module with ``spe_`` hooks)."""
        self.manager.register(plugin, name=name)
        self.manager.check_pending()
        self._adapters = None

    # --- adapters ---------------------------------------------------------------------

    def adapters(self) -> dict[str, Any]:
        """Every registered adapter class by name (from ``spe_register_adapters``)."""
        if self._adapters is None:
            found: dict[str, Any] = {}

            def register(name: str, adapter: Any) -> None:
                if name in found and found[name] is not adapter:
                    raise ConfigError(
                        f"two plugins register an adapter named {name!r}.",
                        f"block one of them with {BLOCK_ENV}, or rename one.",
                    )
                found[name] = adapter

            self.manager.hook.spe_register_adapters(register=register)
            self._adapters = found
        return dict(self._adapters)

    # --- policies ---------------------------------------------------------------------

    def score(self, opportunity: Opportunity, now: datetime) -> float:
        """The score ``opportunity`` enters the queue with."""
        return self.scores((opportunity,), now)[0]

    def _only_default_scoring(self) -> bool:
        hook = self.manager.hook
        return not hook.spe_score_opportunities.get_hookimpls() and all(
            impl.plugin_name == "spe.defaults"
            for impl in hook.spe_score_opportunity.get_hookimpls()
        )

    def scores(self, opportunities: Sequence[Opportunity], now: datetime) -> list[float]:
        """The scores ``opportunities`` enter the queue with, in order: one call of
        ``spe_score_opportunities`` for the page; each place it leaves to ``None`` (or
        the whole page, when no plugin answers) is asked of ``spe_score_opportunity``."""
        if not opportunities:
            return []
        if self._only_default_scoring():  # the built-in default: each keeps its score
            return [o.score for o in opportunities]
        hook = self.manager.hook
        page = list(opportunities)
        answered = hook.spe_score_opportunities(opportunities=page, now=now)
        if answered is None:
            answered = [None] * len(page)
        elif isinstance(answered, str | bytes) or len(answered) != len(page):
            raise ConfigError(
                f"a plugin's spe_score_opportunities answered {answered!r} for "
                f"{len(page)} opportunities.",
                "return one score (or None) per opportunity, in order, or None.",
            )
        scores: list[float] = []
        for opp, score in zip(page, answered, strict=True):
            if score is None:
                score = hook.spe_score_opportunity(opportunity=opp, now=now)
            scores.append(opp.score if score is None else float(score))
        return scores

    # --- tasks (routing) --------------------------------------------------------------
    def default_choice(self) -> bool:
        """True when the only ``spe_choose_assignee`` is the built-in default, which
        answers :func:`spe_core.routing.choose` (routing may then apply it without
        building the candidates and calling the hook)."""
        impls = self.manager.hook.spe_choose_assignee.get_hookimpls()
        return bool(impls) and all(impl.plugin_name == "spe.defaults" for impl in impls)

    def choose_assignee(
        self,
        task: Task,
        route: Route,
        candidates: Sequence[Candidate],
        account_member_id: str | None,
        now: datetime,
    ) -> str:
        """The member who gets ``task`` (a plugin's choice, else the route's strategy)."""
        chosen = self.manager.hook.spe_choose_assignee(
            task=task,
            route=route,
            candidates=candidates,
            account_member_id=account_member_id,
            now=now,
        )
        if chosen is None or chosen not in {c.member.id for c in candidates}:
            raise ConfigError(
                f"a plugin chose {chosen!r} for task {task.id!r}, who is not an eligible "
                "candidate.",
                "spe_choose_assignee must return the id of one of the candidates, or None.",
            )
        return str(chosen)

    # --- calendar (bookings and busy time) --------------------------------------------
    def travel(self, rules: CalendarRules) -> TravelFn:
        """The travel function the calendar rules use (a plugin's, else the default).

        With only the built-in default registered this is
        :func:`spe_core.calendar.great_circle_travel` itself (cached per pair).
        Answers are cached per (origin, destination, departure) for the
        returned function's life, so one engine operation asks each pair once.
        """
        hook = self.manager.hook.spe_travel_minutes
        if all(impl.plugin_name == "spe.defaults" for impl in hook.get_hookimpls()):
            return calendar.great_circle_travel(rules)
        cache: dict[tuple[Location, Location, datetime], timedelta] = {}

        def travel(origin: Location, destination: Location, departure: datetime) -> timedelta:
            key = (origin, destination, departure)
            found = cache.get(key)
            if found is None:
                minutes = hook(
                    origin=origin, destination=destination, departure=departure, rules=rules
                )
                if minutes is None or not minutes >= 0 or math.isinf(float(minutes)):
                    raise ConfigError(
                        f"a plugin's spe_travel_minutes returned {minutes!r} for a trip.",
                        "return a finite number of minutes, 0 or more, or None.",
                    )
                found = cache[key] = timedelta(minutes=math.ceil(float(minutes)))
            return found

        return travel

    # --- listeners --------------------------------------------------------------------

    def notify(self, recorded: Sequence[Recorded]) -> None:
        """Hand committed events to every listener; a failing listener is logged."""
        hook = self.manager.hook.spe_event
        if not hook.get_hookimpls():
            return
        for item in recorded:
            for impl in hook.get_hookimpls():
                try:
                    impl.function(recorded=item)
                except Exception:
                    log.exception(
                        "spe_event listener %s failed on %s", impl.plugin_name, item.event.kind
                    )

    def names(self) -> list[str]:
        """The names of every registered plugin."""
        return sorted(
            name for name, plugin in self.manager.list_name_plugin() if plugin is not None
        )
