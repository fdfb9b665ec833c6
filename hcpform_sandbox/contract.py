"""HCP's OpenAPI definition (housecall.v1.yaml) as a contract, checked by openapi-core.

openapi-core finds the operation and checks parameters and bodies; this module adds what the
definition cannot say: mends for its known defects (in memory, the file stays as HCP publishes
it) and a few rules for how live HCP behaves (Rails-style `name[]` arrays, prose-only rules,
creates that drop unknown fields silently, fields sent as null although typed non-null).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema_path import SchemaPath
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.datatypes import PathOperationServer
from openapi_core.templating.paths.exceptions import OperationNotFound, PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.templating.responses.exceptions import ResponseFinderError
from openapi_core.validation.request.exceptions import (
    MissingRequiredParameter,
    MissingRequiredRequestBody,
    ParameterValidationError,
)
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
)
from openapi_core.validation.response.validators import V30ResponseDataValidator
from werkzeug.datastructures import Headers, ImmutableMultiDict, MultiDict

SPEC_FILE = Path(__file__).with_name("housecall.v1.yaml")
SERVER = "https://api.housecallpro.com"  # the definition's only server
UNKNOWN_PARAMETER = "unknown_parameter"
NO_FORMATS: dict[str, Any] = {}  # formats are annotations: ids typed `uuid` are `pbpf_<hex>`

# HCP drops unknown fields without a word, so a misspelt field (`adresses`) would vanish. For the
# writes our client depends on, unknown top-level fields are violations (and the body is
# required): the only way such a typo can surface before production.
STRICT_TOP_LEVEL = frozenset(
    {
        ("POST", "/customers"),
        ("POST", "/customers/{customer_id}/addresses"),
        ("POST", "/jobs"),
        ("POST", "/estimates"),
        ("POST", "/leads"),
        ("PUT", "/jobs/{job_id}/dispatch"),
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
# Fields HCP sends as null although the definition types them non-null (payloads captured from
# live accounts: amp-labs/connectors housecallPro webhook-job-created.json and read-leads.json).
# Responses may carry null there unless strict; requests are never relaxed.
LIVE_NULLABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Job", ("job_fields", "job_type")),
    ("Job", ("job_fields", "business_unit")),
    ("Job", ("locked_at",)),
    ("Job", ("recurrence_number",)),
    ("Job", ("recurrence_rule",)),
    ("Job", ("customer", "notes")),
    ("Schedule", ("scheduled_start",)),
    ("Schedule", ("scheduled_end",)),
    ("Estimate", ("customer", "notes")),
    ("EstimateOption", ("approval_status",)),
    ("Lead", ("assigned_employee",)),
    ("Lead", ("lead_source",)),
    ("Lead", ("pipeline_status",)),
    ("Lead", ("address", "street_line_2")),
)
# Error bodies HCP is known to send (hcp-api.md section 7), for undocumented 4xx statuses.
ERROR_SHAPES = Draft202012Validator(
    {
        "anyOf": [
            {"required": ["error"], "properties": {"error": {"type": "object"}}},
            {"required": ["errors"], "properties": {"errors": {"type": "object"}}},
            {"required": ["message"], "properties": {"message": {"type": "string"}}},
            {"maxProperties": 0},
        ],
        "type": "object",
    }
)


@dataclass(frozen=True)
class Violation:
    """One way a request breaks the definition."""

    where: str  # "path", "method", "query" or "body"
    field: str  # the parameter or body field ("addresses[0].zip"); "" for the whole thing
    message: str
    code: str = ""  # UNKNOWN_PARAMETER for query names the definition does not declare

    def __str__(self) -> str:
        loc = f"{self.where}.{self.field}" if self.field else self.where
        return f"{loc}: {self.message}"


@dataclass(frozen=True)
class Checked:
    """A request's operation template (None when HCP has no such operation) and violations."""

    template: str | None
    violations: list[Violation]


class _Request:
    """The request protocol openapi-core reads (method, path and its template, query, body)."""

    host_url = SERVER
    content_type = "application/json"

    def __init__(
        self,
        method: str,
        path: str,
        found: PathOperationServer,
        query: MultiDict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        self.method = method.lower()
        self.path = path
        self.path_pattern = found.path_result.pattern  # found already: see _KnownPaths
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query or ()),
            header=Headers(),
            path=found.path_result.variables or {},
        )
        self.body = b"" if body is None else json.dumps(body).encode()


