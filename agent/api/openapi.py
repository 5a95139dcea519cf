"""The OpenAPI 3.1 document, built from the routes as declared (never by hand)."""
import re

from agent import __version__
from agent.api import validate
from agent.api.responses import RESPONSES, SCHEMAS

ERROR = {
    "type": "object",
    "required": ["error", "timestamp", "request_id"],
    "properties": {
        "error": {"type": "object", "required": ["code", "message", "details"],
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                 "details": {"type": "object"}}},
        "timestamp": {"type": "string", "format": "date-time"},
        "request_id": {"type": "string"},
        "documentation_url": {"type": "string"},
    },
}


PATH_INT = {"type": "integer", "minimum": 0, "maximum": validate.INT_MAX}
PATH_TEXT = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^/\\u0000]+$"}


def _operation(api, r) -> dict:
    params = [{"name": n, "in": "path", "required": True, "schema": PATH_INT if kind == "int" else PATH_TEXT}
              for n, kind in re.findall(r"<(\w+)(?::(\w+))?(?::[^>]*)?>", r.path)]
    for name, f in r.query.items():
        s = validate.field_schema(f)
        params.append({"name": name, "in": "query", "required": f.required, "schema": s,
                       **({"description": f.doc} if f.doc else {})})
    err = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    status, schema, media = (RESPONSES.get(f"{r.method} {r.path}", (200, {"type": "object"})) + ("application/json",))[:3]
    responses = {str(status): {"description": r.summary, "content": {media: {"schema": schema}}},
                 "400": err, "500": err}
    if r.access != "public":
        responses |= {"401": err, "403": err, "429": err}
    if r.body:
        responses |= {"413": err, "415": err}
    op_path = re.sub(r":\w+>", ">", r.path.lower())
    op = {"summary": r.summary, "operationId": f"{r.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', op_path).strip('_')}",
          "tags": [r.tag], "parameters": params, "responses": responses}
    if r.body:
        op["requestBody"] = {"required": False,
                             "content": {"application/json": {"schema": validate.schema(r.body)}}}
    op["security"] = [] if r.access == "public" else [{"bearer": []}]
    if r.deprecated:
        op["deprecated"] = True
    return op


def document(api) -> dict:
    paths: dict = {}
    for r in api.routes:
        path = re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", r.path)
        paths.setdefault(path, {})[r.method.lower()] = _operation(api, r)
    return {
        "openapi": "3.1.0",
        "info": {"title": "capbox agent API", "version": __version__,
                 "description": "Capture control, analysis and platform routes of the capbox appliance."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR, **SCHEMAS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "capbox_sk_… (full), capbox_pk_… (read-only), "
                                                          "capbox_tk_… (scoped, expiring)"}},
        },
    }
