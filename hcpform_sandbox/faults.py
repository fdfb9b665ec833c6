"""Fault injection: scripted rules, random rates, and the WSGI layer that logs and applies them."""

from __future__ import annotations

import io
import json
import math
import re
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict
from werkzeug.wsgi import get_input_stream

from .contract import Violation, contract
from .multipart import check_multipart, is_multipart, parse_multipart
from .util import CONTROL_PREFIX, iso, utcnow

if TYPE_CHECKING:
    from .state import SandboxState

# POSTs that create a record: the ones commit_then_fail_rate applies to.
CREATE_OPERATIONS = frozenset(
    {
        ("POST", "/customers"),
        ("POST", "/customers/{customer_id}/addresses"),
        ("POST", "/jobs"),
        ("POST", "/estimates"),
        ("POST", "/leads"),
        ("POST", "/lead_sources"),
        ("POST", "/job_fields/job_types"),
        ("POST", "/jobs/{job_id}/attachments"),
    }
)

# Fault kinds. A three-digit status ("500", "503", "429", "401", "422", ...) answers with that
# status before doing anything.
KIND_TIMEOUT = "timeout"  # do the work, then sleep before answering (client reads time out)
KIND_TIMEOUT_BEFORE = "timeout_before_commit"  # sleep first, then do the work (late commit)
KIND_COMMIT_500 = "commit_then_500"  # do the work, then answer 500
KIND_COMMIT_DROP = "commit_then_drop"  # do the work, then drop the connection unanswered
KIND_DROP = "drop"  # drop the connection without doing anything
NAMED_KINDS = frozenset(
    {KIND_TIMEOUT, KIND_TIMEOUT_BEFORE, KIND_COMMIT_500, KIND_COMMIT_DROP, KIND_DROP}
)
RATE_FIELDS = ("error_rate", "rate_limit_rate", "timeout_rate", "commit_then_fail_rate")


