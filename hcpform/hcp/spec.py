"""HCP's OpenAPI 3.0 definition (housecall.v1.yaml) as a contract for requests and responses."""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

SPEC_FILE = Path(__file__).with_name("housecall.v1.yaml")
HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE")
SCHEMA_PREFIX = "#/components/schemas/"
UNKNOWN_PARAMETER = "unknown_parameter"

# Formats (date-time, uuid, ...) are treated as annotations, as JSON Schema does by default:
# the definition puts `format: uuid` on ids like `pbpf_<hex>`, which a format checker rejects.

# OpenAPI-only keywords that JSON Schema either does not know or reads differently.
_DROPPED_KEYWORDS = frozenset(
    {
        "nullable",
        "example",
        "examples",
        "xml",
        "externalDocs",
        "discriminator",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_SCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_KEYWORDS = ("items", "additionalProperties", "not", "contains", "propertyNames")
_SCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf")

# Fields that HCP sends as null in live payloads although the definition types them as non-null
# (evidence: amp-labs/connectors providers/housecallPro/test/webhook-job-created.json and
# read-leads.json, both captured from a live account). Response validation allows null there
# unless strict=True, so that a client that copes with real HCP is not checked against a
# fiction. Requests are never relaxed.
LIVE_NULLABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Job", ("job_fields", "job_type")),
    ("Job", ("job_fields", "business_unit")),
    ("Job", ("locked_at",)),
    ("Job", ("recurrence_number",)),
    ("Job", ("recurrence_rule",)),
    ("Job", ("customer", "notes")),
    ("Schedule", ("scheduled_start",)),
    ("Schedule", ("scheduled_end",)),
    ("Lead", ("assigned_employee",)),
    ("Lead", ("lead_source",)),
    ("Lead", ("pipeline_status",)),
    ("Lead", ("address", "street_line_2")),
)

# HCP silently ignores unknown fields, so a misspelt field (say `adresses`) would be dropped
# without a word. The definition does not forbid extra fields (no additionalProperties: false),
# but for the three creates our client depends on we report unknown top-level fields anyway:
# it is the only way a typo in our client can surface before production.
STRICT_TOP_LEVEL: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/customers"),
        ("POST", "/customers/{customer_id}/addresses"),
        ("POST", "/jobs"),
    }
)

# From the POST /customers requestBody description.
CUSTOMER_CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "mobile_number",
    "home_number",
    "work_number",
)

# Error bodies HCP is known to send (see hcp-api.md section 7), for undocumented 4xx statuses.
ERROR_SHAPES: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "object", "properties": {"message": {"type": "string"}}}
            },
        },
        {"type": "object", "required": ["errors"], "properties": {"errors": {"type": "object"}}},
        {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}},
        {"type": "object", "maxProperties": 0},
    ]
}


@dataclass(frozen=True)
class Violation:
    """One way a request or response breaks the definition."""

    where: str  # "path", "method", "query" or "body"
    field: str  # the parameter or body field ("addresses[0].zip"); "" for the whole thing
    message: str
    code: str = ""  # UNKNOWN_PARAMETER for query names the definition does not declare

    def __str__(self) -> str:
        loc = f"{self.where}.{self.field}" if self.field else self.where
        return f"{loc}: {self.message}"


@dataclass(frozen=True)
class QueryParam:
    """A query parameter of an operation, normalised (array-ness, item type, enum)."""

    name: str
    required: bool
    is_array: bool
    value_type: str | None  # type of the value, or of each item for arrays
    enum: tuple[Any, ...] | None
    minimum: float | None


@dataclass(frozen=True)
class Operation:
    """A method on a path template, with what validation needs from it."""

    method: str
    template: str
    query_params: Mapping[str, QueryParam]
    request_schema: Mapping[str, Any] | None  # JSON body schema (JSON Schema), None if none
    body_required: bool
    takes_body: bool  # has any requestBody (JSON or not)
    responses: Mapping[str, Mapping[str, Any] | None]  # status -> OpenAPI schema (unconverted)
    security: tuple[str, ...]  # normalised scheme names ("company_api_key")
    raw: Mapping[str, Any] = field(repr=False)


# --------------------------------------------------------------------------- loading


