"""The engine ``spe serve`` and ``spe token`` run on, built from ``spe.toml`` the way the
other ``spe`` commands build theirs."""

from __future__ import annotations

from pathlib import Path

from spe_core import config as config_module
from spe_core.engine import Engine
from spe_core.plugins import Plugins
from spe_core.store import open_store

__all__ = ["engine_from_config", "load_config"]


def load_config(path: Path) -> config_module.Config:
    """``path`` read and checked; the defaults when it is the absent ``spe.toml``."""
    if not path.exists() and path == Path("spe.toml"):
        return config_module.Config.default()
    return config_module.load(path)


def engine_from_config(cfg: config_module.Config, store_url: str | None = None) -> Engine:
    """An engine on ``store_url`` (default: the file's ``[store] url``; the file's
    ``[store]`` timeout keys apply to either), with the file's queue policy, routing
    table, calendar rules and team."""
    engine = Engine(
        open_store(cfg.with_store(store_url).open_url),
        policy=cfg.queue,
        plugins=Plugins.create(),
        routing_table=cfg.routing,
        calendar_rules=cfg.calendar,
        member_settings=cfg.member_settings,
    )
    try:
        if cfg.team:  # new members whole; known ones (maybe from the CRM) keep the rest
            engine.upsert_members(cfg.team, supplies={m.id: frozenset() for m in cfg.team})
        engine.apply_member_settings()
        if cfg.buffer_management == "auto":
            engine.use_stored_target()
    except BaseException:
        engine.close()
        raise
    return engine