@dataclass
class FaultRule:
    """A scripted fault: the next `times` requests matching method and path get `kind`."""

    kind: str
    method: str | None = None
    path: str | None = None  # a template (/customers/{customer_id}) or a literal path
    times: int = 1
    retry_after: str | None = None  # for 429: seconds or an HTTP date; None = the default
    seconds: float | None = None  # for timeouts: overrides timeout_seconds

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from control-endpoint JSON, raising ValueError on nonsense."""
        if not isinstance(data, Mapping):
            raise ValueError("a rule must be an object")
        unknown = set(data) - {"kind", "method", "path", "times", "retry_after", "seconds"}
        if unknown:
            raise ValueError(f"unknown rule fields: {sorted(unknown)}")
        kind = str(data.get("kind", ""))
        if kind not in NAMED_KINDS and not re.fullmatch(r"[45]\d\d", kind):
            raise ValueError(f"unknown fault kind {kind!r}")
        times = int(data.get("times", 1))
        if times < 1:
            raise ValueError("times must be at least 1")
        retry_after, seconds = data.get("retry_after"), data.get("seconds")
        method, path = data.get("method"), data.get("path")
        return cls(
            kind=kind,
            method=str(method).upper() if method not in (None, "", "*") else None,
            path=(str(path).rstrip("/") or "/") if path not in (None, "", "*") else None,
            times=times,
            retry_after=str(retry_after) if retry_after is not None else None,
            seconds=float(seconds) if seconds is not None else None,
        )

    def matches(self, method: str, path: str, template: str | None) -> bool:
        """Return True when this rule applies to the request."""
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path in (path.rstrip("/") or "/", template)

    def to_json(self) -> dict[str, Any]:
        """Return the rule as JSON."""
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "times": self.times,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
        }


@dataclass
class FaultConfig:
    """Random fault rates plus the queue of scripted rules."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: str | None = "1"
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    commit_then_fail_rate: float = 0.0
    rules: list[FaultRule] = field(default_factory=list)

    def update(self, data: Mapping[str, Any]) -> None:
        """Apply control-endpoint JSON: set the given settings, append the given rules."""
        settings = {*RATE_FIELDS, "latency_ms", "retry_after", "timeout_seconds"}
        unknown = set(data) - settings - {"rules", "seed"}
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        new = {k: data[k] for k in settings if k in data}
        for key in (*RATE_FIELDS, "latency_ms", "timeout_seconds"):
            if key in new:
                new[key] = float(new[key])
                if new[key] < 0 or not math.isfinite(new[key]):
                    raise ValueError(f"{key} must be a non-negative number")
        for key in RATE_FIELDS:
            if new.get(key, 0) > 1:
                raise ValueError(f"{key} must be between 0 and 1")
        if sum(new.get(k, getattr(self, k)) for k in RATE_FIELDS) > 1:
            raise ValueError("the four rates share one draw: their sum must not exceed 1")
        if new.get("retry_after") is not None:
            new["retry_after"] = str(new["retry_after"])
        rules = [FaultRule.from_json(r) for r in data.get("rules") or []]
        for key, value in new.items():
            setattr(self, key, value)
        self.rules.extend(rules)

    def to_json(self) -> dict[str, Any]:
        """Return the configuration as JSON."""
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "rate_limit_rate": self.rate_limit_rate,
            "retry_after": self.retry_after,
            "timeout_rate": self.timeout_rate,
            "timeout_seconds": self.timeout_seconds,
            "commit_then_fail_rate": self.commit_then_fail_rate,
            "rules": [r.to_json() for r in self.rules],
        }


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request."""

    kind: str
    retry_after: str | None
    seconds: float
    scripted: bool


def pick_fault(state: SandboxState, method: str, path: str, template: str | None) -> Fault | None:
    """Choose a request's fault: the first matching scripted rule, else a random one."""
    with state.lock:
        cfg = state.faults
        for rule in cfg.rules:
            if rule.matches(method, path, template):
                rule.times -= 1
                if rule.times <= 0:
                    cfg.rules.remove(rule)
                return Fault(
                    kind=rule.kind,
                    retry_after=rule.retry_after if rule.retry_after else cfg.retry_after,
                    seconds=rule.seconds if rule.seconds is not None else cfg.timeout_seconds,
                    scripted=True,
                )
        # One draw split into consecutive bands, so each rate is the share it says.
        draw = state.rng.random()
        bands: tuple[tuple[float, Callable[[], str]], ...] = (
            (cfg.error_rate, lambda: state.rng.choice(("500", "502", "503"))),
            (cfg.rate_limit_rate, lambda: "429"),
            (cfg.timeout_rate, lambda: KIND_TIMEOUT),
            (
                cfg.commit_then_fail_rate,
                lambda: state.rng.choice((KIND_COMMIT_500, KIND_COMMIT_DROP)),
            ),
        )
        edge = 0.0
        for i, (rate, make) in enumerate(bands):
            if draw < edge + rate:
                if i == 3 and (method, template) not in CREATE_OPERATIONS:
                    return None  # commit-then-fail only means something for creates
                return Fault(make(), cfg.retry_after, cfg.timeout_seconds, scripted=False)
            edge += rate
        return None


# --------------------------------------------------------------------------- the WSGI layer


def is_control(path: str) -> bool:
    """Return True for the sandbox's own /_sandbox/ endpoints."""
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back so that Flask can read it again."""
    data = get_input_stream(environ).read()
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input_terminated"] = True
    return data


def _decode_json(data: bytes, content_type: str | None) -> tuple[Any, str | None]:
    """Return (decoded body or None, error message or None)."""
    if not data.strip():
        return None, None
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return None, f"the request body must be application/json (got {media or 'no type'})"
    try:
        return json.loads(data), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"the request body is not valid JSON: {exc}"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _canned(kind: str, retry_after: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
    """The response for a status-code fault."""
    status = int(kind)
    if status >= 500:
        # HCP's 5xx bodies are not JSON (BeelineRoutes); an HTML error page is typical.
        body = f"<html><body><h1>{status} {_reason(status)}</h1></body></html>\n".encode()
        return status, [("Content-Type", "text/html; charset=utf-8")], body
    if status == 429:
        # Rack::Attack's default throttle answer; HCP is a Rails app. Inferred, not observed.
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        return status, headers, b"Retry later\n"
    if status == 401:
        payload: dict[str, Any] = {"message": "Unauthorized"}
    elif status == 422:
        payload = {"errors": {"base": ["scripted failure (HCP sandbox)"]}}
    else:
        payload = {"error": {"message": f"scripted {status} (HCP sandbox)"}}
    return status, [("Content-Type", "application/json")], json.dumps(payload).encode()


def _drop_connection(environ: Mapping[str, Any]) -> bool:
    """Close the client's connection without an answer; False if the server gives no socket."""
    sock = environ.get("werkzeug.socket")
    if sock is None:
        return False
    try:
        # linger 0: the peer sees the connection end at once, with no response bytes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return True


