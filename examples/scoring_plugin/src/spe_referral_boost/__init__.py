"""Example scoring plugin: referrals and webinar attendees jump the queue.

Installed, it is found through the ``spe`` entry-point group; spe-sdk calls
``spe_score_opportunity`` once per opportunity as it enters the queue.
"""

from __future__ import annotations

from datetime import datetime

from spe_core import Opportunity, hookimpl

BOOST = {"referral": 50.0, "webinar": 20.0}


@hookimpl
def spe_score_opportunity(opportunity: Opportunity, now: datetime) -> float | None:
    """Add a boost by campaign; ``None`` (no opinion) for other campaigns."""
    boost = BOOST.get((opportunity.source_campaign or "").lower())
    if boost is None:
        return None
    # fresher opportunities score a little higher: a point lost per day of age
    # (the engine stamps queued_at before scoring; `or now` only narrows the type)
    queued_at = opportunity.queued_at or now
    age_days = max(0.0, (now - queued_at).total_seconds() / 86_400)
    return opportunity.score + boost - age_days