@functools.cache
def load_spec() -> dict[str, Any]:
    """Return the parsed definition (cached; callers must not mutate it)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_FILE.open("rb") as fh:
        return yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader


def _pointer(doc: Mapping[str, Any], ref: str) -> Any:
    """Follow a local JSON pointer ("#/components/...")."""
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported: {ref}")
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def resolve(node: Any, doc: Mapping[str, Any] | None = None) -> Any:
    """Return node with non-schema $refs (parameters, responses, bodies) inlined.

    Schema refs stay refs (#/components/schemas/X) because the schemas are recursive (Company
    lists Company); they are turned into JSON Schema $defs by json_schema().
    """
    doc = doc if doc is not None else load_spec()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith(SCHEMA_PREFIX):
            return resolve(_pointer(doc, ref), doc)
        return {k: resolve(v, doc) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, doc) for v in node]
    return node


def _make_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Turn an OpenAPI `nullable: true` into JSON Schema."""
    kind = schema.get("type")
    if isinstance(kind, str) and not any(k in schema for k in (*_SCHEMA_LIST_KEYWORDS, "$ref")):
        out = dict(schema, type=[kind, "null"])
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    if schema.get("type") == ["null"] or schema == {}:
        return schema
    # allOf/$ref cases: `type: [object, null]` would still fail inside allOf branches.
    return {"anyOf": [{"type": "null"}, schema]}


def _coerce_default(schema: dict[str, Any]) -> None:
    """Fix the defect `type: number, default: '10'` (string defaults on numeric schemas)."""
    default = schema.get("default")
    if isinstance(default, str) and schema.get("type") in ("number", "integer"):
        try:
            schema["default"] = int(default) if schema["type"] == "integer" else float(default)
        except ValueError:
            del schema["default"]


def json_schema(node: Any) -> Any:
    """Convert an OpenAPI 3.0 schema object to JSON Schema 2020-12 (refs become #/$defs/X)."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        # OpenAPI 3.0 ignores siblings of $ref; `nullable` next to a $ref is still meant, though.
        ref = node["$ref"]
        if not ref.startswith(SCHEMA_PREFIX):
            return json_schema(resolve(node))
        out: dict[str, Any] = {"$ref": "#/$defs/" + ref[len(SCHEMA_PREFIX) :]}
        return _make_nullable(out) if node.get("nullable") is True else out
    out = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS or key.startswith("x-"):
            continue
        if key in _SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_KEYWORDS and isinstance(value, dict):
            out[key] = json_schema(value)
        elif key in _SCHEMA_LIST_KEYWORDS:
            subs = [json_schema(sub) for sub in value or []]
            if subs:  # the document has `allOf: []`, which JSON Schema forbids
                out[key] = subs
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if value and bound in node:
                out[key] = node[bound]
        else:
            out[key] = value
    if out.get("type") == "array" and "enum" in out:
        # Defect: `type: array, enum: [...]` with no `items` means "array of these values".
        out.setdefault("items", {"type": "string", "enum": out.pop("enum")})
    if "exclusiveMinimum" in out:
        out.pop("minimum", None)
    if "exclusiveMaximum" in out:
        out.pop("maximum", None)
    _coerce_default(out)
    if node.get("nullable") is True:
        out = _make_nullable(out)
    return out


def _patch_live_nullable(defs: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of defs where LIVE_NULLABLE properties also accept null."""
    defs = copy.deepcopy(defs)
    for name, path in LIVE_NULLABLE:
        node = defs[name]
        for i, prop in enumerate(path):
            props = _find_properties(node, prop)
            if props is None:
                raise KeyError(f"LIVE_NULLABLE: {name}.{'.'.join(path)} not in the definition")
            if i == len(path) - 1:
                props[prop] = _make_nullable(props[prop])
            else:
                node = props[prop]
    return defs


def _find_properties(node: dict[str, Any], prop: str) -> dict[str, Any] | None:
    """Find the `properties` mapping that defines prop (looking through allOf/anyOf)."""
    if prop in node.get("properties", {}):
        return node["properties"]
    for key in _SCHEMA_LIST_KEYWORDS:
        for sub in node.get(key, []):
            found = _find_properties(sub, prop)
            if found is not None:
                return found
    return None