class FaultMiddleware:
    """WSGI layer around the sandbox app: contract check, request log, latency, faults.

    It sits outside Flask because some faults happen after the app has answered (commit then
    fail, commit then time out, drop the connection).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], state: SandboxState) -> None:
        self.app = app
        self.state = state

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if is_control(path):
            return self.app(environ, start_response)
        started = time.monotonic()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        raw = _read_body(environ)
        query = MultiDict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if is_multipart(environ.get("CONTENT_TYPE")):
            # Multipart (attachments): checked part by part against the operation's schema.
            body, parts = parse_multipart(environ, raw)
            body_error = None
            sizes = {name: f["size"] for name, f in body["files"].items()}
            checked = check_multipart(contract(), method, path, query, body["fields"], sizes)
            environ["hcp_sandbox.parts"] = parts
        else:
            body, body_error = _decode_json(raw, environ.get("CONTENT_TYPE"))
            checked = contract().check_request(method, path, query, body)
        violations = (
            checked.violations if body_error is None else [Violation("body", "", body_error)]
        )
        entry: dict[str, Any] = {
            "at": iso(utcnow()),
            "method": method,
            "path": path,
            "template": checked.template,
            "query": query.to_dict(flat=False),
            "json": body,
            "status": None,
            "violations": [str(v) for v in violations],
            "fault": None,
            "duration_ms": None,
        }
        self.state.log_request(entry)
        environ["hcp_sandbox.body"] = body if "hcp_sandbox.parts" not in environ else None
        environ["hcp_sandbox.body_error"] = body_error
        environ["hcp_sandbox.template"] = checked.template
        environ["hcp_sandbox.violations"] = violations

        if self.state.faults.latency_ms:
            time.sleep(self.state.faults.latency_ms / 1000)
        fault = pick_fault(self.state, method, path, checked.template)
        entry["fault"] = fault.kind if fault else None

        def finish(status: int | None) -> None:
            entry["status"] = status
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)

        def dropped() -> Iterable[bytes]:
            finish(None)
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]

        if fault and (re.fullmatch(r"\d{3}", fault.kind) or fault.kind == KIND_DROP):
            if fault.kind == KIND_DROP and _drop_connection(environ):
                return dropped()
            # A drop the server cannot do (no raw socket) becomes the nearest thing: a 500.
            kind = "500" if fault.kind == KIND_DROP else fault.kind
            status, headers, payload = _canned(kind, fault.retry_after)
            finish(status)
            start_response(f"{status} {_reason(status)}", headers)
            return [payload]
        if fault and fault.kind == KIND_TIMEOUT_BEFORE:
            time.sleep(fault.seconds)

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        result = self.app(environ, capture)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status_line, headers = captured["status"], captured["headers"]

        if fault and fault.kind == KIND_COMMIT_DROP and _drop_connection(environ):
            return dropped()
        if fault and fault.kind in (KIND_COMMIT_500, KIND_COMMIT_DROP):
            # commit_then_500, or a drop the server cannot do (no raw socket): answer 500.
            _status, headers, payload = _canned("500", None)
            status_line = f"500 {_reason(500)}"
        if fault and fault.kind == KIND_TIMEOUT:
            time.sleep(fault.seconds)
        finish(int(status_line.split()[0]))
        start_response(status_line, headers)
        return [payload]
