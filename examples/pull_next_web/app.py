"""Example: a "pull next" HTTP endpoint, with the engine embedded in a WSGI app.

Inside salespeople's softphone or CRM sidebar calls ``POST /pull/<member>``
when they are ready for the next conversation; the app answers with the best
eligible opportunity, or 409 with the reason (at WIP limit, daily cap, queue
empty). Run it with::

    python examples/pull_next_web/app.py --store sqlite:///spe.db --port 8000

Endpoints: ``GET /queue``, ``POST /pull/<member>``,
``POST /resolve/<opportunity>`` with JSON ``{"member": ..., "outcome": ...}``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

from spe_core import Engine, open_store
from spe_core.errors import NotFound as SpeNotFound
from spe_core.errors import RuleViolation, SpeError


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str), status=status, mimetype="application/json")


class PullNextApp:
    """A WSGI app over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.urls = Map(
            [
                Rule("/queue", endpoint="queue", methods=["GET"]),
                Rule("/pull/<member>", endpoint="pull", methods=["POST"]),
                Rule("/resolve/<opportunity>", endpoint="resolve", methods=["POST"]),
            ]
        )

    def queue(self, request: Request) -> Response:
        s = self.engine.queue_status()
        return _json(
            {
                "level": s.level,
                "target": s.target,
                "zone": s.zone.value,
                "backlog": s.backlog,
                "shortfall": s.shortfall,
            }
        )

    def pull(self, request: Request, member: str) -> Response:
        result = self.engine.pull(member)
        if not result.released:
            return _json({"released": None, "reason": result.reason}, 409)
        opp = result.released[0]
        return _json(
            {
                "released": {
                    "id": opp.id,
                    "account": opp.account_id,
                    "tier": opp.tier,
                    "score": opp.score,
                    "lease_expires_at": opp.lease_expires_at,
                }
            }
        )

    def resolve(self, request: Request, opportunity: str) -> Response:
        body = request.get_json(silent=True) or {}
        opp = self.engine.resolve(
            opportunity, str(body.get("member", "")), str(body.get("outcome", ""))
        )
        return _json({"id": opp.id, "outcome": opp.outcome})

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = self.urls.bind_to_environ(environ).match()
            response = getattr(self, endpoint)(request, **args)
        except SpeNotFound as exc:
            response = _json({"error": exc.problem, "fix": exc.fix}, 404)
        except RuleViolation as exc:
            response = _json({"error": exc.problem, "fix": exc.fix}, 409)
        except SpeError as exc:
            response = _json({"error": exc.problem, "fix": exc.fix}, 400)
        except (NotFound, MethodNotAllowed) as exc:
            response = _json({"error": exc.description}, exc.code or 404)
        except HTTPException as exc:  # pragma: no cover - other werkzeug errors
            response = _json({"error": exc.description}, exc.code or 500)
        body: Iterable[bytes] = response(environ, start_response)
        return body


def main() -> None:
    parser = argparse.ArgumentParser(description="SPE pull-next endpoint")
    parser.add_argument("--store", default="sqlite:///spe.db")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    run_simple("127.0.0.1", args.port, PullNextApp(Engine(open_store(args.store))), threaded=True)


if __name__ == "__main__":
    main()
