"""``spe serve`` and ``spe token``, ready to mount on the ``spe`` command.

In :mod:`spe_core.cli`::

    from spe_serve.cli import serve, token_app

    app.command("serve")(serve)
    app.add_typer(token_app, name="token")

Importing this module needs only typer; Starlette and uvicorn are imported when
``spe serve`` runs, so ``spe token`` works without the ``serve`` extra.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, NoReturn

import attrs
import typer

from spe_core.config import LOG_LEVELS, ServeSettings
from spe_core.errors import ConfigError, InvalidValue, SpeError, StoreError
from spe_serve.setup import engine_from_config, load_config
from spe_serve.tokens import TokenKind, Tokens

__all__ = ["DRAIN_SECONDS", "serve", "serve_app", "serve_settings", "token_app"]

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="the spe.toml to read", envvar="SPE_CONFIG")
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="store URL (default: spe.toml store.url)", envvar="SPE_STORE"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def _fail(exc: SpeError) -> NoReturn:
    code = 2 if isinstance(exc, ConfigError | InvalidValue | StoreError) else 1
    typer.echo(f"error: {exc.problem}", err=True)
    if exc.fix:
        typer.echo(f"fix: {exc.fix}", err=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except SpeError as exc:
        _fail(exc)


def serve(
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help="address to listen on (default: spe.toml serve.host, else 127.0.0.1)"
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="port to listen on (default: spe.toml serve.port, else 8000)"),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", help="uvicorn's log level (default: spe.toml serve.log_level, else info)"
        ),
    ] = None,
    replenish_at: Annotated[
        str | None,
        typer.Option(
            "--replenish-at",
            help="local time (HH:MM) of the morning top-up in each team time zone; 'off' "
            "(default: spe.toml serve.replenish_at, else 07:00)",
        ),
    ] = None,
    sweep_every: Annotated[
        int | None,
        typer.Option(
            "--sweep-every",
            help="minutes between lease/stale sweeps; 0: off "
            "(default: spe.toml serve.sweep_every, else 5)",
        ),
    ] = None,
    escalate_every: Annotated[
        int | None,
        typer.Option(
            "--escalate-every",
            help="minutes between SLA escalations; 0: off "
            "(default: spe.toml serve.escalate_every, else 5)",
        ),
    ] = None,
    sync_every: Annotated[
        int | None,
        typer.Option(
            "--sync-every",
            help="minutes between CRM syncs (when an adapter is set); 0: off "
            "(default: spe.toml serve.sync_every, else 10)",
        ),
    ] = None,
    tick: Annotated[
        float | None,
        typer.Option(
            "--tick",
            help="seconds between the scheduler's checks (default: spe.toml serve.tick, else 30)",
        ),
    ] = None,
    jobs: Annotated[
        bool | None,
        typer.Option(
            "--jobs/--no-jobs",
            help="run the scheduled jobs in this process (default: spe.toml serve.jobs, else true)",
            show_default=False,
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="the address the CRM calls (https://spe.example.com), when a proxy in front "
            "changes it; HubSpot signs the full URL (default: spe.toml serve.public_url)",
        ),
    ] = None,
    print_openapi: Annotated[
        bool,
        typer.Option(
            "--openapi",
            help="print the OpenAPI 3.0 document (for Salesforce External Services) and exit",
        ),
    ] = False,
    token_cache: Annotated[
        float | None,
        typer.Option(
            "--token-cache",
            help="seconds a valid token is trusted without reading the store (0: never); "
            "a token revoked elsewhere keeps working up to that long "
            "(default: spe.toml serve.token_cache, else 0)",
        ),
    ] = None,
) -> None:
    """Serve the SPE API (/api/v1, /openapi.json, /healthz, /readyz) with uvicorn, and run
    the daily jobs (top-up, sweeps, SLA escalation) on a schedule.

    Each flag but --openapi wins over the key of its name in spe.toml's serve table."""
    if print_openapi:
        from spe_serve.api import document

        if public_url is None:
            with _errors():
                public_url = load_config(config).serve.public_url
        doc = document(public_url.rstrip("/") if public_url else "/")
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    try:
        import uvicorn
        from uvicorn.config import LOGGING_CONFIG

        from spe_serve.app import create_app
        from spe_serve.hubspot_app import hubspot_app_routes
        from spe_serve.webhooks import hubspot_webhook
    except ImportError as exc:
        _fail(
            ConfigError(
                f"spe serve needs Starlette and uvicorn ({exc.name} is missing).",
                "install them with: pip install 'spe-sdk[serve]'.",
            )
        )
    from spe_serve.scheduler import Scheduler, daily_jobs, sync_with

    with _errors():
        cfg = load_config(config)
        settings = serve_settings(
            cfg.serve,
            host=host,
            port=port,
            log_level=log_level,
            replenish_at=replenish_at,
            sweep_every=sweep_every,
            escalate_every=escalate_every,
            sync_every=sync_every,
            tick=tick,
            jobs=jobs,
            public_url=public_url,
            token_cache=token_cache,
        )
        engine = engine_from_config(cfg, store)
    s = settings
    scheduler = None
    if s.jobs:
        with _errors():
            crm = sync_with(cfg) if cfg.adapter and s.sync_every else None
        scheduler = Scheduler(
            engine,
            daily_jobs(
                engine,
                replenish_at=s.replenish_at,
                sweep_every=timedelta(minutes=s.sweep_every) if s.sweep_every else None,
                escalate_every=timedelta(minutes=s.escalate_every) if s.escalate_every else None,
                sync=crm,
                sync_every=timedelta(minutes=s.sync_every or 10),
            ),
            tick=timedelta(seconds=s.tick),
        )
    with _errors():
        hook = hubspot_webhook(engine, cfg, public_url=s.public_url)
    app = create_app(
        engine,
        close_engine=True,
        scheduler=scheduler,
        adapter=cfg.adapter or None,
        token_cache_seconds=s.token_cache,
        extra_routes=[hook.route, *hubspot_app_routes(engine, hook.verify)] if hook else [],
        on_close=[hook.adapter.close] if hook else [],
        hubspot_verify=hook.verify if hook else None,
    )
    # uvicorn finishes the requests in flight on SIGTERM/SIGINT, then runs the lifespan's
    # shutdown (which closes the store); --timeout-graceful-shutdown bounds the wait
    # spe_serve's own lines (jobs, errors) go where uvicorn's go, in its format; they never
    # hold a token (see spe_serve.app)
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["spe_serve"] = {
        "handlers": ["default"],
        "level": s.log_level.upper(),
        "propagate": False,
    }
    uvicorn.run(
        app,
        host=s.host,
        port=s.port,
        log_level=s.log_level,
        log_config=log_config,
        # below info, uvicorn would still build every access line before dropping it
        access_log=s.log_level.lower() in ("trace", "debug", "info"),
        timeout_graceful_shutdown=DRAIN_SECONDS,
    )


