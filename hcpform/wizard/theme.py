"""The form's brand colour as a stylesheet, with a text colour that stays readable on it."""

from __future__ import annotations

import re

from flask import make_response
from flask.typing import ResponseReturnValue

from . import bp
from .views import load_form


@bp.get("/<slug>/theme.css")
def theme(slug: str) -> ResponseReturnValue:
    """Serve the form's brand colour as CSS (a stylesheet, so the CSP needs no inline styles)."""
    form = load_form(slug)
    brand, text = brand_colours(form.brand_color)
    css = f":root{{--brand:{brand};--brand-text:{text}}}\n"
    response = make_response(css)
    response.mimetype = "text/css"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def brand_colours(colour: str) -> tuple[str, str]:
    """Return a safe brand colour and the text colour (white or near-black) readable on it."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour or ""):
        colour = "#1d4ed8"

    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    lum = (
        0.2126 * channel(colour[1:3])
        + 0.7152 * channel(colour[3:5])
        + 0.0722 * channel(colour[5:7])
    )
    white_contrast = 1.05 / (lum + 0.05)
    return colour, "#ffffff" if white_contrast >= 4.5 else "#111111"
