"""Logging: one format, and PII redacted before any handler sees a record."""

from __future__ import annotations

import logging

from flask import Flask


def init_app(app: Flask) -> None:
    """Configure the package's logger and install the redaction filter."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("hcpform").setLevel(app.config.get("LOG_LEVEL", "INFO"))
    from .redact import install_redaction

    install_redaction(logging.getLogger("hcpform"))