class _Response:
    """The response protocol openapi-core reads."""

    content_type = "application/json"

    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.headers = Headers()
        self.data = None if body is None else json.dumps(body).encode()


class _KnownPaths(APICallPathFinder):
    """openapi-core's path finder, remembering operations found by their template."""

    def __init__(self, spec: SchemaPath, base_url: str | None = None) -> None:
        super().__init__(spec, base_url)
        self._found: dict[tuple[str, str], PathOperationServer] = {}

    def find(self, method: str, name: str) -> PathOperationServer:
        """Find the operation for a template URL, once per template."""
        key = (method, name)
        if key not in self._found:
            self._found[key] = super().find(method, name)
        return self._found[key]


# --------------------------------------------------------------------------- the definition


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _deref(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def _json_schema(body: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    media = ((body or {}).get("content") or {}).get("application/json")
    return None if media is None else media.get("schema") or {}


def mend(doc: dict[str, Any]) -> dict[str, Any]:
    """Work around the definition's known defects, in place; return doc."""
    for node in list(_nodes(doc)):
        default = node.get("default")
        if isinstance(default, str) and node.get("type") in ("number", "integer"):
            del node["default"]  # `type: number, default: '10'`
        if node.get("type") == "array" and "items" not in node:
            # Arrays without items, some with the items' enum put on the array itself.
            node["items"] = {"type": "string"}
            if "enum" in node:
                node["items"]["enum"] = node.pop("enum")
        if node.get("allOf") == []:
            del node["allOf"]  # `allOf: []`, which the spec validator refuses
    for template, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody") if isinstance(op, dict) else None
            if body is None:
                continue
            if method in ("get", "head"):
                # GET /jobs has a spurious body; GET /customers/{id}/addresses puts its response
                # schema there. GETs take no body: keep the latter as the 200 response.
                del op["requestBody"]
                ok = op.setdefault("responses", {}).setdefault("200", {"description": "OK"})
                ok.setdefault("content", body.get("content"))
                continue
            schema = _json_schema(body)
            needs_fields = schema is not None and bool(_deref(doc, schema).get("required"))
            if needs_fields or (method.upper(), template) in STRICT_TOP_LEVEL:
                body["required"] = True  # the definition never marks a body required
    return doc


def _properties(doc: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a schema's properties, looking through $ref and allOf."""
    schema = _deref(doc, schema)
    out = dict(schema.get("properties") or {})
    for sub in schema.get("allOf") or []:
        out.update(_properties(doc, sub))
    return out


def _live(doc: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the mended definition where LIVE_NULLABLE fields also accept null."""
    doc = copy.deepcopy(doc)
    for name, path in LIVE_NULLABLE:
        node: Mapping[str, Any] = doc["components"]["schemas"][name]
        for prop in path[:-1]:
            node = _properties(doc, node)[prop]
        props = _deref(doc, node)["properties"]
        props[path[-1]] = dict(_deref(doc, props[path[-1]]), nullable=True)
    return doc


class Contract:
    """The definition, loaded once: openapi-core validators plus HCP's quirks."""

    def __init__(self, spec_file: Path = SPEC_FILE) -> None:
        with spec_file.open("rb") as fh:
            raw = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
        self.doc = mend(raw)
        spec = OpenAPI.from_dict(self.doc).spec  # also checks the mended definition is valid
        live = SchemaPath.from_dict(_live(self.doc))
        # Built once: openapi-core's validators are its slow part (it walks the definition).
        options: dict[str, Any] = {"format_validators": NO_FORMATS, "path_finder_cls": _KnownPaths}
        self._finder = APICallPathFinder(spec)
        self._params = V30RequestParametersValidator(spec, **options)
        self._body = V30RequestBodyValidator(spec, **options)
        self._responses = {
            False: V30ResponseDataValidator(live, **options),
            True: V30ResponseDataValidator(spec, **options),
        }
        self.operations = {
            (method.upper(), template): op
            for template, item in self.doc["paths"].items()
            for method, op in item.items()
            if method in ("get", "put", "post", "delete", "patch", "head")
        }
        self._query: dict[tuple[str, str], dict[str, bool]] = {}  # name -> is an array
        self._required: set[tuple[str, str]] = set()  # operations with required query params
        for (method, template), op in self.operations.items():
            params = [
                *(self.doc["paths"][template].get("parameters") or []),
                *op.get("parameters", []),
            ]
            query = [p for p in params if p["in"] == "query"]
            self._query[(method, template)] = {
                p["name"]: p["schema"].get("type") == "array" for p in query
            }
            if any(p.get("required") for p in query):
                self._required.add((method, template))
        self._strict_fields = {
            key: set(_properties(self.doc, _json_schema(self.operations[key]["requestBody"]) or {}))
            for key in STRICT_TOP_LEVEL
        }

    def find(self, method: str, path: str) -> PathOperationServer:
        """Find a request's operation in the definition (raises openapi-core's PathError)."""
        return self._finder.find(method.lower(), SERVER + _clean_path(path))

    def template(self, method: str, path: str) -> str | None:
        """Return the definition's path template for a request, or None."""
        try:
            return str(self.find(method, path).path_result.pattern)
        except PathError:
            return None

    def check_request(self, method: str, path: str, query: Any = None, body: Any = None) -> Checked:
        """Check a request (query as a MultiDict or dict, body decoded, None for none)."""
        method, path = method.upper(), _clean_path(path)
        try:
            found = self.find(method, path)
        except OperationNotFound:
            return Checked(None, [Violation("method", "", f"{method} is not defined for {path}")])
        except PathError:
            return Checked(
                None, [Violation("path", "", f"no path in the definition matches {path}")]
            )
        template = str(found.path_result.pattern)
        key = (method, template)
        plain, out = self._rails_query(key, query)
        op = self.operations[key]
        if body is not None and "requestBody" not in op:
            out.append(Violation("body", "", f"{method} {template} takes no request body"))
        request = _Request(method, path, found, plain, body)
        if plain or key in self._required:
            out += [v for e in self._params.iter_errors(request) for v in _parameter(e)]
        out += [v for e in self._body.iter_errors(request) for v in _body(e)]
        out += self._body_rules(key, body)
        return Checked(template, list(dict.fromkeys(out)))

    def _rails_query(
        self, key: tuple[str, str], query: Any
    ) -> tuple[MultiDict[str, str], list[Violation]]:
        """Read HCP's Rails-style `name[]` arrays into plain names, checking the syntax."""
        known = self._query[key]
        plain: MultiDict[str, str] = MultiDict()
        out: list[Violation] = []
        for sent, values in _pairs(query):
            name = sent.removesuffix("[]")
            if name not in known:
                names = ", ".join(f"{n}[]" if arr else n for n, arr in known.items()) or "none"
                message = f"unknown parameter for {key[0]} {key[1]} (known: {names})"
                out.append(Violation("query", sent, message, UNKNOWN_PARAMETER))
                continue
            if known[name] and sent == name:
                # HCP answers a bare `status=paid` with 422 {"errors": {"status": "must be an
                # array"}}.
                out.append(Violation("query", sent, f"must be an array: send it as {name}[]"))
            elif sent != name and not known[name]:
                out.append(
                    Violation("query", sent, f"is not an array parameter: send it as {name}")
                )
            elif not known[name] and len(values) > 1:
                out.append(Violation("query", sent, "given more than once"))
            plain.setlist(name, values)
        return plain, out

    def _body_rules(self, key: tuple[str, str], body: Any) -> list[Violation]:
        """Rules the definition states in prose, and the strict creates' unknown fields."""
        if not isinstance(body, dict):
            return []
        out: list[Violation] = []
        if key == ("POST", "/customers"):
            if not any(
                isinstance(body.get(f), str) and body[f].strip() for f in CUSTOMER_CONTACT_FIELDS
            ):
                names = ", ".join(CUSTOMER_CONTACT_FIELDS)
                out.append(Violation("body", "", f"one of {names} is required"))
        schedule = body.get("schedule")
        if key == ("POST", "/estimates") and isinstance(schedule, dict):
            for name in ("start_time", "end_time"):
                value = schedule.get(name)
                if isinstance(value, str) and not _iso(datetime, value):
                    message = f"{value!r} is not an ISO-8601 date-time"
                    out.append(Violation("body", f"schedule.{name}", message))
        if key == ("POST", "/jobs") and isinstance(schedule, dict):
            for name in ("scheduled_start", "scheduled_end"):
                value = schedule.get(name)
                if isinstance(value, str) and not _iso(datetime, value):
                    message = f"{value!r} is not an ISO-8601 date-time"
                    out.append(Violation("body", f"schedule.{name}", message))
            start = schedule.get("anytime_start_date")
            if schedule.get("anytime") is True and not start:
                message = "is required when anytime is true"
                out.append(Violation("body", "schedule.anytime_start_date", message))
            if isinstance(start, str) and not _iso(date, start):
                message = f"{start!r} is not an ISO-8601 date (YYYY-MM-DD)"
                out.append(Violation("body", "schedule.anytime_start_date", message))
        allowed = self._strict_fields.get(key)
        for name in body if allowed is not None else ():
            if name not in allowed:
                listed = ", ".join(sorted(allowed))
                message = f"unknown field (HCP ignores it silently; allowed: {listed})"
                out.append(Violation("body", name, message))
        return out

    def check_response(
        self, method: str, path: str, status: int, body: Any, *, strict: bool = False
    ) -> list[str]:
        """Return violations of the definition by a response (empty = valid).

        Undocumented 2xx statuses are violations; undocumented 4xx JSON bodies must have one of
        HCP's known error shapes; 5xx bodies are not checked. strict=True leaves out the
        LIVE_NULLABLE allowances.
        """
        try:
            found = self.find(method, path)
        except PathError:
            return [f"path: no {method} operation in the definition matches {path}"]
        template = str(found.path_result.pattern)
        responses = self.operations[(method.upper(), template)].get("responses") or {}
        code = str(status)
        if not any(k in responses for k in (code, f"{code[0]}XX", "default")):
            if code.startswith("2"):
                listed = ", ".join(sorted(responses)) or "none"
                return [f"status: {code} is not documented for {method} {template} ({listed})"]
            if code.startswith("4") and isinstance(body, dict) and not ERROR_SHAPES.is_valid(body):
                return [f"body: {code} body is none of HCP's known error shapes"]
            return []
        request = _Request(method, _clean_path(path), found)
        errors = self._responses[strict].iter_errors(request, _Response(status, body))
        return [str(v) for e in errors for v in _body(e)]


# --------------------------------------------------------------------------- error translation


def _parameter(error: Exception) -> list[Violation]:
    if isinstance(error, MissingRequiredParameter):
        return [Violation(error.location, error.name, "required parameter is missing")]
    if isinstance(error, ParameterValidationError):
        cause = error.__cause__
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            return [Violation(error.location, error.name, e.message) for e in schema_errors]
        return [Violation(error.location, error.name, str(cause or error))]
    return [Violation("query", "", str(error))]


def _body(error: Exception) -> list[Violation]:
    if isinstance(error, MissingRequiredRequestBody):
        return [Violation("body", "", "a JSON request body is required")]
    if isinstance(error, ResponseFinderError):
        return [Violation("status", "", str(error))]
    schema_errors = getattr(error.__cause__, "schema_errors", None)
    if not schema_errors:
        return [Violation("body", "", str(error.__cause__ or error))]
    ordered = sorted(schema_errors, key=lambda e: [str(p) for p in e.absolute_path])
    # A null where none is allowed is reported twice ("None for not nullable", "None is not of
    # type"): keep the second, which names the type.
    kept = [e for e in ordered if e.message != "None for not nullable"]
    return list(dict.fromkeys(v for e in kept for v in _translate(e)))


def _translate(error: ValidationError) -> list[Violation]:
    """Turn a jsonschema error into readable violations, one per missing or unknown field."""
    where = _field(error.absolute_path)
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        names = [n for n in error.validator_value if n not in instance]
        return [Violation("body", f"{where}.{n}" if where else n, "is missing") for n in names]
    return [Violation("body", where, error.message)]


def _field(path: Iterable[Any]) -> str:
    """Render a jsonschema error path as `addresses[0].street`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pairs(query: Any) -> list[tuple[str, list[str]]]:
    """Accept a MultiDict or dict[str, list[str] | str]; return (key, values) pairs."""
    if query is None:
        return []
    if hasattr(query, "lists"):
        return [(k, list(v)) for k, v in query.lists()]
    return [
        (k, [str(x) for x in v] if isinstance(v, list | tuple) else [str(v)])
        for k, v in query.items()
    ]


def _clean_path(path: str) -> str:
    """Reduce a URL or path-with-query to a bare path without a trailing slash."""
    path = urlsplit(path).path if "://" in path else path.split("?", 1)[0]
    return path.rstrip("/") or "/"


def _iso(kind: type[date] | type[datetime], value: str) -> bool:
    try:
        kind.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


@functools.cache
def contract() -> Contract:
    """Return the definition, loaded once per process."""
    return Contract()
