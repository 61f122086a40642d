"""The capacity planner: how much Promotions must produce, and how big the buffer is.

Pure arithmetic from team sizes and rates, following the Theory of
Constraints: find the constraint (inside sales' conversations, or field
sales' meetings through the appointment rate), subordinate the rest to it
(inside salespeople pull only what the field can absorb), size the queue as a
buffer of the constraint's daily demand, and staff one sales coordinator per
field salesperson. :func:`spe_core.simulation.simulate` checks a plan with a
discrete-event simulation of a month.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from spe_core.errors import ConfigError

__all__ = ["CapacityPlan", "TeamRates", "plan_capacity"]


def _share(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value < 1.0 if attribute.name == "waste_share" else not 0.0 < value <= 1.0:
        raise ConfigError(
            f"{attribute.name} = {value} is not a valid share.",
            "give a fraction, e.g. 0.2 for 20 %.",
        )


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ConfigError(
            f"{attribute.name} = {value} must be positive.", "give a rate or a size above zero."
        )


@attrs.frozen
class TeamRates:
    """Team sizes and rates (defaults from the SPE sources)."""

    inside_reps: int = attrs.field(validator=_positive)
    field_reps: int = attrs.field(validator=_positive)
    conversations_per_day: float = attrs.field(default=25.0, validator=_positive)
    appointment_rate: float = attrs.field(default=0.2, validator=_share)
    """Share of conversations that end with a field appointment set."""
    meetings_per_day: float = attrs.field(default=4.0, validator=_positive)
    hit_rate: float = attrs.field(default=0.25, validator=_share)
    """Share of meetings that end in a won deal."""
    waste_share: float = attrs.field(default=0.1, validator=_share)
    """Share of produced opportunities that go stale or expire unpulled."""
    buffer_days: float = attrs.field(default=1.0, validator=_positive)
    """Days of the constraint's demand the queue holds after the morning top-up."""


@attrs.frozen
class CapacityPlan:
    """What the team can do per working day, and what Promotions must produce."""

    constraint: str
    pulls_per_day: float
    appointments_per_day: float
    meetings_per_day: float
    wins_per_day: float
    promotions_per_day: float
    queue_target: int
    coordinators: int
    inside_utilisation: float
    field_utilisation: float


def plan_capacity(rates: TeamRates) -> CapacityPlan:
    """The plan for ``rates``: the constraint, the daily flow and the buffer."""
    inside_capacity = rates.inside_reps * rates.conversations_per_day
    field_capacity = rates.field_reps * rates.meetings_per_day
    field_limited_pulls = field_capacity / rates.appointment_rate
    if field_limited_pulls < inside_capacity:
        constraint, pulls = "field_sales", field_limited_pulls
    else:
        constraint, pulls = "inside_sales", inside_capacity
    appointments = pulls * rates.appointment_rate
    return CapacityPlan(
        constraint=constraint,
        pulls_per_day=pulls,
        appointments_per_day=appointments,
        meetings_per_day=appointments,
        wins_per_day=appointments * rates.hit_rate,
        promotions_per_day=pulls / (1.0 - rates.waste_share),
        queue_target=math.ceil(pulls * rates.buffer_days),
        coordinators=rates.field_reps,
        inside_utilisation=pulls / inside_capacity,
        field_utilisation=appointments / field_capacity,
    )
