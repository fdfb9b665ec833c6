"""Small helpers shared by the sandbox's resources: ids, times, HCP's error shapes, paging."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import Response, current_app, request

if TYPE_CHECKING:
    from .state import SandboxState

DEFAULT_API_KEY = "sandbox-key"
CONTROL_PREFIX = "/_sandbox"
MAX_PAGE_SIZE = 200  # what Ampersand and BeelineRoutes use against live HCP
DEFAULT_PAGE_SIZE = 10

# Seeded reference data gets ids derived from its name, so that ids survive a restart or a
# reseed and a client's cached job-type/employee ids stay valid.
SEED_NAMESPACE = uuid.UUID("8f3c1d2e-5b7a-4c69-9e21-0d4f6a8b1c35")
COMPANY_ID = str(uuid.uuid5(SEED_NAMESPACE, "company"))

Result = tuple[int, Any]  # (HTTP status, JSON body)


def new_id(prefix: str) -> str:
    """Return an HCP-style id: prefix, underscore, 32 lowercase hex digits."""
    return f"{prefix}_{uuid.uuid4().hex}"


def seed_id(prefix: str, name: str) -> str:
    """Return a stable id for seeded reference data."""
    return f"{prefix}_{uuid.uuid5(SEED_NAMESPACE, f'{prefix}:{name}').hex}"


def iso(moment: datetime) -> str:
    """Format a timestamp the way HCP does: ISO-8601, UTC, second precision, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def digits(value: Any) -> str:
    """Return only the digits of a phone-like value, without a leading US country code."""
    out = re.sub(r"\D", "", str(value or ""))
    return out[1:] if len(out) == 11 and out.startswith("1") else out


def parse_datetime(value: str, tz: ZoneInfo) -> datetime:
    """Parse an ISO-8601 date-time; a naive one is read in the company's time zone."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def int_arg(value: str | None, default: int) -> int:
    """Read a numeric query value leniently (the definition types page as number or string)."""
    try:
        return int(float(value)) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def error(status: int, message: str) -> Result:
    """HCP's ErrorResponse shape."""
    return status, {"error": {"message": message}}


def field_errors(status: int, errors: Mapping[str, list[str]]) -> Result:
    """HCP's 422 validation shape: {"errors": {"field": ["message", ...]}}."""
    return status, {"errors": dict(errors)}


def paginate(items: list[Any], args: Mapping[str, str]) -> tuple[list[Any], dict[str, Any]]:
    """Slice items for page/page_size (1-based, page_size capped at 200) and build the envelope."""
    page = max(1, int_arg(args.get("page"), 1))
    page_size = min(MAX_PAGE_SIZE, max(1, int_arg(args.get("page_size"), DEFAULT_PAGE_SIZE)))
    total = len(items)
    start = (page - 1) * page_size
    return items[start : start + page_size], {
        "page": page,
        "page_size": page_size,
        "total_pages": math.ceil(total / page_size),
        "total_items": total,
    }


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """Return payload as a JSON response (keys in the order HCP sends them)."""
    return Response(
        json.dumps(payload), status=status, mimetype="application/json", headers=dict(headers or {})
    )


def answer(result: Result) -> Response:
    """Return a resource function's (status, body) as a response."""
    return json_response(*result)


def state() -> SandboxState:
    """Return the current sandbox app's state."""
    return current_app.extensions["hcp_sandbox"]  # type: ignore[no-any-return]


def body() -> Any:
    """Return the request's JSON body, decoded once by the fault layer (None for none)."""
    return request.environ.get("hcp_sandbox.body")
