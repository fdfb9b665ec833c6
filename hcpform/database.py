"""Database wiring: SQLite pragmas, and bringing a database up to date with the default form."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from sqlalchemy import event, select

from . import formdefs
from .connection import connection_row
from .extensions import db
from .models import Form, TermsVersion


def init_app(app: Flask) -> None:
    """Turn on SQLite's WAL and a busy timeout for every new connection, and real savepoints."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if ":memory:" not in app.config["SQLALCHEMY_DATABASE_URI"] and not app.config[
            "SQLALCHEMY_DATABASE_URI"
        ].endswith("sqlite://"):
            cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
            # With WAL, NORMAL syncs the log at each checkpoint rather than at each commit: a
            # commit survives a crash of the process (what the guarantees are about), and only
            # a power loss or an OS crash can take back the last commits before a checkpoint.
            # The database is never corrupted either way (SQLite's documentation on WAL).
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "savepoint")
    def _begin_before_savepoint(conn: Any, _name: str) -> None:
        # pysqlite sends BEGIN only before INSERT/UPDATE/DELETE, so a begin_nested() that comes
        # first opened no transaction: its SAVEPOINT became the transaction, and RELEASE
        # committed it. BEGIN first (SQLAlchemy's pysqlite notes), so the session's commit or
        # rollback decides. IMMEDIATE: a nested block is there to write, and taking the write
        # lock now (with busy_timeout) avoids WAL's instant "database is locked" when a read
        # transaction tries to write after another connection has committed. We don't BEGIN
        # on every "begin" event as the full recipe does: a session reading before an HCP call
        # and writing after it would then hit exactly that error under concurrent workers.
        dbapi = conn.connection.dbapi_connection
        if not dbapi.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_form_from_template(slug: str, name: str, **overrides: Any) -> Form:
    """Add a form built from the HousecallPro Service Request Template (flushed, not committed)."""
    settings = formdefs.template_settings() | overrides
    settings.setdefault(
        "abandoned_after_minutes", int(current_app.config["ABANDONED_AFTER_MINUTES"])
    )
    office = [a.strip() for a in str(current_app.config.get("MAIL_OFFICE") or "").split(",")]
    settings.setdefault("office_emails", [a for a in office if "@" in a])
    form = Form(
        slug=slug,
        name=name,
        definition=formdefs.template_definition(),
        connection_id=connection_row().id,
        **settings,
    )
    db.session.add(form)
    db.session.flush()
    db.session.add(TermsVersion(form_id=form.id, version=1, text=formdefs.TEMPLATE_TERMS))
    db.session.flush()
    return form


def ensure_default_form() -> bool:
    """Create the default form from the template unless it exists; return True if created."""
    connection_row()
    exists = db.session.scalar(select(Form.id).where(Form.slug == formdefs.DEFAULT_SLUG))
    if exists:
        return False
    create_form_from_template(
        formdefs.DEFAULT_SLUG,
        "Service request",
        business_name="Your Home Services",
        business_phone="+13125550100",
    )
    return True


def upgrade_and_seed() -> bool:
    """Apply every migration, then make sure the default form exists; return True if created."""
    from flask_migrate import upgrade

    upgrade()
    created = ensure_default_form()
    db.session.commit()
    return created
