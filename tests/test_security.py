"""Headers, production settings, size limits; no secret or personal data where it must not be."""

from __future__ import annotations

import html
import logging
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask.testing import FlaskClient
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Draft, HcpCall, HcpConnection, Submission, SyncAttempt
from tests.helpers import TOKEN_RE, Wizard, person, reference_in

HCP_KEY = "hcpk_Zq7SECRETkey_4f1d9b2e7a"  # distinctive: found anywhere means leaked
PHONE_FORMS = ("+17735550199", "7735550199", "(773) 555-0199", "773-555-0199", "773.555.0199")
EMAIL = "zoe.quill@example.org"
STREET = "4821 W Belmont Ave"
ADMIN_EMAIL = "office@example.net"
ADMIN_PASSWORD = "correct horse battery staple"


def test_person() -> dict[str, dict[str, str]]:
    return person(
        customer_phone="(773) 555-0199",
        customer_fname="Zoë",
        customer_lname="Quill",
        customer_email=EMAIL,
        street=STREET,
    )


test_person.__test__ = False  # a helper, not a test


def pii_found(text: str) -> list[str]:
    """Return which forms of the test person's phone, email and street occur in the text."""
    low = text.lower()
    found = [p for p in PHONE_FORMS if p in text]
    found += [e for e in (EMAIL, EMAIL.replace("@", "%40")) if e in low]
    found += [
        s for s in (STREET.lower(), STREET.lower().replace(" ", "+"), "4821 w belmont") if s in low
    ]
    return found


class RecordingClient(FlaskClient):
    """A test client that keeps every request it made with its response."""

    seen: list[tuple[str, str, Any]]

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        request = response.request
        self.seen.append((request.method, request.full_path.rstrip("?"), response))
        return response


def recording_client(app: Any) -> RecordingClient:
    app.test_client_class = RecordingClient
    client = app.test_client()
    client.seen = []
    return client


# -- headers ----------------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def assert_security_headers(response: Any, *, framed_by: str | None = None) -> None:
    csp = response.headers["Content-Security-Policy"]
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in csp.split(";") if part.strip()
    )
    assert directives["script-src"] == "'self'", csp  # no inline scripts, no eval
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["object-src"] == "'none'" and directives["base-uri"] == "'none'"
    assert directives["default-src"] == "'self'"
    if framed_by is None:
        assert directives["frame-ancestors"] == "'none'"
        assert response.headers["X-Frame-Options"] == "DENY"
    else:
        assert directives["frame-ancestors"] == framed_by
        assert "X-Frame-Options" not in response.headers  # it would contradict the CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    if response.mimetype == "text/html":
        page = response.get_data(as_text=True)
        assert not INLINE_SCRIPT.search(page), INLINE_SCRIPT.search(page)
        assert not INLINE_HANDLER.search(page), INLINE_HANDLER.search(page)


def test_every_kind_of_response_carries_the_security_headers(client, app):
    wizard = Wizard(client)
    wizard.complete(submit=False)
    review = client.get(wizard.url)
    wizard.post({})
    responses = [
        client.get("/"),
        client.get("/f/service-request/"),
        client.get(f"/f/service-request/contact?d={wizard.token}"),
        review,
        client.get(f"/f/service-request/done?d={wizard.token}"),
        client.get("/f/service-request/theme.css"),
        client.get("/static/css/app.css"),
        client.get("/healthz"),
        client.get("/f/no-such-form/"),  # 404
        client.delete("/f/service-request/"),  # 405
        client.post("/f/service-request/location", data={"zip": "1" * 70_000}),  # 413
    ]
    assert [r.status_code for r in responses][-3:] == [404, 405, 413]
    for response in responses:
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP: no HSTS
        assert_security_headers(response)


def test_embed_pages_may_be_framed_only_by_the_forms_domains(client, app):
    from hcpform.models import Form

    with app.app_context():
        form = db.session.scalar(select(Form).where(Form.slug == "service-request"))
        form.allowed_domains = ["https://www.riverbend.example", "javascript:alert(1)"]
        db.session.commit()
    response = client.get("/embed/service-request/")
    assert response.status_code == 200
    assert_security_headers(response, framed_by="https://www.riverbend.example")


