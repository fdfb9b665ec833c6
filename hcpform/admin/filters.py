"""Template filters for the admin: times in the business's zone, rates, statuses, phones."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, g
from sqlalchemy import select

from ..extensions import db
from ..models import Form, HcpConnection
from ..validation import format_phone
from .forms import STATUS_LABELS

DEFAULT_TZ = "America/Chicago"


def admin_tz() -> str:
    """Return the zone admin times are shown in: HCP's company zone, else the first form's."""
    if "admin_tz" not in g:
        zone = db.session.scalar(
            select(HcpConnection.time_zone).order_by(HcpConnection.id).limit(1)
        )
        if not zone:
            zone = db.session.scalar(select(Form.time_zone).order_by(Form.id).limit(1))
        try:
            ZoneInfo(zone or DEFAULT_TZ)
        except (ZoneInfoNotFoundError, ValueError):
            zone = DEFAULT_TZ
        g.admin_tz = zone or DEFAULT_TZ
    shown: str = g.admin_tz
    return shown


def admin_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """Return an aware time in the admin's zone, or a dash."""
    if value is None:
        return "–"
    return value.astimezone(ZoneInfo(admin_tz())).strftime(fmt)


def percent(value: float | None) -> str:
    """Return 0.125 as "12.5%", or a dash when there is nothing to divide."""
    return "–" if value is None else f"{value * 100:.1f}%"


def millis(value: float | None) -> str:
    """Return a duration in ms, or a dash."""
    return "–" if value is None else f"{value:,.0f} ms"


def status_label(value: str) -> str:
    """Return a status as office staff say it."""
    return STATUS_LABELS.get(value, value)


def money(cents: int | None) -> str:
    """Return cents as dollars, e.g. $1,234.50 ("–" for none)."""
    if cents is None:
        return "–"
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"


def hcp_status_label(value: str | None) -> str:
    """Return what became of a record in HCP, as office staff say it."""
    from ..webhooks.figures import STATUS_LABELS as HCP_STATUS_LABELS

    return HCP_STATUS_LABELS.get(value or "", value or "–")


def register_filters(bp: Blueprint) -> None:
    """Make the filters available to every template (names start with admin_)."""
    bp.add_app_template_filter(admin_time, "admin_time")
    bp.add_app_template_filter(percent, "admin_percent")
    bp.add_app_template_filter(millis, "admin_ms")
    bp.add_app_template_filter(status_label, "admin_status")
    bp.add_app_template_filter(money, "admin_money")
    bp.add_app_template_filter(hcp_status_label, "admin_hcp_status")
    bp.add_app_template_filter(format_phone, "admin_phone")
