"""Operation ids: every mutating engine call is one operation, done at most once.

Every unit of work carries an operation id, generated for it or supplied by the
caller (as an HTTP ``Idempotency-Key`` is), and every event the unit records is
stored with it. Two things follow:

- **A lost commit reply is resolved.** When the connection breaks after the
  commit was sent, the store cannot know from the broken connection whether the
  transaction committed. It ends the broken session, then looks the operation id up
  in the event log on a fresh connection: found, the call returns its result as if
  nothing had happened; not found, nothing was committed and the engine tries the
  call once more (:class:`~spe_core.errors.NotCommitted` if that fails too).
- **A retried call returns its first result.** A caller that supplies
  ``operation_id`` to :meth:`~spe_core.engine.Engine.pull`,
  :meth:`~spe_core.engine.Engine.resolve`, :meth:`~spe_core.engine.Engine.give_back`
  or :meth:`~spe_core.engine.Engine.withdraw` and calls again with the same id (its
  first call timed out, its process restarted) gets the first call's result: never a
  second claim, never a :class:`~spe_core.errors.WrongState`. The store keeps such
  results for :data:`RETENTION` (the engine's ``sweep`` forgets older ones); the same
  id with a different call is refused.
"""

from __future__ import annotations

import itertools
import os
import secrets
from datetime import datetime, timedelta

import attrs

from spe_core.errors import InvalidValue
from spe_core.model import aware_field

__all__ = ["RETENTION", "Operation", "check_operation_id", "new_operation_id"]

#: How long a supplied operation id's result is kept (as long as Stripe keeps an
#: idempotency key): a retry later than this acts again.
RETENTION = timedelta(hours=24)

_MAX_LENGTH = 200


@attrs.frozen
class Operation:
    """A finished call that carried a caller-supplied operation id: which call it was,
    with which arguments, and its result (JSON, :func:`spe_core.codec.to_json`)."""

    id: str
    kind: str
    """The engine method: ``pull``, ``resolve``, ``give_back``, ``withdraw``."""
    request: str
    """The call's arguments, as a canonical JSON text: the same id with other
    arguments is a different call and is refused."""
    result: str
    at: datetime = attrs.field(validator=aware_field)


def check_operation_id(value: object) -> str:
    """``value`` if it is a usable operation id, else :class:`InvalidValue`."""
    if not isinstance(value, str) or not value or len(value) > _MAX_LENGTH:
        raise InvalidValue(
            f"operation_id must be a text of 1 to {_MAX_LENGTH} characters, "
            f"got {type(value).__name__}"
            + (f" of {len(value)} characters." if isinstance(value, str) else "."),
            "use a UUID or another unique text per call, the same on each retry of it.",
        )
    if not value.isprintable() or value != value.strip():
        raise InvalidValue(
            "operation_id holds spaces at its ends or unprintable characters.",
            "use a UUID or another unique printable text per call.",
        )
    return value


class _Ids:
    """Operation ids for units of work: a random prefix per process (drawn again in a
    forked child) and a counter; unique across processes, cheap enough for every unit."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = f"u{secrets.token_hex(8)}-"
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


_ids = _Ids()


def new_operation_id() -> str:
    """A fresh operation id, unique across processes and hosts (64 random bits per
    process and a counter)."""
    return _ids.next()
