"""Reading a record's raw fields without copying them (the mapping's hot path)."""

from __future__ import annotations

from typing import Any

from spe_core.adapter import SourceRecord
from spe_core.model import FrozenMap

__all__ = ["one_id", "raw_fields"]


def raw_fields(record: SourceRecord) -> dict[str, Any]:
    """``record``'s raw fields as the plain dict its frozen map holds, for reading only
    (``record.data`` copies them: a copy per record read costs more than mapping it).
    The mapping functions only read the dict they are given."""
    items = getattr(record.fields, "_items", None)
    return items if type(items) is dict else record.data


def one_id(crm: str, record_id: str) -> FrozenMap[str, str]:
    """``{crm: record_id}`` as the frozen map an SPE value holds its external ids in
    (built normalised, so the value's converter only checks the ids)."""
    return FrozenMap({crm: record_id})
