"""Admin accounts: create-admin, login and logout, sessions and timeouts, throttling, CSRF."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import AdminUser, AuditEntry
from tests.admin_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_of, make_admin, sign_in, text
from tests.helpers import wait_for

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


def test_a_session_cookie_copied_before_logout_is_refused_after_it(app, admin_client):
    assert admin_client.get("/admin/").status_code == 200
    copied = admin_client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/admin/").status_code == 200  # the copy works while the session lives
    assert admin_client.post("/admin/logout").status_code == 303
    response = thief.get("/admin/")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/admin/login")
    assert thief.get("/admin/submissions").status_code == 303
    # Signing in again gives a working session; the old copy stays dead.
    with app.app_context():
        admin = db.session.scalar(select(AdminUser))
        assert admin.session_epoch == 1
    sign_in(admin_client, admin)
    assert admin_client.get("/admin/").status_code == 200
    thief.set_cookie("session", copied)
    assert thief.get("/admin/").status_code == 303


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


def make_limited_app(settings: dict[str, Any], path: Any, **extra: Any) -> Any:
    """Return an app with rate limits on (the test settings turn them off) and one admin."""
    from hcpform import create_app
    from hcpform.database import ensure_default_form

    app = create_app(
        {
            "TESTING": True,
            **settings,
            "RATELIMIT_ENABLED": True,
            "WTF_CSRF_ENABLED": False,
            **extra,
        },
        instance_path=str(path),
    )
    with app.app_context():
        db.create_all()
        ensure_default_form()
        make_admin()
    return app


@pytest.fixture(params=["redis", "memory"])
def limited_app(request, settings, tmp_path, redis_server):
    """An app with rate limits on, counting in Redis or (Redis down) in process memory."""
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    extra = {"RATELIMIT_STORAGE_URI": "memory://"} if request.param == "memory" else {}
    app = make_limited_app(settings, tmp_path / "limited", **extra)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _post_login(client: Any, email: str, password: str, ip: str) -> Any:
    return client.post(
        "/admin/login",
        data={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def _login(client: Any, email: str, password: str, ip: str) -> int:
    return _post_login(client, email, password, ip).status_code


def test_a_strangers_failures_never_lock_the_admin_out(limited_app):
    limited_app.config["LOGIN_FIRST_DELAY_SECONDS"] = 60  # no try frees up during the test
    client = limited_app.test_client()
    # Strangers on many addresses, and one stranger until refused.
    for n in range(6):
        assert _login(client, ADMIN_EMAIL, "wrong", f"10.0.0.{n}") == 401
    for _ in range(3):
        assert _login(client, ADMIN_EMAIL, "wrong", "10.0.0.200") == 401
    assert _login(client, ADMIN_EMAIL, "wrong", "10.0.0.200") == 429
    # The admin, from the office's address, signs in at once.
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "10.0.9.9") == 303


def test_each_further_failure_of_one_account_from_one_address_waits_longer(limited_app):
    limited_app.config["LOGIN_FIRST_DELAY_SECONDS"] = 4  # 2 s by default; room for a slow CI
    client = limited_app.test_client()
    ip = "10.1.1.1"
    for _ in range(3):  # three free tries: typos happen
        assert _login(client, ADMIN_EMAIL, "wrong", ip) == 401
    first = _post_login(client, ADMIN_EMAIL, "wrong", ip)
    assert first.status_code == 429
    assert re.search(r"Too many failed sign-in attempts\. Wait [1-4] seconds?,", text(first))
    assert 1 <= int(first.headers["Retry-After"]) <= 4
    # Even the right password waits on this pair; the refused tries did not add to the wait.
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, ip) == 429
    again = _post_login(client, ADMIN_EMAIL, "wrong", ip).headers["Retry-After"]
    assert int(again) <= int(first.headers["Retry-After"])

    def fourth_try_checked() -> bool:
        """the fourth try is checked once its wait is over"""
        return _login(client, ADMIN_EMAIL, "wrong", ip) == 401

    wait_for(fourth_try_checked, timeout=10, interval=0.25)
    second = _post_login(client, ADMIN_EMAIL, "wrong", ip)
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 7  # 8 s after the fourth, not 4
    assert int(second.headers["Retry-After"]) > int(first.headers["Retry-After"])
    # The same account from another address is not slowed; another account here neither.
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "10.1.1.2") == 303
    assert _login(client, "other@example.com", "wrong", ip) == 401


def test_the_growing_delay_doubles_and_is_capped():
    from hcpform.admin.throttle import pair_delay_offset

    offsets = [pair_delay_offset(n, 3, 2, 900) for n in range(1, 16)]
    assert offsets[:3] == [0, 0, 0]
    gaps = [b - a for a, b in zip(offsets[2:], offsets[3:], strict=False)]
    assert gaps == [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]


def test_login_is_refused_after_five_failures_per_ip(limited_app):
    client = limited_app.test_client()
    for n in range(5):
        assert _login(client, f"guess{n}@example.com", "wrong", "10.9.9.9") == 401
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "10.9.9.9") == 429
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "10.9.9.10") == 303


def test_an_ipv6_client_is_counted_by_its_64_network(limited_app):
    client = limited_app.test_client()
    for n in range(5):
        assert _login(client, f"guess{n}@example.com", "wrong", f"2001:db8:1:2::{n + 1}") == 401
    assert _login(client, "guess9@example.com", "wrong", "2001:db8:1:2:ffff::9") == 429
    assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "2001:db8:1:3::1") == 303


def test_successful_logins_do_not_count_toward_the_limit(limited_app):
    client = limited_app.test_client()
    for _ in range(7):
        assert _login(client, ADMIN_EMAIL, ADMIN_PASSWORD, "10.8.8.8") == 303


def _fire_in_parallel(app: Any, attempts: list[tuple[str, str, str]]) -> Counter:
    """Send every (email, password, ip) login at the same moment; count the answers by status."""
    barrier = threading.Barrier(len(attempts))
    statuses: list[int] = []

    def attempt(email: str, password: str, ip: str) -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(_login(client, email, password, ip))

    threads = [threading.Thread(target=attempt, args=a) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == len(attempts)
    return Counter(statuses)


def test_parallel_wrong_passwords_from_one_address_are_each_counted(limited_app):
    guesses = [(f"guess{n}@example.com", "wrong", "10.7.7.7") for n in range(16)]
    assert _fire_in_parallel(limited_app, guesses) == {401: 5, 429: 11}
    assert audit_actions(limited_app).count("login failed") == 5


def test_parallel_wrong_passwords_for_one_account_get_three_tries(limited_app):
    limited_app.config["LOGIN_FIRST_DELAY_SECONDS"] = 60  # no try frees up during the test
    guesses = [(ADMIN_EMAIL, "wrong", "10.6.6.6")] * 12
    assert _fire_in_parallel(limited_app, guesses) == {401: 3, 429: 9}
    assert audit_actions(limited_app).count("login failed") == 3


def test_admin_posts_need_the_csrf_token(app, admin_client):
    app.config["WTF_CSRF_ENABLED"] = True
    response = admin_client.post("/admin/integration/pause")
    assert response.status_code == 400
    page = text(admin_client.get("/admin/integration"))
    response = admin_client.post("/admin/integration/pause", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    with app.app_context():
        from hcpform.connection import connection_row

        assert connection_row().paused is True
