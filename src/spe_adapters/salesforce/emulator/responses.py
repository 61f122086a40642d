"""Request parsing and replies in Salesforce's documented JSON shapes."""

from __future__ import annotations

import functools
import json
import time
from datetime import date, datetime
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from spe_adapters.emulator_kit import KitApp, RequestLog
from spe_adapters.salesforce.emulator import soql
from spe_adapters.salesforce.emulator.models import (
    FIELD_TYPES,
    SYSTEM_FIELDS,
    Org,
    RecordError,
    salesforce_time,
)

__all__ = ["MAX_COLLECTION", "EmulatorApp", "RequestLog"]

MAX_COLLECTION = 200
URLS = Map(
    [
        Rule("/services/oauth2/token", endpoint="token", methods=["POST"]),
        Rule("/services/data/", endpoint="versions", methods=["GET"]),
        Rule("/services/data/v<version>/limits", endpoint="limits", methods=["GET"]),
        Rule("/services/data/v<version>/limits/", endpoint="limits", methods=["GET"]),
        Rule("/services/data/v<version>/query", endpoint="query", methods=["GET"]),
        Rule("/services/data/v<version>/query/", endpoint="query", methods=["GET"]),
        Rule("/services/data/v<version>/query/<cursor>", endpoint="query_more", methods=["GET"]),
        Rule("/services/data/v<version>/queryAll", endpoint="query_all", methods=["GET"]),
        Rule("/services/data/v<version>/queryAll/", endpoint="query_all", methods=["GET"]),
        Rule("/services/data/v<version>/queryAll/<cursor>", endpoint="query_more", methods=["GET"]),
        Rule(
            "/services/data/v<version>/sobjects/<sobject>/describe",
            endpoint="describe",
            methods=["GET"],
        ),
        Rule(
            "/services/data/v<version>/sobjects/<sobject>/describe/",
            endpoint="describe",
            methods=["GET"],
        ),
        Rule("/services/data/v<version>/sobjects/<sobject>/", endpoint="create", methods=["POST"]),
        Rule(
            "/services/data/v<version>/sobjects/<sobject>/<record_id>",
            endpoint="record",
            methods=["GET", "PATCH", "DELETE"],
        ),
        Rule(
            "/services/data/v<version>/composite/sobjects",
            endpoint="collection",
            methods=["POST", "PATCH"],
        ),
        Rule(
            "/services/data/v<version>/composite/sobjects/<sobject>/<field>",
            endpoint="collection_upsert",
            methods=["PATCH"],
        ),
    ]
)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json", headers=headers)


def _error(status: int, code: str, message: str) -> Response:
    return _json([{"message": message, "errorCode": code}], status)


def _field(name: str, record: dict[str, Any]) -> Any:
    return record[name]


