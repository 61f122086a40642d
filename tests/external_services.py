"""What Salesforce External Services registers, as a check of an OpenAPI document:
shared by tests/test_serve_openapi.py (the served /openapi.json) and
tests/test_serve_examples.py (the spec committed in
examples/salesforce_external_services/).

The External Services rules checked here come from Salesforce Help:
- "Schema Definition Support" / "Schema Definitions"
  (help.salesforce.com, platform.external_services_schema_def_definition.htm):
  OpenAPI 2.0 or 3.0 documents; GET, PATCH, PUT, POST and DELETE only; every parameter
  has a name; response headers are not supported; the supported data types are binary,
  boolean, date, datetime, double, enum, float, integer, long, string, any, objects,
  lists and additionalProperties maps.
- "Naming and Description Conventions" (platform.external_services_schema_def_naming_
  description.htm): the operation name comes from operationId; object and property
  names become Apex class and property names, so they must be valid Apex identifiers;
  descriptions beyond 1,333 characters are cut.
- "System Limits" (platform.external_services_schema_def_limits.htm): a JSON schema of
  at most 10,000,000 characters; at most 3,000 active operations and objects per org.
OpenAPI 3.1 constructs (``type`` lists with "null", ``const``, ``examples`` in schemas,
``webhooks``...) are not 3.0 and External Services does not read 3.1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["APEX_IDENTIFIER", "external_services_problems", "schemas"]

APEX_IDENTIFIER = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)")
METHODS = {"get", "put", "post", "patch", "delete"}
TYPES = {"string", "integer", "number", "boolean", "object", "array"}
FORMATS = {None, "date", "date-time", "int32", "int64", "float", "double", "binary", "byte"}
ONLY_31 = {
    "const",
    "examples",
    "prefixItems",
    "$schema",
    "$defs",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentSchemas",
    "dependentRequired",
    "if",
    "then",
    "else",
    "contentEncoding",
    "contentMediaType",
}


def schemas(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object inside ``node`` (a schema), with where it is."""
    if not isinstance(node, dict):
        return
    yield where, node
    for name, sub in node.get("properties", {}).items():
        yield from schemas(sub, f"{where}.{name}")
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            yield from schemas(node[key], f"{where}.{key}")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key, ())):
            yield from schemas(sub, f"{where}.{key}[{i}]")


def external_services_problems(doc: dict[str, Any]) -> list[str]:
    """What would keep Salesforce External Services from registering ``doc``."""
    problems: list[str] = []
    if not str(doc.get("openapi", "")).startswith("3.0."):
        problems.append(f"openapi is {doc.get('openapi')!r}, not 3.0.x")
    for key in ("webhooks", "jsonSchemaDialect"):
        if key in doc:
            problems.append(f"3.1 top-level key {key}")
    size = len(json.dumps(doc))
    if size > 10_000_000:
        problems.append(f"document of {size} characters")
    all_schemas: list[tuple[str, dict[str, Any]]] = []
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        if not APEX_IDENTIFIER.fullmatch(name):
            problems.append(f"schema name {name!r} is not an Apex identifier")
        all_schemas.extend(schemas(schema, name))
    seen: set[str] = set()
    operations = 0
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            operations += 1
            if method not in METHODS:
                problems.append(f"{where}: method not supported")
                continue
            op_id = op.get("operationId")
            if not op_id or not APEX_IDENTIFIER.fullmatch(op_id) or len(op_id) > 80:
                problems.append(f"{where}: operationId {op_id!r} is not an Apex identifier")
            if op_id in seen:
                problems.append(f"{where}: operationId {op_id!r} twice")
            seen.add(op_id)
            if not op.get("summary"):
                problems.append(f"{where}: no summary")
            if method == "get" and "requestBody" in op:
                problems.append(f"{where}: a GET with a request body")
            if len(op.get("description", "")) > 1333:
                problems.append(f"{where}: description longer than 1,333 characters")
            for p in op.get("parameters", ()):
                if not p.get("name") or not APEX_IDENTIFIER.fullmatch(p["name"]):
                    problems.append(f"{where}: parameter name {p.get('name')!r}")
                all_schemas.extend(schemas(p.get("schema"), f"{where} {p.get('name')}"))
            for content in op.get("requestBody", {}).get("content", {}).values():
                all_schemas.extend(schemas(content.get("schema"), f"{where} body"))
            for status, response in op.get("responses", {}).items():
                if "headers" in response:
                    problems.append(f"{where} {status}: response headers")
                for content in response.get("content", {}).values():
                    all_schemas.extend(schemas(content.get("schema"), f"{where} {status}"))
    if operations > 3000:
        problems.append(f"{operations} operations")
    for where, schema in all_schemas:
        if "$ref" in schema:
            target = schema["$ref"].removeprefix("#/components/schemas/")
            if target not in doc.get("components", {}).get("schemas", {}):
                problems.append(f"{where}: $ref {schema['$ref']} does not resolve")
            if len(schema) > 1:
                problems.append(f"{where}: keys beside $ref are ignored in 3.0")
            continue
        kind = schema.get("type")
        if not isinstance(kind, str) or kind not in TYPES:
            problems.append(f"{where}: type {kind!r}")
        if schema.get("format") not in FORMATS:
            problems.append(f"{where}: format {schema.get('format')!r}")
        for key in ONLY_31 & set(schema):
            problems.append(f"{where}: {key} is OpenAPI 3.1 / JSON Schema 2020-12")
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in schema and not isinstance(schema[key], bool):
                problems.append(f"{where}: numeric {key} is 3.1")
        for name in schema.get("properties", {}):
            if not APEX_IDENTIFIER.fullmatch(name):
                problems.append(f"{where}: property {name!r} is not an Apex identifier")
        if len(schema.get("description", "")) > 1333:
            problems.append(f"{where}: description longer than 1,333 characters")
    return problems
