"""Example third-party spe-sdk adapter for a Pipedrive-like CRM (see adapter.py)."""

from __future__ import annotations

from spe_pipedrive_like.adapter import PipedriveLikeAdapter, status_from_label, status_to_label
from spe_pipedrive_like.crm import PipedriveLikeCrm, RateLimited

__all__ = [
    "PipedriveLikeAdapter",
    "PipedriveLikeCrm",
    "RateLimited",
    "status_from_label",
    "status_to_label",
]
