"""HubSpot surfaces that call ``spe serve``: a workflow custom action and an app card.

Mounted by :func:`spe_serve.app.app_from_config` beside the webhook receiver, when
``spe.toml`` names a HubSpot app and its client secret is set:

- ``POST /hubspot/actions/pull-next``: a *custom workflow action*'s ``actionUrl``.
  HubSpot posts ``{"callbackId", "origin", "object", "inputFields": {"memberId"}}``
  and reads ``{"outputFields": {...}}`` back (HubSpot's custom workflow action
  reference, "Execution"). HubSpot signs these calls with the v2 signature
  (``X-HubSpot-Signature`` with ``X-HubSpot-Signature-Version: v2``: SHA-256 of the
  client secret, method, URI and body; HubSpot's custom action guide), which has no
  timestamp; a v3 signature is taken too when present. Because a v2 request can be
  replayed (and HubSpot retries an execution that timed out), the ``callbackId`` is
  the pull's operation id (:mod:`spe_core.operations`): the same callback pulls once
  and gets the same answer again for 24 hours.
- ``GET /hubspot/card`` and ``POST /hubspot/card/pull``: the back end of an app card
  (a UI extension calling ``hubspot.fetch``). HubSpot signs those with v3 and adds
  the viewing user's ``userId`` to the query; the member is the one whose external
  id ``hubspot_user`` is that user id (the HubSpot adapter records it from the
  owner's ``userId`` at each sync).

Both act as an integration token would, for the member they name; a request that is
not signed by the app gets 401 and changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spe_core.engine import Engine
from spe_core.errors import InvalidValue, UnknownMember
from spe_core.model import Member, Opportunity
from spe_serve.webhooks import Verify

__all__ = [
    "ACTION_PATH",
    "CARD_PATH",
    "CARD_PULL_PATH",
    "USER_ID",
    "hubspot_app_routes",
]

log = logging.getLogger("spe_serve.hubspot")

ACTION_PATH = "/hubspot/actions/pull-next"
CARD_PATH = "/hubspot/card"
CARD_PULL_PATH = "/hubspot/card/pull"
USER_ID = "hubspot_user"
"""The external-id key holding a member's HubSpot user id (owners carry ``userId``)."""


def _opportunity(o: Opportunity) -> dict[str, Any]:
    return {
        "id": o.id,
        "accountId": o.account_id,
        "dealId": o.external_id("hubspot"),
        "releasedAt": None if o.released_at is None else o.released_at.isoformat(),
        "leaseExpiresAt": None if o.lease_expires_at is None else o.lease_expires_at.isoformat(),
    }


def _member_for_user(engine: Engine, user_id: str) -> Member:
    for member in engine.members():
        if member.external_id(USER_ID) == user_id and member.active:
            return member
    raise UnknownMember(f"hubspot user {user_id}")


def _card(engine: Engine, member: Member) -> dict[str, Any]:
    queue = engine.queue_status()
    return {
        "memberId": member.id,
        "name": member.name,
        "opportunities": [_opportunity(o) for o in engine.held_by(member.id)],
        "queue": {"level": queue.level, "target": queue.target, "zone": queue.zone.value},
    }


def _action_outputs(engine: Engine, member_id: str, callback: str) -> dict[str, Any]:
    # the callback id is the pull's operation id: a retry or a replay of the same
    # execution gets the first pull's result and releases nothing more (kept for
    # spe_core.operations.RETENTION, locked while it runs)
    result = engine.pull(member_id, 1, operation_id=f"hubspot:{callback}"[:200])
    first = result.released[0] if result.released else None
    return {
        "hs_execution_state": "SUCCESS",
        "opportunityId": "" if first is None else first.id,
        "dealId": "" if first is None else (first.external_id("hubspot") or ""),
        "accountId": "" if first is None else first.account_id,
        "reason": result.reason or "",
    }


def hubspot_app_routes(engine: Engine, verify: Verify) -> list[Route]:
    """The workflow action and app card routes, checking signatures with ``verify``
    (:attr:`spe_serve.webhooks.HubSpotApp.verify`)."""
    from spe_serve.app import ApiError, _from_exception

    async def signed(request: Request, *, v2: bool) -> bytes:
        body = await request.body()
        headers = dict(request.headers)
        # v3 needs both headers: without the timestamp, verify() would fall back to the
        # legacy signatures (v1 covers the body only)
        v3 = "x-hubspot-signature-v3" in headers and "x-hubspot-request-timestamp" in headers
        version = headers.get("x-hubspot-signature-version", "").strip().lower()
        if not v3 and not (v2 and version == "v2"):
            raise ApiError(
                401,
                "Unauthorized",
                "this request is not signed by the HubSpot app "
                + ("(v3, or v2)." if v2 else "(v3)."),
                "point the HubSpot app's action or card here; nothing else may call it.",
            )
        problem = await run_in_threadpool(verify, request.method, str(request.url), headers, body)
        if problem is not None:
            log.warning("refused a HubSpot-signed call to %s: %s", request.url.path, problem)
            raise ApiError(
                401,
                "Unauthorized",
                f"the HubSpot signature was refused: {problem}.",
                "check the app secret (app_secret_env), the public URL (--public-url) and "
                "the server's clock.",
            )
        return body

    def guarded(
        name: str, handler: Callable[[Request], Awaitable[dict[str, Any]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(await handler(request))
            except Exception as exc:
                return _from_exception(exc, name)

        endpoint.__name__ = name
        return endpoint

    async def action(request: Request) -> dict[str, Any]:
        raw = await signed(request, v2=True)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "the request body is not a JSON object.", None)
        fields = data.get("inputFields") or data.get("fields") or {}
        member_id = fields.get("memberId") if isinstance(fields, Mapping) else None
        callback = data.get("callbackId")
        if not isinstance(member_id, str | int) or not str(member_id).strip():
            raise InvalidValue(
                "inputFields.memberId is missing.",
                "fill the action's SPE member field (a HubSpot owner, e.g. the deal owner).",
            )
        if not isinstance(callback, str) or not callback:
            raise InvalidValue(
                "callbackId is missing.", "only HubSpot's workflow engine calls this action."
            )

        def run() -> dict[str, Any]:
            return {"outputFields": _action_outputs(engine, str(member_id).strip(), callback)}

        return await run_in_threadpool(run)

    async def card(request: Request) -> dict[str, Any]:
        await signed(request, v2=False)
        user = request.query_params.get("userId", "")
        if not user:
            raise InvalidValue("the query has no userId.", "call it through hubspot.fetch.")
        return await run_in_threadpool(lambda: _card(engine, _member_for_user(engine, user)))

    async def card_pull(request: Request) -> dict[str, Any]:
        await signed(request, v2=False)
        user = request.query_params.get("userId", "")
        if not user:
            raise InvalidValue("the query has no userId.", "call it through hubspot.fetch.")

        def run() -> dict[str, Any]:
            member = _member_for_user(engine, user)
            result = engine.pull(member.id, 1)
            return {
                **_card(engine, member),
                "released": [_opportunity(o) for o in result.released],
                "reason": result.reason,
            }

        return await run_in_threadpool(run)

    return [
        Route(ACTION_PATH, guarded("hubspotPullNextAction", action), methods=["POST"]),
        Route(CARD_PATH, guarded("hubspotCard", card), methods=["GET"]),
        Route(CARD_PULL_PATH, guarded("hubspotCardPull", card_pull), methods=["POST"]),
    ]
