"""The banner every admin page shows while the HCP connection is failing, and since when."""

from __future__ import annotations

from typing import Any

from flask import current_app, g

from ..connection import alert, connection_row
from . import bp


@bp.context_processor
def hcp_alert() -> dict[str, Any]:
    """Give admin templates `hcp_alert`: None, or what the connection banner says."""
    if g.get("admin") is None:
        return {"hcp_alert": None}
    failures = int(current_app.config["HCP_HEALTH_FAILURES"])
    return {"hcp_alert": alert(connection_row(), failures=failures)}