def _refs(node: Any) -> Iterator[str]:
    """Yield the $defs names node refers to directly."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            yield ref[len("#/$defs/") :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@dataclass
class Contract:
    """The definition, compiled: path matchers, operations, converted schemas, validators."""

    doc: Mapping[str, Any]
    defs: dict[str, Any]
    live_defs: dict[str, Any]
    operations: dict[tuple[str, str], Operation]
    _matchers: list[tuple[int, str, re.Pattern[str], tuple[str, ...]]]
    _validators: dict[tuple[Any, ...], Draft202012Validator] = field(default_factory=dict)

    def match_path(self, path: str) -> list[tuple[str, dict[str, str]]]:
        """Return the templates matching a concrete path, most specific first."""
        found = []
        for _score, template, regex, names in self._matchers:
            m = regex.fullmatch(path)
            if m:
                found.append((template, dict(zip(names, m.groups(), strict=True))))
        return found

    def operation(self, method: str, path: str) -> tuple[Operation | None, list[Violation]]:
        """Find the operation for a concrete request, or explain why there is none."""
        method = method.upper()
        path = _clean_path(path)
        matches = self.match_path(path)
        if not matches:
            return None, [Violation("path", "", f"no path in the definition matches {path}")]
        # /jobs/lock is a literal path that also matches /jobs/{id}: prefer the most specific
        # template that defines this method (the way HCP's router would).
        for template, _params in matches:
            op = self.operations.get((method, template))
            if op is not None:
                return op, []
        template = matches[0][0]
        defined = sorted(m for (m, t) in self.operations if t == template)
        message = f"{method} is not defined for {template} (defined: {', '.join(defined)})"
        return None, [Violation("method", "", message)]

    def validator(self, schema: Mapping[str, Any], *, live: bool = False) -> Draft202012Validator:
        """Return a cached validator for a converted schema (with the needed $defs attached)."""
        key = (id(schema), live)
        found = self._validators.get(key)
        if found is None:
            found = Draft202012Validator(self.bundle(schema, live=live))
            self._validators[key] = found
        return found

    def bundle(self, schema: Mapping[str, Any], *, live: bool = False) -> dict[str, Any]:
        """Return schema plus the $defs it reaches, as a self-contained JSON Schema."""
        defs = self.live_defs if live else self.defs
        needed: dict[str, Any] = {}
        todo = list(_refs(schema))
        while todo:
            name = todo.pop()
            if name in needed:
                continue
            needed[name] = defs[name]
            todo.extend(_refs(defs[name]))
        out = dict(schema)
        if needed:
            out["$defs"] = needed
        out.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
        return out


def _clean_path(path: str) -> str:
    """Reduce a URL or path-with-query to a bare path without a trailing slash."""
    if "://" in path:
        path = urlsplit(path).path
    path = path.split("?", 1)[0] or "/"
    return path.rstrip("/") or "/"


def _query_param(raw: Mapping[str, Any]) -> QueryParam:
    """Normalise a query parameter, working around array params without `items`."""
    schema = raw.get("schema") or {}
    is_array = schema.get("type") == "array"
    target = (schema.get("items") or {}) if is_array else schema
    enum = target.get("enum")
    if enum is None and is_array:
        enum = schema.get("enum")  # defect: enum put on the array instead of its items
    value_type = target.get("type") or ("string" if is_array else None)
    return QueryParam(
        name=raw["name"],
        required=bool(raw.get("required")),
        is_array=is_array,
        value_type=value_type,
        enum=tuple(enum) if enum else None,
        minimum=target.get("minimum"),
    )


def _json_content(body: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """Return the application/json media type object of a requestBody/response, if any."""
    content = (body or {}).get("content") or {}
    for media, obj in content.items():
        if media.split(";")[0].strip() in ("application/json", "*/*"):
            return obj or {}
    return None


def _build_operation(
    doc: Mapping[str, Any], template: str, method: str, path_item: Mapping[str, Any]
) -> Operation:
    """Compile one operation, applying the definition's known defects' workarounds."""
    raw = resolve(path_item[method.lower()], doc)
    params: dict[tuple[str, str], Mapping[str, Any]] = {}
    for p in [*resolve(path_item.get("parameters") or [], doc), *(raw.get("parameters") or [])]:
        params[(p["in"], p["name"])] = p  # operation-level parameters override path-level ones
    query = {name: _query_param(p) for (where, name), p in params.items() if where == "query"}

    request_body = raw.get("requestBody")
    responses: dict[str, Mapping[str, Any] | None] = {}
    for status, response in (raw.get("responses") or {}).items():
        media = _json_content(response)
        responses[str(status)] = (media or {}).get("schema") if media is not None else None

    request_schema = None
    body_required = False
    takes_body = request_body is not None
    if method in ("GET", "HEAD"):
        # Defect: GET /jobs has a spurious requestBody, and GET /customers/{id}/addresses puts
        # its *response* schema there. GETs take no body; reuse the latter as the 200 schema.
        media = _json_content(request_body)
        if media and media.get("schema") and responses.get("200") is None:
            responses["200"] = media["schema"]
        takes_body = False
    elif request_body is not None:
        media = _json_content(request_body)
        if media is not None:
            request_schema = json_schema(media.get("schema") or {})
        body_required = bool(request_body.get("required"))
    schemes = [name for entry in raw.get("security") or [] for name in entry]
    return Operation(
        method=method,
        template=template,
        query_params=query,
        request_schema=request_schema,
        body_required=body_required,
        takes_body=takes_body,
        responses=responses,
        security=tuple(dict.fromkeys(scheme_key(n) for n in schemes)),
        raw=raw,
    )


def scheme_key(name: str) -> str:
    """Normalise a security scheme name: "Company API Key" -> "company_api_key".

    The definition's scheme names contain spaces, which code generators reject; callers use
    these keys instead (the file itself stays untouched).
    """
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def security_schemes() -> dict[str, dict[str, Any]]:
    """Return components.securitySchemes keyed by scheme_key(), each with its original name."""
    schemes = load_spec()["components"].get("securitySchemes") or {}
    return {scheme_key(name): dict(s, name_in_definition=name) for name, s in schemes.items()}


@functools.cache
def contract() -> Contract:
    """Return the compiled definition (built once per process)."""
    doc = load_spec()
    defs = {name: json_schema(s) for name, s in doc["components"]["schemas"].items()}
    operations: dict[tuple[str, str], Operation] = {}
    matchers = []
    for template, path_item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method.lower() in path_item:
                operations[(method, template)] = _build_operation(doc, template, method, path_item)
        names = tuple(re.findall(r"{([^}/]+)}", template))
        pattern = re.sub(r"\\{[^}/]+\\}", "([^/]+)", re.escape(template.rstrip("/")))
        literal = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
        matchers.append((literal, template, re.compile(pattern), names))
    matchers.sort(key=lambda m: (-m[0], m[1]))
    return Contract(
        doc=doc,
        defs=defs,
        live_defs=_patch_live_nullable(defs),
        operations=operations,
        _matchers=matchers,
    )


# --------------------------------------------------------------------------- public helpers


def match_path(path: str) -> tuple[str, dict[str, str]] | None:
    """Return (template, path params) for a concrete path, most specific template first."""
    found = contract().match_path(_clean_path(path))
    return found[0] if found else None


def find_operation(method: str, path: str) -> Operation | None:
    """Return the definition's operation for method + concrete path, or None."""
    return contract().operation(method, path)[0]


