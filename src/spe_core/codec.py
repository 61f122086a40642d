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

from spe_core import model, outbox
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

register_value(outbox.OutboxItem)
register_value(outbox.Quarantined)

# === routing (issue 3): routing code goes between these markers ===
register_value(model.Task)
# === end routing ===

# === calendar (issue 4): calendar code goes between these markers ===
register_value(model.TimeWindow)
register_value(model.AppointmentRequest)
register_value(model.Booking)
register_value(model.Busy)
# === end calendar ===


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in attrs.fields(cls))
    return names


def _encode_attrs(value: Any) -> dict[str, Any]:
    cls = type(value)
    out: dict[str, Any]
    if isinstance(value, Event):
        out = {"$event": cls.kind}
    else:
        name = cls.__name__
        if _VALUES.get(name) is not cls:
            raise StoreError(
                f"{name} is not registered with spe_core.codec.",
                "decorate the class with spe_core.codec.register_value.",
            )
        out = {"$type": name}
    for field in _field_names(cls):
        out[field] = encode(getattr(value, field))
    return out


def _same(value: Any) -> Any:
    return value


def _set(value: Any) -> Any:
    items = [encode(v) for v in value]
    try:
        items.sort()
    except TypeError:
        items.sort(key=json.dumps)
    return {"$set": items}


_ENCODERS: dict[type[Any], Callable[[Any], Any]] = {
    str: _same,
    int: _same,
    float: _same,
    bool: _same,
    type(None): _same,
    datetime: lambda v: {"$dt": v.isoformat()},
    date: lambda v: {"$date": v.isoformat()},
    time: lambda v: {"$time": v.isoformat()},
    timedelta: lambda v: {"$td": v.total_seconds()},
    frozenset: _set,
    set: _set,
    tuple: lambda v: {"$tuple": [encode(i) for i in v]},
    list: lambda v: [encode(i) for i in v],
    dict: lambda v: {"$map": [[encode(k), encode(i)] for k, i in v.items()]},
}


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data (dicts, lists, strings, numbers, None)."""
    encoder = _ENCODERS.get(type(value))
    if encoder is not None:
        return encoder(value)
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        return _encode_attrs(value)
    for kind, fallback in _ENCODERS.items():  # subclasses of the plain types
        if isinstance(value, kind) and kind is not type(None):
            return fallback(value)
    raise StoreError(
        f"cannot encode a {type(value).__name__} value.",
        "store only spe_core values, events, and plain data.",
    )


_TAGS: dict[str, Callable[[Any], Any]] = {
    "$dt": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$td": lambda s: timedelta(seconds=s),
    "$set": frozenset,
    "$tuple": tuple,
    "$map": dict,
}


def _hook(data: dict[str, Any]) -> Any:
    """json object_hook: rebuild tagged values bottom-up."""
    if len(data) == 1:
        ((tag, payload),) = data.items()
        convert = _TAGS.get(tag)
        if convert is not None:
            return convert(payload)
    kind = data.pop("$event", None)
    if kind is not None:
        cls = EVENT_TYPES.get(kind)
    else:
        name = data.pop("$type", None)
        if name is None:
            return data
        cls = _VALUES.get(name)
        kind = name
    if cls is None:
        raise StoreError(
            f"stored data names an unknown type {kind!r}.",
            "install the plugin that defined it, or upgrade spe-sdk.",
        )
    return cls(**data)


def decode(data: Any) -> Any:
    """Rebuild a value from :func:`encode`'s output."""
    return json.loads(json.dumps(data), object_hook=_hook)


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    return json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    """Rebuild a value from :func:`dumps`' text."""
    return json.loads(text, object_hook=_hook)
