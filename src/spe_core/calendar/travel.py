"""Travel time between two places: the great-circle default (replaceable through the
``spe_travel_minutes`` hook)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from spe_core.calendar.rules import _EARTH_RADIUS_KM, _ZERO, CalendarRules, TravelFn
from spe_core.model import (
    Location,
)

__all__ = ["great_circle_km", "great_circle_travel"]


# --- travel ---------------------------------------------------------------------------


def great_circle_km(a: Location, b: Location) -> float:
    """The great-circle (haversine) distance between two places, in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def great_circle_travel(rules: CalendarRules) -> TravelFn:
    """The default travel model: distance x road factor / speed + overhead, whole minutes up.

    The same place (within 50 m) is no trip at all. Results are cached per
    pair of places; the departure time is ignored (plug in a traffic-aware
    model through the ``spe_travel_minutes`` hook).
    """
    cache: dict[tuple[Location, Location], timedelta] = {}
    factor = rules.road_factor / rules.speed_kmh * 60.0
    overhead = rules.travel_overhead

    def travel(origin: Location, destination: Location, departure: datetime) -> timedelta:
        key = (origin, destination)
        found = cache.get(key)
        if found is None:
            km = great_circle_km(origin, destination)
            found = _ZERO if km < 0.05 else timedelta(minutes=math.ceil(km * factor)) + overhead
            cache[key] = found
        return found

    return travel