def schema_for(name: str, *, live: bool = False) -> dict[str, Any]:
    """Return components.schemas[name] as a self-contained JSON Schema."""
    c = contract()
    return c.bundle({"$ref": f"#/$defs/{name}"}, live=live)


# --------------------------------------------------------------------------- requests


def _normalise_query(query: Any) -> list[tuple[str, list[str]]]:
    """Accept dict[str, list[str] | str] or a werkzeug MultiDict; return (key, values) pairs."""
    if query is None:
        return []
    if hasattr(query, "lists"):
        return [(k, list(v)) for k, v in query.lists()]
    pairs = []
    for key, value in dict(query).items():
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            pairs.append((key, [str(value)]))
        else:
            pairs.append((key, [str(v) for v in value]))
    return pairs


def _check_value(param: QueryParam, value: str) -> str | None:
    """Check one query value against the parameter's type and enum."""
    kind = param.value_type
    if kind in ("number", "integer"):
        try:
            number = float(value)
        except ValueError:
            return f"{value!r} is not a number"
        if not math.isfinite(number):
            return f"{value!r} is not a finite number"
        if kind == "integer" and not re.fullmatch(r"[+-]?\d+", value.strip()):
            return f"{value!r} is not an integer"
        if param.minimum is not None and number < param.minimum:
            return f"{value!r} is below the minimum {param.minimum}"
    elif kind == "boolean" and value not in ("true", "false"):
        return f"{value!r} is not a boolean (true/false)"
    if param.enum is not None and value not in [str(e) for e in param.enum]:
        return f"{value!r} is not one of {list(param.enum)}"
    return None


