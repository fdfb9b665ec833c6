"""Unbound Flask extensions and the Redis connection, initialised by the app factory."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import redis
from flask import Flask, current_app
from flask_babel import Babel
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import ColumnElement, CursorResult, MetaData, Result, update
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose constraints get stable names (needed by Alembic on SQLite)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
babel = Babel()  # the homeowner's language (hcpform/wizard/language.py selects it)
if TYPE_CHECKING:
    # mypy cannot take an instance's attribute as a base class (python/mypy#8603). db.Model is
    # a copy of Base that Flask-SQLAlchemy makes at run time, so Base stands for it in checks.
    Model = Base
else:
    Model = db.Model
migrate = Migrate()
csrf = CSRFProtect()
EXT_KEY = "hcpform.redis"
_fake_servers: dict[str, Any] = {}


def init_redis(app: Flask) -> None:
    """Store one Redis client on the app: real when REDIS_URL is set, fakeredis otherwise."""
    url = app.config.get("REDIS_URL")
    if url:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
        )
        app.extensions[EXT_KEY] = client
        app.extensions["hcpform.embedded_queue"] = False
    else:
        try:
            import fakeredis
        except ImportError as exc:  # production installs leave out the `embedded` extra
            raise RuntimeError(
                "REDIS_URL is not set and fakeredis is not installed: set REDIS_URL to a Redis "
                "server, or install the embedded queue with pip install 'hcpform[embedded]' "
                "(scripts/run does)."
            ) from exc

        # One fake server per process, shared by the web threads and the worker thread.
        server = _fake_servers.setdefault("default", fakeredis.FakeServer())
        app.extensions[EXT_KEY] = fakeredis.FakeStrictRedis(server=server)
        app.extensions["hcpform.embedded_queue"] = True


def get_redis(app: Flask | None = None) -> redis.Redis:
    """Return the app's Redis client (real or embedded)."""
    client: redis.Redis = (app or current_app).extensions[EXT_KEY]
    return client


def is_embedded(app: Flask | None = None) -> bool:
    """Return True when the queue runs in-process (no REDIS_URL)."""
    return bool((app or current_app).extensions.get("hcpform.embedded_queue"))


def rowcount(result: Result[Any]) -> int:
    """Return how many rows an UPDATE or DELETE run by Session.execute matched."""
    # Such a statement's result is a CursorResult; Session.execute is typed with plain Result.
    return cast("CursorResult[Any]", result).rowcount


def claim_with_lease(
    model: Any, row_id: int, due: ColumnElement[bool], *, until: datetime, **values: Any
) -> str | None:
    """Take one row that is `due` with a lease until `until`, and commit; return its token.

    One conditional UPDATE (id, `due`) sets `lease_token`, `lease_until` and `values`, so of
    two workers only one gets the row; None when it was not due (or someone else has it).
    Submissions, abandoned requests' leads and outbox messages are claimed this way.
    """
    token = secrets.token_hex(8)
    result = db.session.execute(
        update(model)
        .where(model.id == row_id, due)
        .values(lease_token=token, lease_until=until, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return token if rowcount(result) == 1 else None
