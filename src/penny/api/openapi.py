"""The JSON API's OpenAPI 3.1 document, generated from the route table and the models (their
JSON Schemas are msgspec's), and the reference page rendered from it (plain HTML of ours: no
script, no stylesheet or font from anywhere else)."""

from __future__ import annotations

import html
from functools import cache
from typing import Any, Final

import msgspec

from penny.api import models as m
from penny.api import resources as r
from penny.api.routes import ID, ROUTES, Route

_REF: Final = "#/components/schemas/{name}"
#: Every error status an operation may answer (the error object's kinds, and the door's own).
ERROR_STATUSES: Final = ("400", "401", "402", "404", "405", "409", "413", "422", "429", "503")
_ERROR_DESCRIPTIONS: Final = {
    "400": "Invalid request (a body or parameter at fault)",
    "401": "No valid bearer secret of this server's mode",
    "402": "Declined: the money is not there or a rule refused it",
    "404": "No such token, instrument, transaction or endpoint",
    "405": "The endpoint does not take this method",
    "409": "Conflicts with an earlier request",
    "413": "The body is too large",
    "422": "Cannot apply, or an Idempotency-Key reused with another request",
    "429": "The store stayed busy: retry with the same Idempotency-Key",
    "503": "The server failed: retry with the same Idempotency-Key",
}
_IDEMPOTENCY_KEY: Final = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes the request safe to retry: the same key and body replay the first response "
        "(with 'Idempotent-Replayed: true'); the key is the request's FPS CallerReference."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
}
_LIST_PARAMETERS: Final[dict[str, dict[str, Any]]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": r.MAX_LIMIT},
    "starting_after": {"type": "string", "description": "next_cursor of the page before"},
    "operation": {"type": "string", "enum": list(m.Operation.__args__)},  # type: ignore[attr-defined]
    "status": {"type": "string", "enum": list(m.Status.__args__)},  # type: ignore[attr-defined]
    "created_gte": {"type": "integer", "minimum": 0, "maximum": 99_999_999_999},
    "created_lt": {"type": "integer", "minimum": 0, "maximum": 99_999_999_999},
    "kind": {"type": "string", "enum": ["prepaid", "credit"]},
    "type": {"type": "string", "enum": list(m.EventType.__args__)},  # type: ignore[attr-defined]
}


def _ref(model: type[msgspec.Struct]) -> dict[str, str]:
    return {"$ref": _REF.format(name=model.__name__)}


def _parameters(route: Route) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if "{id}" in route.path:
        pattern = "^" + ID.pattern + "$"
        found.append(
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": pattern},
            }
        )
    for name in route.parameters:
        found.append(
            {"name": name, "in": "query", "required": False, "schema": _LIST_PARAMETERS[name]}
        )
    if route.method == "POST":
        found.append(_IDEMPOTENCY_KEY)
    return found


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": route.response.__doc__ or route.summary,
            "content": {"application/json": {"schema": _ref(route.response)}},
        }
    }
    for status in ERROR_STATUSES:
        responses[status] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": _ref(m.Error)}},
        }
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": _parameters(route),
        "responses": responses,
    }
    if route.body is not None:
        operation["requestBody"] = {
            # optional when every field has a default (a cancel, a settle): empty means {}
            "required": any(f.required for f in msgspec.structs.fields(route.body)),
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
        operation["description"] = (route.body.__doc__ or "").strip()
    return operation


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``/v1`` (made once)."""
    models = {route.response for route in ROUTES} | {route.body for route in ROUTES if route.body}
    models.add(m.Error)
    _, components = msgspec.json.schema_components(
        sorted(models, key=lambda t: t.__name__), ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Penny JSON API",
            "version": "1",
            "description": (
                "Penny's second front door: the payments of the FPS API as JSON, on the same "
                "ledger. Amounts are integer minor units. Authenticate with "
                "'Authorization: Bearer sk_test_…' (docs/api.md)."
            ),
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_STYLE: Final = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "code,pre{font-family:ui-monospace,monospace}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}"
)


def _schema_table(name: str, schema: dict[str, Any]) -> str:
    rows = []
    required = set(schema.get("required", ()))
    for field, spec in schema.get("properties", {}).items():
        shown = html.escape(msgspec.json.encode(spec).decode())
        mark = " (required)" if field in required else ""
        rows.append(
            f"<tr><td><code>{html.escape(field)}</code>{mark}</td>"
            f"<td><code>{shown}</code></td></tr>"
        )
    doc, title = html.escape(schema.get("description", "")), html.escape(name)
    return f'<h3 id="{title}">{title}</h3><p>{doc}</p><table>{"".join(rows)}</table>'


def _name_of(content: dict[str, Any]) -> str:
    ref: str = content["content"]["application/json"]["schema"]["$ref"]
    return html.escape(ref.rsplit("/", 1)[1])


def _operation_html(path: str, method: str, op: dict[str, Any]) -> list[str]:
    parts = [f"<h3>{method.upper()} <code>{html.escape(path)}</code></h3>"]
    parts.append(f"<p>{html.escape(op['summary'])}. {html.escape(op.get('description', ''))}</p>")
    names = ", ".join(f"<code>{html.escape(p['name'])}</code>" for p in op["parameters"])
    if names:
        parts.append(f"<p>Parameters: {names}</p>")
    if "requestBody" in op:
        body = _name_of(op["requestBody"])
        parts.append(f'<p>Body: <a href="#{body}">{body}</a></p>')
    ok = _name_of(op["responses"]["200"])
    parts.append(f'<p>Answers 200 with <a href="#{ok}">{ok}</a>, or an <a href="#Error">Error</a>.')
    return parts


def docs_page(document: dict[str, Any]) -> str:
    """The reference page: every operation, then every schema."""
    info = document["info"]
    parts = [f"<h1>{html.escape(info['title'])}</h1><p>{html.escape(info['description'])}</p>"]
    parts.append('<p>Machine-readable: <a href="/v1/openapi.json">/v1/openapi.json</a>.</p>')
    parts.append("<h2>Operations</h2>")
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            parts.extend(_operation_html(path, method, op))
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(_schema_table(name, schema))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Penny JSON API</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