def _check_query(op: Operation, query: Any) -> list[Violation]:
    """Check query parameter names, array syntax (`name[]`) and values."""
    out: list[Violation] = []
    seen: set[str] = set()
    for key, values in _normalise_query(query):
        bracketed = key.endswith("[]")
        name = key[:-2] if bracketed else key
        seen.add(name)
        param = op.query_params.get(name)
        if param is None:
            known = ", ".join(
                f"{p.name}[]" if p.is_array else p.name for p in op.query_params.values()
            )
            out.append(
                Violation(
                    "query",
                    key,
                    f"unknown parameter for {op.method} {op.template} (known: {known or 'none'})",
                    UNKNOWN_PARAMETER,
                )
            )
            continue
        if param.is_array and not bracketed:
            # HCP answers a bare `status=paid` with 422 {"errors": {"status": "must be an array"}}.
            out.append(Violation("query", key, f"must be an array: send it as {name}[]"))
        elif bracketed and not param.is_array:
            out.append(Violation("query", key, f"is not an array parameter: send it as {name}"))
        elif not param.is_array and len(values) > 1:
            out.append(Violation("query", key, "given more than once"))
        for value in values:
            problem = _check_value(param, value)
            if problem:
                out.append(Violation("query", key, problem))
    for param in op.query_params.values():
        if param.required and param.name not in seen:
            out.append(Violation("query", param.name, "required parameter is missing"))
    return out


