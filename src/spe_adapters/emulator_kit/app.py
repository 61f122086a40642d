"""The WSGI skeleton both emulators share: URL matching, the request log, admin routes.

An emulator subclasses :class:`KitApp`, gives its CRM's URL map as ``urls``,
answers matched requests in :meth:`KitApp.dispatch` and shapes its CRM's error
bodies in :meth:`KitApp.not_found` and :meth:`KitApp.http_error`. The admin
routes under ``/__emulator/`` are the kit's and never count against a CRM
limit:

- ``POST /__emulator/reset``: forget every record, credential and fault, and the log;
- ``POST /__emulator/seed``: seed the demo data (JSON body: the emulator's seed options);
- ``POST /__emulator/faults``: set the faults (:meth:`Faults.configure`'s keys, plus the
  emulator's own, see :meth:`KitApp.set_faults`);
- ``GET /__emulator/requests``: ``{"counts": {endpoint: n}, "requests": [the last 1,000]}``.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar, Protocol

import attrs
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from spe_adapters.emulator_kit.faults import Faults
from spe_adapters.emulator_kit.log import LoggedRequest, RequestLog

__all__ = ["ADMIN_PREFIX", "EmulatedCrm", "KitApp", "json_response"]

ADMIN_PREFIX = "/__emulator/"
ADMIN_URLS = Map(
    [
        Rule("/__emulator/reset", endpoint="admin_reset", methods=["POST"]),
        Rule("/__emulator/seed", endpoint="admin_seed", methods=["POST"]),
        Rule("/__emulator/faults", endpoint="admin_faults", methods=["POST"]),
        Rule("/__emulator/requests", endpoint="admin_requests", methods=["GET"]),
    ],
    strict_slashes=False,
)


class EmulatedCrm(Protocol):
    """What the kit needs of an emulator's data model (a HubSpot portal, a Salesforce org)."""

    @property
    def faults(self) -> Faults:
        """The faults to inject (replaced by ``reset``)."""

    def reset(self) -> None:
        """Forget every record, credential and fault."""


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` as a JSON reply."""
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)


class KitApp:
    """The WSGI application behind an emulator's server (subclass it per CRM)."""

    urls: ClassVar[Map]
    """The CRM's URL map; each rule's endpoint names a method of the subclass."""

    def __init__(self, model: EmulatedCrm) -> None:
        self.model = model
        self.log = RequestLog()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        endpoint = "unknown"
        try:
            if request.path.startswith(ADMIN_PREFIX):
                endpoint, args = ADMIN_URLS.bind_to_environ(environ).match()
                response = self._admin(request, str(endpoint))
            else:
                endpoint, args = self.urls.bind_to_environ(environ).match()
                response = self.dispatch(request, str(endpoint), dict(args))
        except NotFound:
            response = self.not_found(request)
        except HTTPException as exc:
            response = self.http_error(exc)
        self.log.add(
            LoggedRequest(request.method, request.path, endpoint, response.status_code, time.time())
        )
        return response(environ, start_response)

    # --- for subclasses ----------------------------------------------------------------------

    def dispatch(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        """Answer a request of the CRM's URL map (authentication, faults, the handler)."""
        raise NotImplementedError

    def not_found(self, request: Request) -> Response:
        """The CRM's reply to an unknown URL."""
        return json_response({"message": "The requested resource does not exist"}, 404)

    def http_error(self, exc: HTTPException) -> Response:
        """The CRM's reply to a URL known with another method (405), and the like."""
        return json_response({"message": exc.description or ""}, exc.code or 400)

    def seed(self, options: dict[str, Any]) -> Any:
        """Seed the demo data from ``POST /__emulator/seed``'s body; returns the reply body."""
        raise NotImplementedError

    def set_faults(self, options: dict[str, Any]) -> None:
        """Set the faults from ``POST /__emulator/faults``'s body (extend for a CRM's own)."""
        self.model.faults.configure(options)

    def reset(self) -> None:
        """Forget every record, credential and fault, and the request log."""
        self.model.reset()
        self.log.reset_counts()

    # --- the admin routes --------------------------------------------------------------------

    def _admin(self, request: Request, endpoint: str) -> Response:
        options: Any = {}
        if request.method == "POST":
            try:
                options = json.loads(request.get_data(as_text=True) or "{}")
            except json.JSONDecodeError as exc:
                return json_response({"error": f"the body is not JSON: {exc.msg}"}, 400)
            if not isinstance(options, dict):
                return json_response({"error": "the body must be a JSON object"}, 400)
        if endpoint == "admin_reset":
            self.reset()
            return json_response({"reset": True})
        if endpoint == "admin_seed":
            return json_response(self.seed(options))
        if endpoint == "admin_faults":
            try:
                self.set_faults(options)
            except (TypeError, ValueError, AttributeError) as exc:
                return json_response({"error": f"bad fault settings: {exc}"}, 400)
            return json_response({"faults": "set"})
        return json_response(
            {
                "counts": dict(self.log.counts()),
                "requests": [attrs.asdict(e) for e in self.log.snapshot(1000)],
            }
        )
