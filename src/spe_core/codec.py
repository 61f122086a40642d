"""JSON encoding of domain values and events, for stores and wire formats.

Serialisation stays out of the model: this module turns any registered attrs
value (model values and events) into JSON-ready data and back. Values are
tagged with their class name; datetimes, dates, times, timedeltas, sets and
tuples keep their types through a round trip.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

import attrs

from spe_core import model
from spe_core.errors import StoreError
from spe_core.events import EVENT_TYPES, Event

__all__ = ["decode", "dumps", "encode", "loads", "register_value"]

T = TypeVar("T")

_VALUES: dict[str, type[Any]] = {}


def register_value(cls: type[T]) -> type[T]:
    """Make an attrs class encodable by this codec (class decorator)."""
    _VALUES[cls.__name__] = cls
    return cls


for _cls in (
    model.Member,
    model.Opportunity,
    model.Location,
    model.DayHours,
    model.WorkingHours,
    model.Absence,
):
    register_value(_cls)

# === routing (issue 3): routing code goes between these markers ===
# === end routing ===

# === calendar (issue 4): calendar code goes between these markers ===
# === end calendar ===


def _encode_attrs(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cls = type(value)
    if isinstance(value, Event):
        out["$event"] = cls.kind
    else:
        name = cls.__name__
        if _VALUES.get(name) is not cls:
            raise StoreError(
                f"{name} is not registered with spe_core.codec.",
                "decorate the class with spe_core.codec.register_value.",
            )
        out["$type"] = name
    for field in attrs.fields(cls):
        out[field.name] = encode(getattr(value, field.name))
    return out


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data (dicts, lists, strings, numbers, None)."""
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$td": value.total_seconds()}
    if isinstance(value, frozenset | set):
        return {"$set": sorted((encode(v) for v in value), key=json.dumps)}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"$map": [[encode(k), encode(v)] for k, v in value.items()]}
    if attrs.has(type(value)):
        return _encode_attrs(value)
    raise StoreError(
        f"cannot encode a {type(value).__name__} value.",
        "store only spe_core values, events, and plain data.",
    )


_TAGS: dict[str, Callable[[Any], Any]] = {
    "$dt": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$td": lambda s: timedelta(seconds=s),
    "$set": lambda items: frozenset(decode(i) for i in items),
    "$tuple": lambda items: tuple(decode(i) for i in items),
    "$map": lambda pairs: {decode(k): decode(v) for k, v in pairs},
}


def decode(data: Any) -> Any:
    """Rebuild a value from :func:`encode`'s output."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "$event" in data or "$type" in data:
        kind = data.get("$event")
        cls = EVENT_TYPES.get(kind) if kind is not None else _VALUES.get(data["$type"])
        if cls is None:
            raise StoreError(
                f"stored data names an unknown type {kind or data.get('$type')!r}.",
                "install the plugin that defined it, or upgrade spe-sdk.",
            )
        kwargs = {k: decode(v) for k, v in data.items() if not k.startswith("$")}
        return cls(**kwargs)
    if len(data) == 1:
        ((tag, payload),) = data.items()
        if tag in _TAGS:
            return _TAGS[tag](payload)
    return {k: decode(v) for k, v in data.items()}


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    return json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    """Rebuild a value from :func:`dumps`' text."""
    return decode(json.loads(text))