def _field(path: Iterable[Any]) -> str:
    """Render a jsonschema error path as `addresses[0].street`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _is_null_branch(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null" and len(schema) == 1


def _translate(error: ValidationError) -> list[Violation]:
    """Turn a jsonschema error into readable violations (unwrapping nullable anyOfs)."""
    where = _field(error.absolute_path)
    if error.validator == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [
            Violation("body", f"{where}.{name}" if where else name, "is missing")
            for name in error.validator_value
            if name not in instance
        ]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set((error.schema or {}).get("properties", {}))
        return [
            Violation("body", f"{where}.{name}" if where else name, "is not an allowed field")
            for name in error.instance
            if name not in allowed
        ]
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches = error.validator_value
        useful = [
            e
            for e in error.context
            if not _is_null_branch(branches[e.schema_path[0]] if e.schema_path else None)
        ]
        # A nullable wrapper (anyOf [null, X]) fails only for X's reasons: report those.
        non_null = [b for b in branches if not _is_null_branch(b)]
        if useful and len(non_null) == 1:
            return [v for e in useful for v in _translate(e)]
    return [Violation("body", where, error.message)]


def _iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _iso_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _extra_rules(op: Operation, body: Any) -> list[Violation]:
    """Rules the definition states in prose rather than in the schema."""
    out: list[Violation] = []
    if not isinstance(body, dict):
        return out
    key = (op.method, op.template)
    if key == ("POST", "/customers"):
        # requestBody description: "One of first_name, last_name, email, mobile_number,
        # home_number, work_number are required."
        given = [f for f in CUSTOMER_CONTACT_FIELDS if isinstance(body.get(f), str) and body[f]]
        if not any(body[f].strip() for f in given):
            names = ", ".join(CUSTOMER_CONTACT_FIELDS)
            out.append(Violation("body", "", f"one of {names} is required"))
    if key == ("POST", "/jobs") and isinstance(body.get("schedule"), dict):
        schedule = body["schedule"]
        for name in ("scheduled_start", "scheduled_end"):
            value = schedule.get(name)
            if isinstance(value, str) and not _iso_datetime(value):
                out.append(
                    Violation("body", f"schedule.{name}", f"{value!r} is not an ISO-8601 date-time")
                )
        start_date = schedule.get("anytime_start_date")
        if schedule.get("anytime") is True and not start_date:
            out.append(
                Violation("body", "schedule.anytime_start_date", "is required when anytime is true")
            )
        if isinstance(start_date, str) and not _iso_date(start_date):
            out.append(
                Violation(
                    "body",
                    "schedule.anytime_start_date",
                    f"{start_date!r} is not an ISO-8601 date (YYYY-MM-DD)",
                )
            )
    if key in STRICT_TOP_LEVEL and op.request_schema is not None:
        allowed = set(op.request_schema.get("properties", {}))
        if "$ref" in op.request_schema:
            target = contract().defs[op.request_schema["$ref"].rsplit("/", 1)[-1]]
            allowed = set(target.get("properties", {}))
        for name in body:
            if name not in allowed:
                out.append(
                    Violation(
                        "body",
                        name,
                        "unknown field (HCP ignores it silently; "
                        f"allowed: {', '.join(sorted(allowed))})",
                    )
                )
    return out


def check_request(method: str, path: str, query: Any = None, body: Any = None) -> list[Violation]:
    """Return structured violations of the definition by a request (empty = valid).

    body is the decoded JSON body, None meaning "no body".
    """
    c = contract()
    op, problems = c.operation(method, path)
    if op is None:
        return problems
    out = _check_query(op, query)
    if op.method in ("GET", "HEAD"):
        if body is not None:
            out.append(Violation("body", "", f"{op.method} requests take no body"))
        return out
    if op.request_schema is None:
        if not op.takes_body and body not in (None, {}):
            out.append(Violation("body", "", f"{op.method} {op.template} takes no request body"))
        return out  # no body, or a non-JSON (multipart) one that we cannot check
    if body is None:
        needs = op.body_required or (op.method, op.template) in STRICT_TOP_LEVEL
        if needs or _schema_requires_fields(c, op.request_schema):
            out.append(Violation("body", "", "a JSON request body is required"))
        return out
    validator = c.validator(op.request_schema)
    errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        out.extend(_translate(error))
    out.extend(_extra_rules(op, body))
    return _dedupe(out)


def _dedupe(violations: Iterable[Violation]) -> list[Violation]:
    """Drop repeats (jsonschema reports a missing field once per missing field, per branch)."""
    return list(dict.fromkeys(violations))


def _schema_requires_fields(c: Contract, schema: Mapping[str, Any]) -> bool:
    if "$ref" in schema:
        schema = c.defs[schema["$ref"].rsplit("/", 1)[-1]]
    return bool(schema.get("required"))


def validate_request(method: str, path: str, query: Any = None, body: Any = None) -> list[str]:
    """Return human-readable violations of the definition by a request (empty list = valid).

    query is dict[str, list[str]] (or a MultiDict) with array params keyed `name[]`; body is the
    decoded JSON body, None for none.
    """
    return [str(v) for v in check_request(method, path, query, body)]


# --------------------------------------------------------------------------- responses


def response_schema(
    method: str, path: str, status: int | str, *, strict: bool = False
) -> dict[str, Any] | None:
    """Return the JSON Schema for a response, or None when the definition documents none.

    Unless strict, it allows null where HCP is known to send null (LIVE_NULLABLE).
    """
    c = contract()
    op, _ = c.operation(method, path)
    if op is None:
        return None
    schema = _documented_response(op, str(status))
    if schema is None:
        return None
    return c.bundle(json_schema(schema), live=not strict)


def _documented_response(op: Operation, status: str) -> Mapping[str, Any] | None:
    for key in (status, f"{status[0]}XX", f"{status[0]}xx", "default"):
        if key in op.responses:
            return op.responses[key]
    return None


@functools.cache
def _response_validator(method: str, template: str, status: str, live: bool) -> Any:
    c = contract()
    op = c.operations[(method, template)]
    schema = _documented_response(op, status)
    if schema is None:
        return None
    return Draft202012Validator(c.bundle(json_schema(schema), live=live))


def validate_response(
    method: str, path: str, status: int, body: Any, *, strict: bool = False
) -> list[str]:
    """Return human-readable violations of the definition by a response (empty list = valid).

    Undocumented 2xx statuses are violations; undocumented 4xx JSON bodies must have one of
    HCP's known error shapes; 5xx bodies are not checked. strict=True checks against the
    definition alone, without the LIVE_NULLABLE allowances.
    """
    c = contract()
    op, problems = c.operation(method, path)
    if op is None:
        return [str(v) for v in problems]
    code = str(status)
    documented = any(k in op.responses for k in (code, f"{code[0]}XX", "default"))
    if not documented:
        if code.startswith("2"):
            listed = ", ".join(sorted(op.responses)) or "none"
            return [f"status: {code} is not documented for {op.method} {op.template} ({listed})"]
        if code.startswith("4") and isinstance(body, dict):
            errors = Draft202012Validator(ERROR_SHAPES).iter_errors(body)
            if any(True for _ in errors):
                return [f"body: {code} body is none of HCP's known error shapes"]
        return []
    validator = _response_validator(op.method, op.template, code, not strict)
    if validator is None:
        return []
    errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    return [str(v) for v in _dedupe(v for e in errors for v in _translate(e))]