def test_hsts_over_https(client):
    response = client.get("/f/service-request/", base_url="https://localhost")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert_security_headers(response)


def test_request_bodies_over_the_limit_get_a_clear_413_and_write_nothing(client, app):
    response = client.post(
        "/f/service-request/location",
        data={"zip": "60614", "booking_reason": "x" * (65 * 1024)},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "That was too much to send" in page and "Shorten your answers" in page
    with app.app_context():
        assert db.session.scalar(select(Draft.id)) is None


# -- production settings ----------------------------------------------------------------------


def proxied_app(settings: dict[str, Any], path: Path, **extra: Any) -> Any:
    """A production app behind a TLS proxy that sends X-Forwarded-Proto: https."""
    from hcpform import create_app
    from hcpform.database import ensure_default_form

    app = create_app(
        {"TESTING": True, **settings, "PRODUCTION": True, **extra}, instance_path=str(path)
    )
    with app.app_context():
        db.create_all()
        ensure_default_form()
        db.session.commit()
    return app


def first_step_through_the_proxy(app: Any) -> Wizard:
    """Post the wizard's first step as a browser behind the proxy does."""
    app.config["PREFERRED_URL_SCHEME"] = "http"  # the test client's scheme: the proxy's hop
    client = app.test_client()
    client.environ_base.update(
        {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_ORIGIN": "https://localhost"}
    )
    wizard = Wizard(client)
    wizard.open()
    wizard.post(test_person()["location"])
    return wizard


def test_an_untrusted_tls_proxy_is_reported_loudly_once_and_in_healthz(settings, tmp_path, caplog):
    app = proxied_app(settings, tmp_path / "untrusted")
    assert app.test_client().get("/healthz").get_json()["proxy"] == {
        "ok": True,
        "trusted_proxies": 0,
    }
    caplog.set_level(logging.WARNING, logger="hcpform.security")
    wizard = first_step_through_the_proxy(app)
    assert "This page has expired" in wizard.page  # what every homeowner would meet
    first_step_through_the_proxy(app)
    loud = [r for r in caplog.records if r.name == "hcpform.security"]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert loud[0].levelno == logging.ERROR
    assert "X-Forwarded-Proto: https" in loud[0].getMessage()
    assert "HCPFORM_TRUSTED_PROXIES" in loud[0].getMessage()
    proxy = app.test_client().get("/healthz").get_json()["proxy"]
    assert proxy["ok"] is False and proxy["trusted_proxies"] == 0
    assert proxy["untrusted_https_forwarded_at"] and "TRUSTED_PROXIES" in proxy["fix"]

    trusted = proxied_app(settings, tmp_path / "trusted", TRUSTED_PROXIES=1)
    wizard = first_step_through_the_proxy(trusted)
    assert "This page has expired" not in wizard.page
    assert "/f/service-request/service?d=" in wizard.url
    assert trusted.test_client().get("/healthz").get_json()["proxy"]["ok"] is True
    assert len([r for r in caplog.records if r.name == "hcpform.security"]) == 1


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment with none of our settings, and a SQLite database in tmp_path."""
    import os

    for name in list(os.environ):
        if name.startswith("HCPFORM_") or name in (
            "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "HCP_API_BASE_URL", "HCP_API_KEY",
        ):  # fmt: skip
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")
    monkeypatch.setenv("HCP_API_BASE_URL", "sandbox")
    return monkeypatch


@pytest.mark.parametrize("missing", ["SECRET_KEY", "HCPFORM_ENCRYPTION_KEY"])
def test_production_refuses_to_start_without_its_secrets(clean_env, tmp_path, missing):
    from cryptography.fernet import Fernet

    from hcpform import create_app

    clean_env.setenv("HCPFORM_PRODUCTION", "true")
    clean_env.setenv("SECRET_KEY", "a-real-secret-from-the-environment")
    clean_env.setenv("HCPFORM_ENCRYPTION_KEY", Fernet.generate_key().decode())
    clean_env.delenv(missing)
    with pytest.raises(RuntimeError, match=f"{missing} must be set in production"):
        create_app(instance_path=str(tmp_path / "instance"))


def test_production_cookies_are_secure(clean_env, tmp_path):
    from cryptography.fernet import Fernet

    from hcpform import create_app
    from hcpform.database import ensure_default_form

    clean_env.setenv("HCPFORM_PRODUCTION", "true")
    clean_env.setenv("SECRET_KEY", "a-real-secret-from-the-environment")
    clean_env.setenv("HCPFORM_ENCRYPTION_KEY", Fernet.generate_key().decode())
    app = create_app(instance_path=str(tmp_path / "instance"))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["PREFERRED_URL_SCHEME"] == "https"
    assert not (tmp_path / "instance" / "secret_key").exists()  # taken from the environment
    with app.app_context():
        db.create_all()
        ensure_default_form()
        db.session.commit()
    client = app.test_client()
    wizard = Wizard(client)
    wizard.open()
    response = wizard.post(person()["location"], follow=False)
    assert response.status_code == 302
    response = client.get(response.headers["Location"])  # the next step remembers the draft
    assert response.status_code == 200
    assert response.request.scheme == "https" and "Strict-Transport-Security" in response.headers
    cookie = response.headers["Set-Cookie"]  # the hosted draft cookie
    assert cookie.startswith("hcpform_draft_")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# -- secrets and personal data ----------------------------------------------------------------


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Debug logging everywhere, including in the worker processes."""
    return {**settings, "LOG_LEVEL": "DEBUG"}


@pytest.fixture
def stored_key(app: Any, sandbox: Any) -> str:
    """Store the distinctive HCP key encrypted on the connection row; the sandbox accepts it."""
    from hcpform.connection import connection_row, key_source
    from hcpform.crypto import encrypt

    requests.post(f"{sandbox.url}/_sandbox/keys", json={"valid": [HCP_KEY]}, timeout=5)
    with app.app_context():
        assert not app.config.get("HCP_API_KEY")
        conn = connection_row()
        conn.api_key_encrypted = encrypt(HCP_KEY, bound_to=f"hcp_connection:{conn.id}")
        conn.api_key_last4 = HCP_KEY[-4:]
        db.session.commit()
        assert key_source(conn) == "stored"
        assert HCP_KEY not in conn.api_key_encrypted
    return HCP_KEY


def redis_texts(url: str) -> list[str]:
    """Return every key and value in Redis as text (RQ's compressed job data decompressed)."""
    conn = redis.Redis.from_url(url)
    out: list[str] = []
    for key in conn.scan_iter(count=500):
        kind = conn.type(key)
        if kind == b"string":
            values = [conn.get(key)]
        elif kind == b"hash":
            values = [k + b"=" + v for k, v in conn.hgetall(key).items()]
        elif kind == b"list":
            values = conn.lrange(key, 0, -1)
        elif kind == b"set":
            values = list(conn.smembers(key))
        elif kind == b"zset":
            values = conn.zrange(key, 0, -1)
        else:
            values = []
        out.append(key.decode("latin-1"))
        for value in values:
            value = value or b""
            out.append(value.decode("latin-1"))
            for chunk in re.findall(rb"x\x9c[\s\S]+", value):  # zlib-compressed (RQ job data)
                try:
                    out.append(zlib.decompress(chunk).decode("latin-1"))
                except zlib.error:
                    pass
    return out


def admin_login(app: Any, client: Any) -> None:
    from hcpform.admin.auth import set_admin

    with app.app_context():
        set_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        db.session.commit()
    page = client.get("/admin/login").get_data(as_text=True)
    token = html.unescape(TOKEN_RE.search(page).group(1) or TOKEN_RE.search(page).group(2))
    response = client.post(
        "/admin/login",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:1000]


def test_no_secret_or_personal_data_in_logs_headers_redis_or_pages(
    app, sandbox, stored_key, caplog, start_worker, tmp_path, redis_server
):
    from hcpform.jobs import get_queue, sync_submission
    from hcpform.redact import RedactingFilter

    caplog.set_level(logging.DEBUG)
    for name in ("hcpform", "hcpform.hcp", "urllib3", "rq", "werkzeug"):
        caplog.set_level(logging.DEBUG, logger=name)
    # The redaction sits on the root handlers, where production's handlers are too.
    assert any(isinstance(f, RedactingFilter) for f in caplog.handler.filters)

    # 1. A new customer walks the wizard; a real worker syncs the submission.
    first = recording_client(app)
    wizard = Wizard(first)
    wizard.complete(test_person())
    ref_1 = reference_in(wizard.page)
    with app.app_context():
        sub_1 = db.session.scalar(select(Submission).where(Submission.reference == ref_1))
        jobs = get_queue().jobs
        assert [job.args for job in jobs] == [(sub_1.id,)] and not jobs[0].kwargs
        assert not pii_found(jobs[0].description or "")
    assert start_worker("--burst").wait(timeout=60) == 0

    # 2. They come back (the lookup recognises the phone); this sync runs here, under caplog.
    cache = redis.Redis.from_url(redis_server.url)
    for key in cache.scan_iter("hcpform:lookup:*"):  # the first visit's "no match", cached
        cache.delete(key)
    second = recording_client(app)
    wizard = Wizard(second)
    wizard.complete(test_person())
    assert "Welcome back" in " ".join(r.get_data(as_text=True) for _, _, r in second.seen)
    ref_2 = reference_in(wizard.page)
    with app.app_context():
        sub_2 = db.session.scalar(select(Submission).where(Submission.reference == ref_2))
        assert sync_submission(sub_2.id) == "synced"
        statuses = dict(db.session.execute(select(Submission.reference, Submission.status)).all())
        assert statuses == {ref_1: "synced", ref_2: "synced"}
        assert sub_2.customer_matched_by == "phone"

    # 3. Office staff look at it in the admin, when the admin is there.
    admin = recording_client(app)
    admin_pages = []
    if "admin" in app.blueprints:
        admin_login(app, admin)
        admin_pages = [
            "/admin/",
            "/admin/submissions",
            f"/admin/submissions/{sub_1.id}",
            "/admin/integration",
        ]
        for url in admin_pages:
            response = admin.get(url)
            assert response.status_code == 200, (url, response.status_code)
        assert any(
            p in admin.get(f"/admin/submissions/{sub_1.id}").get_data(as_text=True)
            for p in PHONE_FORMS
        )

    # Where a person is meant to see their data: the review page they fill, the admin detail.
    def meant_to_show(method: str, path: str) -> bool:
        return method == "GET" and (
            re.match(r"^/f/service-request/review\b", path) is not None
            or re.match(r"^/admin/submissions/\d+$", path) is not None
        )

    shown = 0
    for client in (first, second, admin):
        for method, path, response in client.seen:
            headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
            body = response.get_data(as_text=True)
            assert HCP_KEY not in body + headers + path, (method, path)
            assert not pii_found(headers + path), (method, path, pii_found(headers + path))
            if meant_to_show(method, path):
                shown += bool(pii_found(body))
            else:
                assert not pii_found(body), (method, path, pii_found(body))
            if "/done" in path:
                assert response.status_code == 200 and "Request sent" in body
    assert shown >= 2  # the review pages did show the person their own answers

    # Logs: this process (every logger, DEBUG) and the worker's output.
    lines = [record.getMessage() for record in caplog.records]
    lines += [caplog.text]
    assert any("GET /customers" in line for line in lines)  # the HCP calls were logged
    # urllib3's DEBUG line carries the search URL (?q=<phone digits>): there, and redacted.
    assert any("/customers?q=[redacted]" in line for line in lines)
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Job OK" in worker_log or "Successfully completed" in worker_log, worker_log[-2000:]
    for text in [*lines, worker_log]:
        assert HCP_KEY not in text
        assert not pii_found(text), pii_found(text)

    # Stored traces: the HCP call records, sync attempts, errors; and everything in Redis.
    with app.app_context():
        texts = [f"{c.method} {c.path} {c.message}" for c in db.session.scalars(select(HcpCall))]
        texts += [a.message for a in db.session.scalars(select(SyncAttempt))]
        texts += [s.last_error for s in db.session.scalars(select(Submission))]
        texts += [c.last_message for c in db.session.scalars(select(HcpConnection))]
        assert len(texts) > 10
    texts += redis_texts(redis_server.url)
    for text in texts:
        assert HCP_KEY not in (text or "")
        assert not pii_found(text or ""), (text[:300], pii_found(text))
