"""The homeowner's wizard, served at /f/<slug>/ and, for iframes, at /embed/<slug>/."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("wizard", __name__)

from . import photos_routes, resume, theme, uploads, views  # noqa: E402,F401
