"""Access control: every admin route needs a login, pages are never framed, forms carry CSRF."""

from __future__ import annotations

import re

import pytest

from hcpform.extensions import db
from tests.admin_helpers import make_submission, text

pytest_plugins = ["tests.admin_fixtures"]

PHOTO_KEY = "0123456789abcdef0123456789abcdef"
URL_VALUES = {"slug": "service-request", "sub_id": 1, "form_id": 1, "key": PHOTO_KEY}


def seed_photo():
    """A photo of submission 1 under PHOTO_KEY, made as the wizard makes one."""
    import io

    from hcpform import photos, submissions
    from hcpform.timeutil import utcnow
    from tests import images
    from tests.factories import default_form

    draft = submissions.start_draft(
        default_form(), now=utcnow(), source="hosted", attribution={}, prefill={}
    )
    photo = photos.add_photo(draft, io.BytesIO(images.encoded("JPEG", (64, 48))))
    photo.key, photo.submission_id = PHOTO_KEY, 1


def admin_rules(app):
    """Yield (url, method) for every admin endpoint but the login page."""
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or rule.endpoint == "admin.login":
            continue
        url = rule.build({k: URL_VALUES[k] for k in rule.arguments}, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, url, method


def test_every_admin_route_refuses_anonymous_visitors(app):
    app.config["WTF_CSRF_ENABLED"] = False  # reach the login gate itself, not the CSRF check
    client = app.test_client()
    with app.app_context():
        make_submission()
        db.session.commit()
    checked = 0
    for endpoint, url, method in admin_rules(app):
        response = client.open(url, method=method, data={"note": "x", "who": "a@b.co"})
        assert response.status_code != 200, (endpoint, method)
        if response.status_code in (302, 303):
            assert response.headers["Location"].endswith("/admin/login"), (endpoint, method)
        else:
            assert response.status_code in (401, 403, 405), (endpoint, method, response.status_code)
        assert response.headers["X-Frame-Options"] == "DENY"
        checked += 1
    assert checked >= 20  # the sweep really walked the admin


def test_login_page_is_public_but_never_framed_nor_cached(client):
    response = client.get("/admin/login")
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_every_admin_page_renders_for_an_admin_and_every_form_has_a_csrf_token(app, admin_client):
    with app.app_context():
        make_submission()
        seed_photo()
        db.session.commit()
    pages = [(e, u) for e, u, m in admin_rules(app) if m == "GET"]
    assert len(pages) >= 8
    for endpoint, url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, (endpoint, response.status_code)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        if response.mimetype != "text/html":
            continue
        page = text(response)
        for form in re.findall(r"<form[^>]*>.*?</form>", page, flags=re.S):
            if 'method="post"' in form:
                assert 'name="csrf_token"' in form, (endpoint, form[:200])
        assert "<script" not in page and "style=" not in page, endpoint  # the CSP forbids them


@pytest.mark.parametrize("path", ["/admin/", "/admin/submissions?status=failed"])
def test_login_returns_to_the_page_asked_for(app, client, path):
    from tests.admin_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, make_admin

    app.config["WTF_CSRF_ENABLED"] = False
    with app.app_context():
        make_admin()
    assert client.get(path).status_code == 303
    response = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 303
    assert response.headers["Location"] == path
