"""Admin accounts: create-admin, login and logout, sessions and timeouts, throttling, CSRF."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import AdminUser, AuditEntry
from tests.admin_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_of, make_admin, sign_in, text

pytest_plugins = ["tests.admin_fixtures"]


def audit_actions(app: Any) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_create_admin_command_hashes_with_scrypt_and_prompts_when_no_password(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-admin", "Boss@Example.com", "--password", "a long passphrase"]
    )
    assert result.exit_code == 0, result.output
    assert "a long passphrase" not in result.output
    result = runner.invoke(
        args=["create-admin", "second@example.com"],
        input="another passphrase\nanother passphrase\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        admins = {a.email: a for a in db.session.scalars(select(AdminUser))}
        assert set(admins) == {"boss@example.com", "second@example.com"}
        assert admins["boss@example.com"].password_hash.startswith("scrypt:32768:8:3$")
        assert "a long passphrase" not in admins["boss@example.com"].password_hash


def test_create_admin_refuses_a_short_password(app):
    result = app.test_cli_runner().invoke(
        args=["create-admin", "a@example.com", "--password", "short"]
    )
    assert result.exit_code != 0
    assert "12 to 256 characters" in result.output


def test_login_through_the_real_form_with_csrf_starts_a_new_session(app, client):
    app.config["WTF_CSRF_ENABLED"] = True
    with app.app_context():
        make_admin(cheap=False)  # the real scrypt hash, checked by the real login
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"  # session fixation: must not survive the login
    page = text(client.get("/admin/login"))
    response = client.post(
        "/admin/login",
        data={
            "csrf_token": csrf_of(page),
            "email": ADMIN_EMAIL.upper(),
            "password": ADMIN_PASSWORD,
        },
    )
    assert response.status_code == 303, text(response)
    assert response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["admin_id"]
    assert client.get("/admin/").status_code == 200
    assert audit_actions(app) == ["login"]


def test_wrong_password_is_refused_and_audited(app, client):
    app.config["WTF_CSRF_ENABLED"] = False
    with app.app_context():
        make_admin()
    response = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": "wrong one"})
    assert response.status_code == 401
    assert "The email or password is not right." in text(response)
    assert client.get("/admin/").status_code == 303
    response = client.post("/admin/login", data={"email": "nobody@example.com", "password": "x"})
    assert response.status_code == 401
    assert audit_actions(app) == ["login failed", "login failed"]


def test_logout_is_a_post_and_ends_the_session(app, admin_client):
    assert admin_client.get("/admin/logout").status_code == 405
    response = admin_client.post("/admin/logout")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/login")
    assert admin_client.get("/admin/").status_code == 303
    assert audit_actions(app) == ["logout"]


@pytest.mark.parametrize(
    ("key", "age"),
    [("admin_seen_at", timedelta(minutes=31)), ("admin_login_at", timedelta(hours=12, minutes=1))],
)
def test_idle_and_absolute_timeouts_end_the_session(admin_client, key, age):
    assert admin_client.get("/admin/").status_code == 200
    with admin_client.session_transaction() as session:
        session[key] = session[key] - age.total_seconds()
    response = admin_client.get("/admin/")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/login")
    assert "Your session has ended" in text(admin_client.get("/admin/login"))


def test_activity_keeps_the_session_alive_within_the_idle_timeout(admin_client):
    with admin_client.session_transaction() as session:
        session["admin_seen_at"] -= timedelta(minutes=29).total_seconds()
    assert admin_client.get("/admin/").status_code == 200
    assert admin_client.get("/admin/").status_code == 200


def test_a_new_password_or_a_deleted_admin_ends_open_sessions(app, admin_client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", ADMIN_EMAIL, "--password", "a brand new password"])
    assert "password is changed" in result.output
    assert admin_client.get("/admin/").status_code == 303
    with app.app_context():
        admin = db.session.scalar(select(AdminUser))
    sign_in(admin_client, admin)
    assert admin_client.get("/admin/").status_code == 200
    assert runner.invoke(args=["delete-admin", ADMIN_EMAIL]).exit_code == 0
    assert admin_client.get("/admin/").status_code == 303


def test_production_session_cookie_is_secure(settings, tmp_path):
    from hcpform import create_app

    app = create_app(
        {"TESTING": True, **settings, "PRODUCTION": True}, instance_path=str(tmp_path / "i")
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


@pytest.fixture
def limited_app(settings, tmp_path, redis_server):
    """An app with rate limits on (the test settings turn them off)."""
    import redis

    from hcpform import create_app
    from hcpform.database import ensure_default_form

    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app(
        {"TESTING": True, **settings, "RATELIMIT_ENABLED": True, "WTF_CSRF_ENABLED": False},
        instance_path=str(tmp_path / "limited"),
    )
    with app.app_context():
        db.create_all()
        ensure_default_form()
        make_admin()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _login(client: Any, email: str, password: str, ip: str) -> int:
    return client.post(
        "/admin/login",
        data={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    ).status_code


def test_login_is_throttled_after_five_failures_per_account(limited_app):
    client = limited_app.test_client()
    for n in range(5):
        assert _login(client, ADMIN_EMAIL, "wrong", f"10.0.0.{n}") == 401
    # From a sixth address, even the right password waits: the account is throttled.
    response = client.post(
        "/admin/login",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        environ_base={"REMOTE_ADDR": "10.0.0.99"},
    )
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in text(response)
    # Another account is not affected.
    assert _login(client, "other@example.com", "wrong", "10.0.1.1") == 401


def test_login_is_throttled_after_five_failures_per_ip(limited_app):
    client = limited_app.test_client()
    for n in range(5):
        assert _login(client, f"guess{n}@example.com", "wrong", "10.9.9.9") == 401
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "10.9.9.9") == 429
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "10.9.9.10") == 303


def test_successful_logins_do_not_count_toward_the_limit(limited_app):
    client = limited_app.test_client()
    for _ in range(7):
        assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "10.8.8.8") == 303


def test_admin_posts_need_the_csrf_token(app, admin_client):
    app.config["WTF_CSRF_ENABLED"] = True
    response = admin_client.post("/admin/integration/pause")
    assert response.status_code == 400
    page = text(admin_client.get("/admin/integration"))
    response = admin_client.post("/admin/integration/pause", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    with app.app_context():
        from hcpform.hcp.connection import connection_row

        assert connection_row().paused is True
