"""hcpform: a service-request wizard whose submissions become Housecall Pro customers and jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, redirect, url_for
from flask.typing import ResponseReturnValue

from . import models  # noqa: F401  (registers the tables with the metadata)
from .config import check_config, load_config
from .extensions import babel, csrf, db, init_redis, migrate

ROOT = Path(__file__).resolve().parent.parent
__version__ = "0.1.0"


def create_app(
    test_config: dict[str, Any] | None = None, *, instance_path: str | None = None
) -> Flask:
    """Build the app: load config, init extensions, register blueprints, handlers and CLI."""
    app = Flask(
        __name__,
        instance_path=instance_path or str(ROOT / "instance"),
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    load_config(app, test_config)
    if not app.testing:
        check_config(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)

    from flask_babel import get_locale

    from . import i18n
    from .wizard.language import select_locale, tr

    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals["page_lang"] = lambda: str(get_locale() or "en")
    app.jinja_env.globals["long_day"] = i18n.weekday_day_month
    app.jinja_env.globals["js_messages"] = i18n.js_messages
    app.jinja_env.filters["tr"] = tr  # a form's own text, translated while it is the template's

    from . import database, logs, security, worker

    logs.init_app(app)
    database.init_app(app)
    init_redis(app)
    worker.init_app(app)
    security.init_app(app)

    from .admin import bp as admin_bp
    from .errors import register_error_handlers
    from .health import bp as health_bp
    from .webhooks.views import bp as hooks_bp
    from .wizard import bp as wizard_bp

    app.register_blueprint(wizard_bp, url_prefix="/f")
    app.register_blueprint(wizard_bp, url_prefix="/embed", name="embed")
    app.register_blueprint(health_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(hooks_bp)
    csrf.exempt(hooks_bp)  # HCP signs its deliveries; it has no session and no CSRF token
    # The wizard carries its own draft-bound CSRF token (wizard/csrf.py): a session cookie is a
    # third-party cookie inside a business's iframe, and browsers drop it.
    csrf.exempt(wizard_bp)
    csrf._exempt_blueprints.add("embed")  # the same blueprint, registered a second time
    register_error_handlers(app)

    from .cli import register_cli

    register_cli(app)

    @app.get("/")
    def index() -> ResponseReturnValue:
        return redirect(
            url_for("wizard.start", slug=app.config.get("DEFAULT_FORM", "service-request"))
        )

    return app