def _out(value: Any) -> Any:
    if isinstance(value, datetime):
        return salesforce_time(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


class EmulatorApp(KitApp):
    """The WSGI application behind the emulator's server (on the emulator kit: request
    log, faults and the ``/__emulator/`` admin routes are the kit's)."""

    urls = URLS

    def __init__(self, org: Org) -> None:
        super().__init__(org)
        self.org = org

    # --- plumbing ------------------------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        return _error(404, "NOT_FOUND", "The requested resource does not exist")

    def http_error(self, exc: HTTPException) -> Response:
        return _error(exc.code or 400, "METHOD_NOT_ALLOWED", exc.description or "")

    def seed(self, options: dict[str, Any]) -> Any:
        return self.org.seed(int(options.get("seed", 7)), leads=int(options.get("leads", 300)))

    def set_faults(self, options: dict[str, Any]) -> None:
        """The kit's fault settings, and ``expire_sessions``: every access token expires."""
        super().set_faults(options)
        if options.get("expire_sessions"):
            self.org.expire_sessions()

    def dispatch(self, request: Request, endpoint: str, args: dict[str, Any]) -> Response:
        if endpoint in ("token", "versions"):
            handler = getattr(self, endpoint)
            result: Response = handler(request, **args)
            return result
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        fault = self.org.faults.draw(write=endpoint.startswith("collection"))
        self.org.faults.delay()
        if fault == 401 or not self.org.session_valid(token):
            return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        with self.org.lock:
            self.org.api_used += 1
            used, limit = self.org.api_used, self.org.daily_api_limit
        if fault == 403 or used > limit:
            return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if fault is not None:
            return _error(fault, "SERVER_UNAVAILABLE", "Service temporarily unavailable")
        args.pop("version", None)
        response: Response = getattr(self, endpoint)(request, **args)
        response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{limit}"
        return response

    def _body(self, request: Request) -> Any:
        try:
            return json.loads(request.get_data(as_text=True) or "null")
        except json.JSONDecodeError as exc:
            raise _BadRequest("JSON_PARSER_ERROR", f"Unexpected character: {exc.msg}") from None

    # --- auth ------------------------------------------------------------------------------

    # OAuth token endpoint, /services/oauth2/token. Rules from Salesforce Help:
    # "OAuth 2.0 Username-Password Flow for Special Scenarios", "OAuth 2.0 JWT Bearer
    # Flow for Server-to-Server Integration" and "OAuth 2.0 Client Credentials Flow for
    # Server-to-Server Integration"; refusals are HTTP 400 with an OAuth error body
    # {"error": ..., "error_description": ...}.
    JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    def token(self, request: Request) -> Response:
        form = request.form
        grant = form.get("grant_type")
        if grant == "password":
            # username-password flow: the consumer key (client_id) and the user's password
            # (with the security token appended) are required
            username = form.get("username", "")
            ok = self.org.credentials.get(username) == form.get("password") and bool(
                form.get("client_id")
            )
            refusal = None if ok else ("invalid_grant", "authentication failure")
        elif grant == self.JWT_GRANT:
            refusal = self._jwt_refusal(str(form.get("assertion", "")))
        elif grant == "client_credentials":
            refusal = self._client_credentials_refusal(request)
        else:
            refusal = ("unsupported_grant_type", "grant type not supported")
        if refusal is not None:
            return _json({"error": refusal[0], "error_description": refusal[1]}, 400)
        base = request.host_url.rstrip("/")
        body = {
            "access_token": self.org.new_session(),
            "instance_url": base,
            "id": f"{base}/id/00D000000000001AAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": "emulator",
        }
        if grant == "client_credentials":
            # client credentials flow: the response has no refresh token; a new token is
            # requested with the same credentials when the session times out
            body["scope"] = "api"
        return _json(body)

    def _jwt_refusal(self, assertion: str) -> tuple[str, str] | None:
        """Why an RS256 assertion is refused (None: it is accepted).

        JWT Bearer Flow: ``iss`` is the connected app's consumer key, the signature is
        checked against the certificate uploaded to the app, ``sub`` is the username,
        ``exp`` is required, and ``aud`` must be https://login.salesforce.com (production),
        https://test.salesforce.com (sandbox) or an Experience Cloud site URL, never the
        org's My Domain or instance host ("audience is invalid").
        """
        import jwt

        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return "invalid_grant", "invalid assertion"
        key = self.org.jwt_keys.get(str(claims.get("iss")))
        if key is None:
            return "invalid_client_id", "client identifier invalid"
        audiences = [
            "https://test.salesforce.com" if self.org.sandbox else ("https://login.salesforce.com")
        ]
        audiences += sorted(u.rstrip("/") for u in self.org.community_urls)
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=audiences,
                # exp is checked below: Salesforce also takes it as a numeric string, the
                # form simple-salesforce's own JWT login sends
                options={"require": ["exp", "aud", "sub", "iss"], "verify_exp": False},
            )
        except jwt.InvalidAudienceError:
            return "invalid_grant", "audience is invalid"
        except jwt.PyJWTError:
            return "invalid_grant", "invalid assertion"
        try:
            expires = float(claims["exp"])
        except (TypeError, ValueError):
            return "invalid_grant", "invalid assertion"
        if expires <= time.time():
            return "invalid_grant", "expired authorization code"
        if str(claims.get("sub")) not in self.org.credentials:
            return "invalid_grant", "user hasn't approved this consumer"
        return None

    def _client_credentials_refusal(self, request: Request) -> tuple[str, str] | None:
        """Why a client credentials request is refused (None: it is accepted).

        Client Credentials Flow: the consumer key and secret come as ``client_id`` and
        ``client_secret`` in the body or in an HTTP Basic Authorization header; the
        app must have the flow enabled with a Run As user ("no client credentials user
        enabled" otherwise); the request goes to the org's My Domain (the emulator's
        host is the org's own, so it stands for one).
        """
        client_id = request.form.get("client_id")
        secret = request.form.get("client_secret")
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            client_id, secret = auth.username, auth.password
        app = self.org.client_apps.get(str(client_id))
        if app is None:
            return "invalid_client_id", "client identifier invalid"
        if secret != app[0]:
            return "invalid_client", "invalid client credentials"
        if app[1] is None or app[1] not in self.org.credentials:
            return "invalid_grant", "no client credentials user enabled"
        return None

    # --- the REST API ------------------------------------------------------------------------

    def versions(self, request: Request) -> Response:
        return _json([{"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}])

    def limits(self, request: Request) -> Response:
        return _json(
            {
                "DailyApiRequests": {
                    "Max": self.org.daily_api_limit,
                    "Remaining": self.org.daily_api_limit - self.org.api_used,
                }
            }
        )

    def describe(self, request: Request, sobject: str) -> Response:
        schema = FIELD_TYPES.get(sobject)
        if schema is None:
            return _error(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        fields = [
            {
                "name": n,
                "type": t,
                "createable": w,
                "updateable": w,
                "nillable": not r,
                "custom": n.endswith("__c"),
                "externalId": n == "SPE_Key__c",
            }
            for n, (t, w, r) in schema.items()
        ]
        fields += [
            {
                "name": n,
                "type": "datetime",
                "createable": False,
                "updateable": False,
                "nillable": False,
                "custom": False,
                "externalId": False,
            }
            for n in SYSTEM_FIELDS
        ]
        return _json({"name": sobject, "fields": fields})

    def _record_json(self, sobject: str, record: dict[str, Any], fields: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v59.0/sobjects/{sobject}/{record['Id']}",
            }
        }
        for name in fields:
            out[name] = _out(record.get(name))
        return out

    def query_all(self, request: Request) -> Response:
        """queryAll: the query, with the recycle bin's records too (IsDeleted true);
        its nextRecordsUrl says /query/ yet goes on with the same rows, as Salesforce's."""
        return self.query(request, include_deleted=True)

    def query(self, request: Request, include_deleted: bool = False) -> Response:
        text = request.args.get("q", "")
        try:
            parsed = soql.parse(text)
        except soql.SoqlError as exc:
            return _error(400, "MALFORMED_QUERY", str(exc))
        schema = FIELD_TYPES.get(parsed.sobject)
        if schema is None:
            return _error(400, "INVALID_TYPE", f"sObject type '{parsed.sobject}' is not supported.")
        unknown = sorted(f for f in parsed.referenced if f not in schema and f not in SYSTEM_FIELDS)
        if unknown:
            return _error(
                400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{parsed.sobject}'."
            )
        now = self.org.clock()
        with self.org.lock:
            source = list(self.org.records[parsed.sobject].values())
            if include_deleted:
                source += self.org.deleted[parsed.sobject].values()
            rows = [r for r in source if parsed.matches(r, now)]
            rows = [dict(r) for r in rows]
        for name, descending, nulls_last in reversed(parsed.order):
            present = [r for r in rows if r.get(name) is not None]
            missing = [r for r in rows if r.get(name) is None]
            present.sort(key=functools.partial(_field, name), reverse=descending)
            rows = present + missing if nulls_last else missing + present
        rows = rows[parsed.offset :]
        if parsed.limit is not None:
            rows = rows[: parsed.limit]
        if parsed.count_only:
            return _json({"totalSize": len(rows), "done": True, "records": []})
        out = [self._record_json(parsed.sobject, r, parsed.fields) for r in rows]
        return self._page(request, out, 0)

    def _batch_size(self, request: Request) -> int:
        options = request.headers.get("Sforce-Query-Options", "")
        for part in options.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "batchSize" and value.strip().isdigit():
                return max(200, min(2000, int(value)))
        return 2000

    def _page(self, request: Request, rows: list[dict[str, Any]], offset: int) -> Response:
        size = self._batch_size(request)
        page = rows[offset : offset + size]
        body: dict[str, Any] = {
            "totalSize": len(rows),
            "done": offset + size >= len(rows),
            "records": page,
        }
        if not body["done"]:
            with self.org.lock:
                cursor = f"01g{next(self.org._cursor_ids):015d}"
                self.org.cursors[cursor] = rows
            body["nextRecordsUrl"] = f"/services/data/v59.0/query/{cursor}-{offset + size}"
        return _json(body)

    def query_more(self, request: Request, cursor: str) -> Response:
        name, _, offset = cursor.rpartition("-")
        rows = self.org.cursors.get(name)
        if rows is None or not offset.isdigit():
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(request, rows, int(offset))

    def create(self, request: Request, sobject: str) -> Response:
        try:
            record_id = self.org.create(sobject, self._body(request) or {})
        except RecordError as exc:
            return _json(
                [{"message": exc.message, "errorCode": exc.code, "fields": exc.fields}], 400
            )
        return _json({"id": record_id, "success": True, "errors": []}, 201)

    def record(self, request: Request, sobject: str, record_id: str) -> Response:
        if request.method == "GET":
            record = self.org.get(sobject, record_id)
            if record is None:
                return _error(404, "NOT_FOUND", "The requested resource does not exist")
            fields = [f for f in record if f != "attributes"]
            return _json(self._record_json(sobject, record, fields))
        if request.method == "DELETE":
            try:
                self.org.delete(sobject, record_id)
            except RecordError as exc:
                return _json([{"message": exc.message, "errorCode": exc.code, "fields": []}], 404)
            return Response(status=204)
        try:
            self.org.update(sobject, record_id, self._body(request) or {})
        except RecordError as exc:
            return _json(
                [{"message": exc.message, "errorCode": exc.code, "fields": exc.fields}], 400
            )
        return Response(status=204)

    def _collection_body(self, request: Request) -> tuple[bool, list[dict[str, Any]]]:
        body = self._body(request) or {}
        records = body.get("records")
        if not isinstance(records, list):
            raise _BadRequest("INVALID_FIELD", "records is required")
        if len(records) > MAX_COLLECTION:
            raise _BadRequest(
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_COLLECTION} "
                "records into this call",
            )
        return bool(body.get("allOrNone", False)), records

    def _request_refusal(self, records: list[Any], sobject: str | None = None) -> Response | None:
        """The whole-request 400 for a collection with an unknown field or a value of
        the wrong JSON type in any record (None when every record reads)."""
        for record in records:
            if not isinstance(record, dict):
                return _error(400, "JSON_PARSER_ERROR", "Cannot deserialize a record")
            kind = sobject or str((record.get("attributes") or {}).get("type", ""))
            schema = FIELD_TYPES.get(kind)
            if schema is None:
                continue  # an unknown type fails per record (the record's own error)
            for name, value in record.items():
                if name == "attributes":
                    continue
                if name not in schema and name not in SYSTEM_FIELDS:
                    return _error(
                        400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {kind}"
                    )
                field_type = schema[name][0] if name in schema else "string"
                allowed = JSON_TYPES.get(field_type, (str, int, float))
                wrong = isinstance(value, list | dict) or (
                    value is not None
                    and (
                        not isinstance(value, allowed)
                        or (isinstance(value, bool) and bool not in allowed)
                    )
                )
                if wrong:
                    found = type(value).__name__
                    return _error(
                        400,
                        "JSON_PARSER_ERROR",
                        f"Cannot deserialize instance of {field_type} from {found} value "
                        f"{json.dumps(value)[:50]} for field {name}",
                    )
        return None

    def _fail_record(self, record: dict[str, Any], field: str | None = None) -> None:
        failing = self.org.faults.record_fault(
            record.get("Id"), record.get(field) if field else None
        )
        if failing:
            code = failing[1]
            raise RecordError(
                code,
                "unable to obtain exclusive access to this record"
                if code == "UNABLE_TO_LOCK_ROW"
                else "record rejected",
            )

    def collection(self, request: Request) -> Response:
        try:
            all_or_none, records = self._collection_body(request)
        except _BadRequest as exc:
            return _error(400, exc.code, exc.message)
        refusal = self._request_refusal(records)
        if refusal is not None:
            return refusal
        results = []
        with self.org.lock:
            snapshot = self.org.snapshot() if all_or_none else None
            for record in records:
                sobject = str((record.get("attributes") or {}).get("type", ""))
                try:
                    self._fail_record(record)
                    if request.method == "POST":
                        record_id = self.org.create(sobject, record)
                    else:
                        record_id = str(record.get("Id") or "")
                        self.org.update(sobject, record_id, record)
                    results.append({"id": record_id, "success": True, "errors": []})
                except RecordError as exc:
                    results.append(
                        {"id": record.get("Id"), "success": False, "errors": [exc.as_dict()]}
                    )
            if snapshot is not None and not all(r["success"] for r in results):
                self.org.restore(snapshot)
        return _json(self._all_or_none(all_or_none, results))

    def collection_upsert(self, request: Request, sobject: str, field: str) -> Response:
        try:
            all_or_none, records = self._collection_body(request)
        except _BadRequest as exc:
            return _error(400, exc.code, exc.message)
        refusal = self._request_refusal(records, sobject)
        if refusal is not None:
            return refusal
        results = []
        with self.org.lock:
            snapshot = self.org.snapshot() if all_or_none else None
            for record in records:
                try:
                    self._fail_record(record, field)
                    value = record.get(field)
                    if not value:
                        raise RecordError(
                            "REQUIRED_FIELD_MISSING",
                            f"Required fields are missing: [{field}]",
                            [field],
                        )
                    fields = {k: v for k, v in record.items() if k != field}
                    record_id, created = self.org.upsert(sobject, field, str(value), fields)
                    results.append(
                        {"id": record_id, "success": True, "errors": [], "created": created}
                    )
                except RecordError as exc:
                    results.append(
                        {"id": None, "success": False, "errors": [exc.as_dict()], "created": False}
                    )
            if snapshot is not None and not all(r["success"] for r in results):
                self.org.restore(snapshot)
        return _json(self._all_or_none(all_or_none, results))

    @staticmethod
    def _all_or_none(all_or_none: bool, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not all_or_none or all(r["success"] for r in results):
            return results
        out = []
        for r in results:
            if r["success"]:
                out.append(
                    {
                        "id": r["id"],
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                "message": "Record rolled back because not all records were "
                                "valid and the request was using AllOrNone header",
                                "fields": [],
                            }
                        ],
                    }
                )
            else:
                out.append(r)
        return out


# JSON types a field of each kind takes in a request body; anything else fails the
# whole request while the body is read (REST API Developer Guide, "sObject
# Collections": errors in the request itself, such as an unknown field or a value
# that cannot be deserialized, return HTTP 400 with an error array, not per-record
# results; "Status Codes and Error Responses": JSON_PARSER_ERROR, INVALID_FIELD)
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "double": (int, float),
    "int": (int,),
    "datetime": (str,),
    "date": (str,),
}


class _BadRequest(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