#: Seconds ``spe serve`` lets the requests in flight finish after SIGTERM (a service
#: manager's stop timeout should be a little longer: deploy/spe-serve.service).
DRAIN_SECONDS = 30


def serve_settings(
    file: ServeSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    log_level: str | None = None,
    replenish_at: str | None = None,
    sweep_every: int | None = None,
    escalate_every: int | None = None,
    sync_every: int | None = None,
    tick: float | None = None,
    jobs: bool | None = None,
    public_url: str | None = None,
    token_cache: float | None = None,
) -> ServeSettings:
    """``file`` (spe.toml's ``[serve]``) with each flag given (not None) in its place,
    each flag checked as the file's key is."""
    changes: dict[str, object] = {}
    if host is not None:
        if not host.strip():
            raise InvalidValue("--host is empty.", "give an address, e.g. --host 0.0.0.0.")
        changes["host"] = host
    if port is not None:
        if not 1 <= port <= 65535:
            raise InvalidValue(f"--port is {port}.", "give a port from 1 to 65535.")
        changes["port"] = port
    if log_level is not None:
        if log_level.lower() not in LOG_LEVELS:
            raise InvalidValue(
                f"--log-level {log_level!r} is not a log level.",
                f"choose from: {', '.join(LOG_LEVELS)}.",
            )
        changes["log_level"] = log_level.lower()
    if replenish_at is not None:
        changes["replenish_at"] = _local_time(replenish_at)
    for name, minutes in (
        ("sweep_every", sweep_every),
        ("escalate_every", escalate_every),
        ("sync_every", sync_every),
    ):
        if minutes is not None:
            if minutes < 0:
                flag = "--" + name.replace("_", "-")
                raise InvalidValue(f"{flag} is {minutes}.", "give minutes above 0, or 0 for off.")
            changes[name] = minutes
    if tick is not None:
        if tick <= 0:
            raise InvalidValue(f"--tick is {tick}.", "give seconds above 0.")
        changes["tick"] = tick
    if jobs is not None:
        changes["jobs"] = jobs
    if public_url is not None:
        changes["public_url"] = public_url or None
    if token_cache is not None:
        if not 0 <= token_cache <= 300:
            raise InvalidValue(f"--token-cache is {token_cache}.", "give 0 to 300 seconds.")
        changes["token_cache"] = token_cache
    return attrs.evolve(file, **changes)  # type: ignore[arg-type]


