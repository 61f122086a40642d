"""The built-in hook implementations, registered like any other plugin.

They answer ``trylast`` so that any installed plugin can override them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from spe_core import calendar, routing
from spe_core.hookspecs import hookimpl
from spe_core.model import Location, Opportunity, Task
from spe_core.routing import Candidate


@hookimpl(trylast=True)
def spe_score_opportunity(opportunity: Opportunity, now: datetime) -> float | None:
    """Default score: the opportunity's own ``score``, unchanged."""
    return opportunity.score


@hookimpl(trylast=True)
def spe_choose_assignee(
    task: Task,
    route: routing.Route,
    candidates: Sequence[Candidate],
    account_member_id: str | None,
    now: datetime,
) -> str | None:
    """Default choice: the route's strategy (see :func:`spe_core.routing.choose`)."""
    return routing.choose(route, candidates, account_member_id).member.id


@hookimpl(trylast=True)
def spe_travel_minutes(
    origin: Location, destination: Location, departure: datetime, rules: calendar.CalendarRules
) -> float | None:
    """Default travel: great-circle distance x road factor / speed + overhead."""
    return calendar.great_circle_travel(rules)(origin, destination, departure).total_seconds() / 60
