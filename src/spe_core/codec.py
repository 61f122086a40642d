"""JSON encoding of domain values and events, for stores and wire formats, with versions.

Serialisation stays out of the model: this module turns any registered attrs
value (model values and events) into JSON-ready data and back. Datetimes,
dates, times, timedeltas, sets, tuples, mappings and enums keep their types
through a round trip (aware datetimes keep their UTC offset).

**The stored form.** An attrs value is a JSON object of its fields plus two
tags: ``"$event": kind`` for an event (``"$type": ClassName`` for any other
value) and ``"$v": version``, the schema version of its class when it was
written. Other tagged objects carry the plain types JSON lacks:
``{"$dt": iso}``, ``{"$date": iso}``, ``{"$time": iso}``, ``{"$td": seconds}``
(``[days, seconds, microseconds]`` when float seconds would round),
``{"$set": [...]}``, ``{"$tuple": [...]}`` and ``{"$map": [[key, value], ...]}``.
Data written before versions existed has no ``"$v"``; it reads as version 1.

**Versions and upcasters.** Each event class has ``version: ClassVar[int]``
(default 1); a value class registered with :func:`register_value` may declare
the same class attribute. Change the fields of a stored class (rename, split,
drop, change a type) and you bump its ``version`` and register an *upcaster*
from the old version: a function that takes the stored field dict of version
``n`` and returns the dict of version ``n + 1``::

    from spe_core import codec

    @codec.upcaster("opportunity.released", 1)   # event kind, or value class name
    def _holder_renamed(fields):
        fields["holder_id"] = fields.pop("member_id")
        return fields

Decoding reads ``"$v"``, applies the upcasters from that version up to the
class's current one, in order, and then builds the value with a `cattrs
<https://catt.rs>`_ structure function generated once per class from its
field types (so each field is converted by its declared type, and the class's
validators run as on any creation). Upcasters see the fields in their stored
form: nested values are still their own tagged dicts (upcast separately, by
their own class and version) and datetimes are ``{"$dt": ...}`` objects. A
stored version newer than the class's own (a database written by a newer
spe-sdk or plugin) raises :class:`~spe_core.errors.StoreError` naming the
class and both versions: upgrade spe-sdk, never guess.

Plugins defining their own events or stored values do the same: register the
class (:func:`spe_core.events.event_type` or :func:`register_value`), give it a
``version`` when its fields change, and register an upcaster per old version
when the plugin is imported.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

import attrs
import cattrs

from spe_core import adapter, model, outbox, queue, routing, team
from spe_core.calendar import rules as calendar_rules
from spe_core.errors import ConfigError, InvalidValue, SpeError, StoreError
from spe_core.events import EVENT_TYPES, Event

__all__ = [
    "Upcaster",
    "decode",
    "dumps",
    "encode",
    "from_json",
    "loads",
    "register_upcaster",
    "register_value",
    "schema_version",
    "to_json",
    "upcaster",
]

T = TypeVar("T")

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the stored field dict of one version into the dict of the next version."""

_VALUES: dict[str, type[Any]] = {}
_VERSIONS: dict[type[Any], int] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}
_DECODERS: dict[str, _Decoder] = {}  # per stored name: class, version, structure function


def _declared_version(cls: type[Any]) -> int:
    """The ``version`` class attribute of ``cls`` (1 when it declares none)."""
    if any(f.name == "version" for f in attrs.fields(cls)):
        return 1  # a field called version, not a schema version
    version = getattr(cls, "version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(
            f"{cls.__name__}.version is {version!r}; schema versions are whole numbers from 1.",
            "set version: ClassVar[int] = 1 on the class and add 1 each time its fields change.",
        )
    return version


def schema_version(cls: type[Any]) -> int:
    """The schema version the codec writes for ``cls`` (an event or registered value class)."""
    version = _VERSIONS.get(cls)
    if version is None:
        if not _is_attrs(cls):
            raise ConfigError(
                f"{cls.__name__} is not an attrs class, so it has no schema version.",
                "pass an event class or a class registered with register_value.",
            )
        version = _VERSIONS[cls] = _declared_version(cls)
    return version


def _is_attrs(cls: type[Any]) -> bool:
    return attrs.has(cls)


def register_value(cls: type[T]) -> type[T]:
    """Make an attrs class encodable by this codec (class decorator).

    The class is stored under its name; its schema version is its
    ``version`` class attribute (1 when it has none).
    """
    if not _is_attrs(cls):
        raise ConfigError(
            f"{cls.__name__} is not an attrs class.", "decorate it with @attrs.frozen first."
        )
    _VERSIONS[cls] = _declared_version(cls)
    _VALUES[cls.__name__] = cls
    _DECODERS.pop(cls.__name__, None)
    return cls


