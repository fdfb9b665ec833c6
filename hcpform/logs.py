"""Logging: one format, and PII redacted before any handler sees a record."""

from __future__ import annotations

import logging

from flask import Flask

# Loggers that print request lines (paths with their query strings) on handlers of their own:
# werkzeug's development server, and gunicorn's access and error logs, whose handlers do not
# go through the root logger. A filter on each logger redacts its records first.
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")


def init_app(app: Flask) -> None:
    """Configure the package's logger and install the redaction filter."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("hcpform").setLevel(app.config.get("LOG_LEVEL", "INFO"))
    from .redact import install_redaction

    install_redaction([logging.getLogger("hcpform"), *ACCESS_LOGGERS])