def _local_time(text: str) -> time | None:
    if text.strip().lower() == "off":
        return None
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise InvalidValue(
            f"--replenish-at {text!r} is not a time of day.",
            "write it as HH:MM, e.g. 07:00, or off.",
        ) from None


token_app = typer.Typer(help="Bearer tokens for the API of `spe serve`.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    member: Annotated[
        str | None, typer.Option("--member", help="a token that acts for this member only")
    ] = None,
    integration: Annotated[
        bool, typer.Option("--integration", help="a token that acts for any member named")
    ] = False,
    admin: Annotated[bool, typer.Option("--admin", help="a token that may do everything")] = False,
    label: Annotated[str, typer.Option("--label", help="a note to tell tokens apart")] = "",
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    chosen = [
        k
        for k, on in (
            (TokenKind.MEMBER, member is not None),
            (TokenKind.INTEGRATION, integration),
            (TokenKind.ADMIN, admin),
        )
        if on
    ]
    if len(chosen) != 1:
        _fail(
            InvalidValue(
                "say which kind of token to create.",
                "pass exactly one of --member ID, --integration, --admin.",
            )
        )
    with _errors(), engine_from_config(load_config(config), store) as engine:
        info, token = Tokens(engine).create(chosen[0], member, label)
    if as_json:
        sys.stdout.write(json.dumps({**info.to_json(), "token": token}, indent=2) + "\n")
    else:
        typer.echo(token)
        typer.echo(
            f"token {info.id} ({info.kind.value}{' for ' + member if member else ''}): "
            "shown this once; store it in your CRM's credential (e.g. a Named Credential).",
            err=True,
        )


@token_app.command("list")
def token_list(
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the tokens (never their secrets)."""
    with _errors(), engine_from_config(load_config(config), store) as engine:
        tokens = Tokens(engine).list()
    if as_json:
        sys.stdout.write(json.dumps([t.to_json() for t in tokens], indent=2) + "\n")
        return
    for t in tokens:
        state = "active" if t.active else f"revoked {t.revoked_at:%Y-%m-%d %H:%M}"
        who = t.member_id or "-"
        typer.echo(f"{t.id}  {t.kind.value:<11}  {who:<20}  {state:<24}  {t.label}")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="the token's id, as `spe token list` shows")],
    config: ConfigOption = Path("spe.toml"),
    store: StoreOption = None,
) -> None:
    """Revoke a token; calls with it get 401 from then on."""
    with _errors(), engine_from_config(load_config(config), store) as engine:
        info = Tokens(engine).revoke(token_id)
    typer.echo(f"revoked token {info.id}")


serve_app = typer.Typer(help="SPE as a service.", no_args_is_help=True, add_completion=False)
"""Both commands on one app, for running them without the ``spe`` command."""
serve_app.command("serve")(serve)
serve_app.add_typer(token_app, name="token")
