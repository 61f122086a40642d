"""How every benchmark ends: its figures, its targets, a verdict, an exit code.

A benchmark calls :func:`finish` last. It prints one line per target (met or
missed), then the summary as the last line of output, one JSON object::

    {"benchmark": NAME, "figures": {...}, "targets": {...}, "missed": [...]}

and returns the exit code: 1 when a target that applies to this run is missed.
A full run judges every target. A ``--quick`` run (CI, tiny sizes) judges only
the targets that do not depend on scale (``scale_free``: API call counts,
violations, growth ratios where stable); the others are printed as "not judged
at this size" and never fail the quick run. Targets are the issue's numbers:
never loosened here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

__all__ = ["finish", "meets"]


def meets(value: float, target: str) -> bool:
    """True when ``value`` meets ``target`` (``"<= 3.0"`` or ``">= 0.95"``)."""
    op, bound = target.split()
    if math.isnan(value):
        return False
    if op == "<=":
        return value <= float(bound)
    if op == ">=":
        return value >= float(bound)
    raise ValueError(f"target {target!r} is not '<= N' or '>= N'")


def finish(
    name: str,
    figures: Mapping[str, float],
    targets: Mapping[str, str],
    *,
    quick: bool,
    scale_free: Iterable[str] = (),
) -> int:
    """Print the verdict and the JSON summary line; return the exit code."""
    judged = set(targets) if not quick else set(scale_free) & set(targets)
    missed: list[str] = []
    for key, target in targets.items():
        value = figures.get(key)
        if value is None:
            raise KeyError(f"target {key!r} has no figure")
        if key not in judged:
            print(f"  -    {key} = {value} (target {target}; not judged at --quick size)")
            continue
        ok = meets(float(value), target)
        print(f"  {'ok  ' if ok else 'MISS'} {key} = {value} (target {target})")
        if not ok:
            missed.append(key)
    if missed:
        print(f"{name}: {len(missed)} target(s) missed: {', '.join(missed)}")
    summary = {
        "benchmark": name,
        "figures": dict(figures),
        "targets": dict(targets),
        "missed": missed,
    }
    print(json.dumps(summary))
    return 1 if missed else 0