def register_upcaster(name: str | type[Any], from_version: int, upcast: Upcaster) -> Upcaster:
    """Register ``upcast``, turning version ``from_version`` of ``name`` into the next version.

    ``name`` is an event kind (``"opportunity.released"``), a registered value
    class name (``"Opportunity"``), or the class itself. ``upcast`` receives a
    fresh dict of the stored fields (no ``$`` tags, values in stored form) and
    returns the dict for version ``from_version + 1``; it may change the dict it
    was given. Returns ``upcast``, so :func:`upcaster` can be a decorator.
    """
    if isinstance(name, type):
        name = name.kind if issubclass(name, Event) else name.__name__
    if not isinstance(from_version, int) or isinstance(from_version, bool) or from_version < 1:
        raise ConfigError(
            f"an upcaster for {name!r} starts at version {from_version!r}.",
            "give the stored version it reads: a whole number from 1.",
        )
    key = (name, from_version)
    if key in _UPCASTERS and _UPCASTERS[key] is not upcast:
        raise ConfigError(
            f"{name!r} already has an upcaster from version {from_version}.",
            "register one upcaster per class and version; chain versions instead.",
        )
    _UPCASTERS[key] = upcast
    return upcast


def upcaster(name: str | type[Any], from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator form of :func:`register_upcaster`."""

    def decorate(upcast: Upcaster) -> Upcaster:
        return register_upcaster(name, from_version, upcast)

    return decorate


for _cls in (
    model.Member,
    model.Opportunity,
    model.Location,
    model.DayHours,
    model.WorkingHours,
    model.Absence,
    model.Task,
    model.TimeWindow,
    model.AppointmentRequest,
    model.Booking,
    model.Busy,
    outbox.OutboxItem,
    outbox.Quarantined,
    # not stored, but given a JSON form for integrations (spe_core.to_json)
    queue.QueuePolicy,
    routing.RoutingTable,
    routing.Route,
    routing.Sla,
    calendar_rules.CalendarRules,
    calendar_rules.Slot,
    calendar_rules.Proposal,
    calendar_rules.Violation,
    calendar_rules.WeekPlan,
    team.MemberSettings,
    adapter.Change,
    adapter.SourceRecord,
    adapter.Inbound,
    adapter.StreamSpec,
    adapter.WriteResult,
):
    register_value(_cls)


def _nested_classes(cls: type[Any]) -> list[type[Any]]:
    """The attrs classes named in the field types of ``cls``, at any depth."""
    found: list[type[Any]] = []

    def walk(kind: Any) -> None:
        if isinstance(kind, type) and attrs.has(kind):
            if kind not in found:
                found.append(kind)
                for f in attrs.fields(attrs.resolve_types(kind)):
                    walk(f.type)
            return
        for arg in typing.get_args(kind):
            walk(arg)

    walk(cls)
    return found[1:]


for _cls in list(_VALUES.values()):  # what the registered values hold (SortField, ...)
    for _nested in _nested_classes(_cls):
        if _nested.__name__ not in _VALUES:
            register_value(_nested)


def _external_ids_as_map(fields: dict[str, Any]) -> dict[str, Any]:
    """Version 1 stored ``external_ids`` as a tuple of (CRM, id) pairs; version 2 as a map."""
    stored = fields.get("external_ids")
    if isinstance(stored, dict) and "$tuple" in stored:
        pairs = [p["$tuple"] if isinstance(p, dict) else p for p in stored["$tuple"]]
        fields["external_ids"] = {"$map": [[k, v] for k, v in pairs]}
    return fields


for _cls in (model.Member, model.Opportunity, model.Task, model.AppointmentRequest, model.Booking):
    register_upcaster(_cls, 1, _external_ids_as_map)


# --- encoding ---------------------------------------------------------------------------

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
        out = {"$event": cls.kind, "$v": cls.version}  # checked by event_type
    else:
        name = cls.__name__
        if _VALUES.get(name) is not cls:
            raise StoreError(
                f"{name} is not registered with spe_core.codec.",
                "decorate the class with spe_core.codec.register_value.",
            )
        out = {"$type": name, "$v": _VERSIONS[cls]}
    for field in _field_names(cls):
        item = getattr(value, field)
        kind = type(item)
        # JSON's own types are written as they are (the common case, kept inline)
        out[field] = item if kind is str or item is None or kind is int else encode(item)
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


def _timedelta_data(value: timedelta) -> Any:
    if not value.microseconds:
        return {"$td": value.days * 86_400 + value.seconds}
    if abs(value.days) < 10_000:  # float seconds hold every microsecond below ~27 years
        return {"$td": value.total_seconds()}
    return {"$td": [value.days, value.seconds, value.microseconds]}


def _timedelta_value(data: Any) -> timedelta:
    if type(data) is list:
        return timedelta(*data)
    return timedelta(seconds=data)


_ENCODERS: dict[type[Any], Callable[[Any], Any]] = {
    str: _same,
    int: _same,
    float: _same,
    bool: _same,
    type(None): _same,
    datetime: lambda v: {"$dt": v.isoformat()},
    date: lambda v: {"$date": v.isoformat()},
    time: lambda v: {"$time": v.isoformat()},
    timedelta: _timedelta_data,
    frozenset: _set,
    set: _set,
    tuple: lambda v: {"$tuple": [encode(i) for i in v]},
    list: lambda v: [encode(i) for i in v],
    dict: lambda v: {"$map": [[encode(k), encode(i)] for k, i in v.items()]},
    model.FrozenMap: lambda v: {"$map": [[encode(k), encode(i)] for k, i in v.items()]},
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


# --- decoding ---------------------------------------------------------------------------
#
# json.loads gives plain dicts and lists; a cattrs converter rebuilds the values from
# them, led by each class's field types. Per class the work is done once: the tag
# lookup, the version and the generated structure function are cached in _DECODERS.

_TAGS: dict[str, Callable[[Any], Any]] = {
    "$dt": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$td": _timedelta_value,
    "$set": lambda items: frozenset(_any(i) for i in items),
    "$tuple": lambda items: tuple(_any(i) for i in items),
    "$map": lambda pairs: {_any(k): _any(v) for k, v in pairs},
}


def _any(data: Any) -> Any:
    """Rebuild untyped data (a field typed ``Any``, or the top level) from its tags."""
    if type(data) is dict:
        if "$event" in data or "$type" in data:
            return _tagged(data)
        if len(data) == 1:
            ((tag, payload),) = data.items()
            convert = _TAGS.get(tag)
            if convert is not None:
                return convert(payload)
        return {k: _any(v) for k, v in data.items()}
    if type(data) is list:
        return [_any(i) for i in data]
    return data


def _any_hook(data: Any, _: Any) -> Any:
    return _any(data)


@attrs.frozen
class _Decoder:
    cls: type[Any]
    name: str
    version: int
    structure: Callable[[Mapping[str, Any], Any], Any]


def _decoder(data: Mapping[str, Any]) -> _Decoder:
    kind = data.get("$event")
    name = kind if kind is not None else data["$type"]
    decoder = _DECODERS.get(name)
    if decoder is not None and (
        kind is None or EVENT_TYPES.get(name) is decoder.cls  # a plugin may re-register
    ):
        return decoder
    cls = EVENT_TYPES.get(name) if kind is not None else _VALUES.get(name)
    if cls is None:
        raise StoreError(
            f"stored data names an unknown {'event kind' if kind else 'type'} {name!r}.",
            "install the plugin that defined it, or upgrade spe-sdk.",
        )
    try:
        structure = _converter.gen_structure_attrs_fromdict(cls)
    except Exception:  # field types cattrs cannot resolve (a class defined in a function)
        structure = _by_tags
    decoder = _DECODERS[name] = _Decoder(cls, name, schema_version(cls), structure)
    return decoder


def _by_tags(data: Mapping[str, Any], cls: Any) -> Any:
    """Build ``cls`` from the stored tags alone, for classes whose field types are unknown."""
    return cls(**{k: _any(v) for k, v in data.items() if k[:1] != "$"})


def _upcast(decoder: _Decoder, data: Mapping[str, Any], stored: Any) -> dict[str, Any]:
    if not isinstance(stored, int) or isinstance(stored, bool) or stored < 1:
        raise StoreError(
            f"stored {decoder.name!r} has schema version {stored!r}.",
            "the data is damaged: versions are whole numbers from 1.",
        )
    if stored > decoder.version:
        raise StoreError(
            f"stored {decoder.name!r} has schema version {stored}, but this spe-sdk reads "
            f"{decoder.name!r} only up to version {decoder.version}: it was written by a "
            "newer release.",
            "upgrade spe-sdk (and the plugin that defines it) to the release that wrote it.",
        )
    fields = {k: v for k, v in data.items() if k[:1] != "$"}
    for version in range(stored, decoder.version):
        step = _UPCASTERS.get((decoder.name, version))
        if step is None:
            raise StoreError(
                f"stored {decoder.name!r} has schema version {version} and no upcaster "
                f"turns it into version {version + 1}.",
                "register one with spe_core.codec.register_upcaster (the plugin or "
                "release that changed the class should ship it).",
            )
        try:
            fields = step(fields)
        except Exception as e:  # an upcaster is plugin code: name it in the error
            raise StoreError(
                f"the upcaster of {decoder.name!r} from version {version} failed on "
                f"stored fields {sorted(fields)}: {type(e).__name__}: {e}.",
                f"fix {getattr(step, '__qualname__', step)!s} to turn every stored version "
                f"{version} into version {version + 1}.",
            ) from e
        if not isinstance(fields, dict):
            raise StoreError(
                f"the upcaster of {decoder.name!r} from version {version} returned a "
                f"{type(fields).__name__}, not a dict of fields.",
                "return the (changed) dict of fields.",
            )
    return fields


_DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, cattrs.BaseValidationError)


def _tagged(data: Mapping[str, Any]) -> Any:
    decoder = _decoder(data)
    stored = data.get("$v", 1)
    if stored != decoder.version or type(stored) is not int:
        data = _upcast(decoder, data, stored)
    try:
        return decoder.structure(data, decoder.cls)
    except _DECODE_ERRORS as e:  # InvalidValue too: the class refused the stored fields
        problem = e.problem if isinstance(e, SpeError) else f"{type(e).__name__}: {e}"
        raise StoreError(
            f"stored {decoder.name!r} (schema version {stored}) could not be decoded ({problem}).",
            f"if {decoder.name!r} changed its fields, bump its version and register an "
            "upcaster (spe_core.codec.register_upcaster); otherwise the data is damaged.",
        ) from e


def _attrs_hook(data: Any, cls: Any) -> Any:
    if type(data) is dict and ("$event" in data or "$type" in data):
        return _tagged(data)
    if isinstance(data, cls):
        return data
    raise StoreError(
        f"stored data for a {cls.__name__} is not a tagged value: {data!r:.200}.",
        "the data is damaged or was not written by spe_core.codec.",
    )


def _datetime(data: Any, _: Any) -> datetime:
    return datetime.fromisoformat(data["$dt"])


def _date(data: Any, _: Any) -> date:
    return date.fromisoformat(data["$date"])


def _time(data: Any, _: Any) -> time:
    return time.fromisoformat(data["$time"])


def _timedelta(data: Any, _: Any) -> timedelta:
    return _timedelta_value(data["$td"])


def _enum(data: Any, cl: type[enum.Enum]) -> enum.Enum:
    return cl(data)


def _optional(converter: cattrs.Converter, inner: Any) -> Callable[[Any, Any], Any]:
    hook = converter.get_structure_hook(inner)

    def structure(data: Any, _: Any) -> Any:
        return None if data is None else hook(data, inner)

    return structure


def _union_hook(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    args = [a for a in typing.get_args(cl) if a is not type(None)]
    if len(args) == 1 and len(typing.get_args(cl)) == 2:
        return _optional(converter, args[0])
    return _any_hook  # a wider union: the stored tags say what each value is


def _tuple_hook(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    args = typing.get_args(cl)
    if not args:
        return _any_hook
    if len(args) == 2 and args[1] is Ellipsis:
        item_type = args[0]
        item = converter.get_structure_hook(item_type)

        def homogeneous(data: Any, _: Any) -> tuple[Any, ...]:
            items = data["$tuple"]
            if not items:
                return ()
            return tuple([item(i, item_type) for i in items])

        return homogeneous
    hooks = [(converter.get_structure_hook(a), a) for a in args]

    def fixed(data: Any, _: Any) -> tuple[Any, ...]:
        return tuple([h(i, a) for (h, a), i in zip(hooks, data["$tuple"], strict=True)])

    return fixed


def _set_hook(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    args = typing.get_args(cl)
    if not args:
        return _any_hook
    item_type = args[0]
    item = converter.get_structure_hook(item_type)

    def structure(data: Any, _: Any) -> frozenset[Any]:
        items = data["$set"]
        if not items:
            return frozenset()
        return frozenset([item(i, item_type) for i in items])

    return structure


def _map_hook(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    args = typing.get_args(cl)
    if len(args) != 2:
        return _any_hook
    key_type, value_type = args
    key, value = converter.get_structure_hook(key_type), converter.get_structure_hook(value_type)

    def structure(data: Any, _: Any) -> dict[Any, Any]:
        return {key(k, key_type): value(v, value_type) for k, v in data["$map"]}

    return structure


def _frozen_map_hook(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    structure = _map_hook(cl, converter)

    def frozen(data: Any, _: Any) -> model.FrozenMap[Any, Any]:
        return model.FrozenMap(structure(data, cl))

    return frozen


def _origin(cl: Any) -> Any:
    return typing.get_origin(cl) or cl


def _is_union(cl: Any) -> bool:
    return _origin(cl) in (typing.Union, types.UnionType)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(
        detailed_validation=False, structure_fallback_factory=lambda _: _any_hook
    )
    # str, int, float and bool keep cattrs' own hooks (one call of the type); enums
    # (StrEnum before str in the MRO) are built from their stored value, and a field
    # typed Any is rebuilt from its tags.
    for base in (enum.Enum, enum.StrEnum, enum.IntEnum):
        converter.register_structure_hook(base, _enum)
    converter.register_structure_hook_func(lambda cl: cl is typing.Any, _any_hook)
    converter.register_structure_hook(datetime, _datetime)
    converter.register_structure_hook(date, _date)
    converter.register_structure_hook(time, _time)
    converter.register_structure_hook(timedelta, _timedelta)
    converter.register_structure_hook_factory(
        lambda cl: _origin(cl) is tuple, lambda cl: _tuple_hook(cl, converter)
    )
    converter.register_structure_hook_factory(
        lambda cl: _origin(cl) in (frozenset, set), lambda cl: _set_hook(cl, converter)
    )
    converter.register_structure_hook_factory(
        lambda cl: _origin(cl) in (dict, Mapping), lambda cl: _map_hook(cl, converter)
    )
    converter.register_structure_hook_factory(
        lambda cl: _origin(cl) is model.FrozenMap, lambda cl: _frozen_map_hook(cl, converter)
    )
    converter.register_structure_hook_factory(_is_union, lambda cl: _union_hook(cl, converter))
    converter.register_structure_hook_factory(
        lambda cl: isinstance(cl, type) and attrs.has(cl), lambda _: _attrs_hook
    )
    return converter


_converter = _make_converter()


def _wrapped(data: Any) -> Any:
    try:
        return _any(data)
    except StoreError:
        raise
    except _DECODE_ERRORS as e:  # outside any tagged value: a damaged tag
        problem = e.problem if isinstance(e, SpeError) else f"{type(e).__name__}: {e}"
        raise StoreError(
            f"stored data could not be decoded ({problem}).",
            "the data is damaged or was not written by spe_core.codec.",
        ) from e


def decode(data: Any) -> Any:
    """Rebuild a value from :func:`encode`'s output (``data`` is left unchanged)."""
    return _wrapped(data)


#: What ``json.dumps(data, separators=(",", ":"), ensure_ascii=False)`` builds on every
#: call, built once (it keeps no state between calls).
_TEXT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    return _TEXT.encode(encode(value))


def loads(text: str | bytes) -> Any:
    """Rebuild a value from :func:`dumps`' text."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise StoreError(
            f"stored text is not JSON ({e}): {text!r:.80}.",
            "the data is damaged or was not written by spe_core.codec.",
        ) from e
    return _wrapped(data)


def to_json(value: Any) -> str:
    """The JSON form of any spe_core value or event: the text the stores write.

    Every value exported by :mod:`spe_core` (members, opportunities, tasks,
    requests, bookings, busy time, working hours, policies, proposals, ...)
    and every event has one; datetimes, sets, enums, timedeltas and mappings
    keep their types, and :func:`from_json` gives back an equal value::

        text = spe_core.to_json(member)
        assert spe_core.from_json(text, spe_core.Member) == member
    """
    try:
        return dumps(value)
    except StoreError as e:
        raise InvalidValue(e.problem, e.fix) from e


def from_json(text: str | bytes, cls: type[T]) -> T:
    """Rebuild a ``cls`` from :func:`to_json`'s text (older releases' text included:
    stored versions are upcast). Raises :class:`~spe_core.errors.InvalidValue` when
    the text is not such JSON or holds another type."""
    try:
        value = loads(text)
    except StoreError as e:
        raise InvalidValue(e.problem, "pass text made by spe_core.to_json.") from e
    if not isinstance(value, cls):
        raise InvalidValue(
            f"the JSON holds a {type(value).__name__}, not a {cls.__name__}: {text!r:.80}.",
            f"pass the class the text was made from ({type(value).__name__}).",
        )
    return value
