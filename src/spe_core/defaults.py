"""The built-in hook implementations, registered like any other plugin.

They answer ``trylast`` so that any installed plugin can override them.
"""

from __future__ import annotations

from datetime import datetime

from spe_core.hookspecs import hookimpl
from spe_core.model import Opportunity


@hookimpl(trylast=True)
def spe_score_opportunity(opportunity: Opportunity, now: datetime) -> float | None:
    """Default score: the opportunity's own ``score``, unchanged."""
    return opportunity.score
