"""Form settings, field mapping and new forms: validation, versioned terms, live effect."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from sqlalchemy import select

from hcpform import formdefs
from hcpform.extensions import db
from hcpform.models import AuditEntry, Form, Status, Submission, TermsVersion
from tests.admin_helpers import make_submission, text
from tests.helpers import Wizard

pytest_plugins = ["tests.admin_fixtures"]

URL = "/admin/forms/service-request"


def current_values(client: Any, url: str = URL) -> dict[str, Any]:
    """Return what the settings page would post as it stands (a browser's submit)."""
    page = text(client.get(url))
    data: dict[str, Any] = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or name.group(1) == "csrf_token":
            continue
        kind = re.search(r'type="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if kind and kind.group(1) == "checkbox":
            if "checked" in tag:
                data.setdefault(name.group(1), []).append(value.group(1) if value else "y")
        else:
            data[name.group(1)] = _unescape(value.group(1)) if value else ""
    for name, value in re.findall(
        r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S
    ):
        data[name] = _unescape(value.lstrip("\n"))
    for name, inner in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        data[name] = selected_value(inner)
    return data


def selected_value(options: str) -> str:
    """Return the value of the selected <option> among these ('' when none is)."""
    for tag in re.findall(r"<option[^>]*>", options):
        if re.search(r"\sselected[\s>=]", tag):
            return _unescape(re.search(r'value="([^"]*)"', tag).group(1))
    return ""


def _unescape(value: str) -> str:
    import html

    return html.unescape(value)


def save(client: Any, url: str = URL, **changes: Any) -> Any:
    data = current_values(client, url)
    data.update(changes)
    return client.post(url, data=data)


def form_row(app: Any, slug: str = "service-request") -> Form:
    with app.app_context():
        form = db.session.scalar(select(Form).where(Form.slug == slug))
        db.session.expunge(form)
        return form


def test_saving_the_page_unchanged_changes_nothing(app, admin_client):
    before = form_row(app)
    response = save(admin_client)
    assert response.status_code == 303, text(response)[:3000]
    after = form_row(app)
    for name in (
        "service_types",
        "time_windows",
        "closed_weekdays",
        "business_phone",
        "brand_color",
    ):
        assert getattr(after, name) == getattr(before, name), name
    with app.app_context():
        assert len(db.session.scalars(select(TermsVersion)).all()) == 1
        entry = db.session.scalar(select(AuditEntry))
        assert (entry.action, entry.target, entry.detail) == (
            "form saved",
            "service-request",
            "no change",
        )


def test_settings_are_validated_and_normalised(app, admin_client):
    response = save(
        admin_client,
        service_area_zips="60614, 60657\n60614\n1234 99999",
        allowed_domains="https://www.example.com\nnot a domain\nhttps://x.com/path",
        time_windows="08:00-11:00 Morning\n9-10 oops",
        closed_dates="2030-12-25\n25/12/2030",
        booking_horizon_days="120",
        business_phone="555",
        brand_color="red",
        logo_url="http://example.com/logo.png",
    )
    assert response.status_code == 400
    page = text(response)
    assert "Nothing was saved" in page
    assert "These are not valid ZIP codes: 1234, 99999" in page
    assert "these are not: not, a, domain, https://x.com/path" in page
    assert "Line 2 (9-10 oops)" in page
    assert "these are not dates: 25/12/2030" in page
    assert "Use 1 to 90 days" in page
    assert "https://" in page and "Use an https:// address" in page
    assert form_row(app).service_area_zips == []


def test_plain_http_embedding_origins_are_refused_in_production_only(app, admin_client):
    local = "http://localhost:8000\nhttps://www.example.com"
    response = save(admin_client, allowed_domains=local)
    assert response.status_code == 303, text(response)[:3000]
    assert form_row(app).allowed_domains == ["http://localhost:8000", "https://www.example.com"]
    app.config["PRODUCTION"] = True
    response = save(admin_client, allowed_domains="http://shop.example.com\nhttps://a.example")
    assert response.status_code == 400
    page = text(response)
    assert "must use https:// in production; change or remove: http://shop.example.com" in page
    assert form_row(app).allowed_domains == ["http://localhost:8000", "https://www.example.com"]
    response = save(admin_client, allowed_domains="https://shop.example.com")
    assert response.status_code == 303, text(response)[:3000]
    assert form_row(app).allowed_domains == ["https://shop.example.com"]


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("https://WWW.Example.com/", "https://www.example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80/", "http://example.com"),
        ("https://example.com:8443", "https://example.com:8443"),
        ("https://Bücher.example", "https://xn--bcher-kva.example"),
        ("https://ｅｘａｍｐｌｅ.com", "https://example.com"),
    ],
)
def test_embedding_origins_are_stored_as_browsers_compare_them(app, admin_client, typed, stored):
    response = save(admin_client, allowed_domains=typed)
    assert response.status_code == 303, text(response)[:3000]
    assert form_row(app).allowed_domains == [stored]


@pytest.mark.parametrize(
    "typed", ["https://a..example", "https://*.example.com", "ftp://example.com", "https://"]
)
def test_embedding_origins_that_are_not_origins_are_named(admin_client, typed):
    response = save(admin_client, allowed_domains=typed)
    assert response.status_code == 400
    assert f"these are not: {typed}" in text(response)


def test_settings_apply_to_the_live_wizard_at_once(app, admin_client, client):
    response = save(
        admin_client,
        service_area_zips="60614, 60657\n60614",
        allowed_domains="https://WWW.Example.com/\nhttps://shop.example.com",
        time_windows="07:30-09:00 Early bird\n13:00-17:00 Afternoon",
        closed_weekdays=["5", "6"],
        closed_dates="2030-12-25, 2030-01-01",
        booking_horizon_days="30",
        business_name="Acme Plumbing",
        business_phone="(312) 555-0177",
        brand_color="#AA3300",
        logo_url="https://cdn.example.com/logo.png",
        submissions_per_hour="40",
    )
    assert response.status_code == 303, text(response)[:3000]
    form = form_row(app)
    assert form.service_area_zips == ["60614", "60657"]
    assert form.allowed_domains == ["https://www.example.com", "https://shop.example.com"]
    assert form.time_windows == [
        {"id": "0730-0900", "label": "Early bird", "start": "07:30", "end": "09:00"},
        {"id": "13-17", "label": "Afternoon", "start": "13:00", "end": "17:00"},
    ]
    assert form.closed_weekdays == [5, 6]
    assert form.closed_dates == ["2030-01-01", "2030-12-25"]
    assert (form.booking_horizon_days, form.submissions_per_hour) == (30, 40)
    assert (form.business_name, form.business_phone) == ("Acme Plumbing", "+13125550177")
    assert (form.brand_color, form.logo_url) == ("#aa3300", "https://cdn.example.com/logo.png")
    # The wizard reads the row on every request: an out-of-area ZIP is refused now.
    wizard = Wizard(client)
    wizard.open()
    assert "Acme Plumbing" in wizard.page
    wizard.post({"zip": "10001"})
    assert "/out-of-area" in wizard.url or "outside" in wizard.page.lower()
    # Unpublishing takes the wizard down.
    save(admin_client, published=[])
    assert client.get("/f/service-request/").status_code == 404


def test_changed_terms_make_a_new_version_and_submissions_keep_theirs(app, admin_client):
    with app.app_context():
        first = db.session.scalar(select(TermsVersion))
        old = make_submission(terms_version_id=first.id)
        db.session.commit()
        old_id, first_id = old.id, first.id
    save(admin_client, terms="New terms.\r\nSecond line.")
    save(admin_client)  # unchanged: no new version
    with app.app_context():
        versions = db.session.scalars(select(TermsVersion).order_by(TermsVersion.version)).all()
        assert [(v.version, v.text) for v in versions][1:] == [(2, "New terms.\nSecond line.")]
        assert len(versions) == 2
        assert db.session.get(Submission, old_id).terms_version_id == first_id
        form = db.session.scalar(select(Form))
        assert form.current_terms.version == 2
    assert "Version 2" in text(admin_client.get(URL))


def test_service_types_map_to_live_job_types_and_warn_when_one_disappears(
    app, admin_client, sandbox
):
    state = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()
    heater = next(jt["id"] for jt in state["job_types"] if jt["name"] == "Water heater")
    data = current_values(admin_client)
    names = [k for k in data if re.fullmatch(r"service_types-\d+-name", k)]
    assert len(names) == len(formdefs.TEMPLATE_SERVICE_TYPES) + 1  # plus a blank row to add one
    data["service_types-0-job_type_id"] = heater
    data[names[-1]] = "Sump pump"
    data["service_types-1-name"] = ""  # removes "Drain cleaning"
    response = admin_client.post(URL, data=data)
    assert response.status_code == 303, text(response)[:2000]
    form = form_row(app)
    assert form.service_types[0] == {"name": "Plumbing repair", "job_type_id": heater}
    assert "Drain cleaning" not in [s["name"] for s in form.service_types]
    assert form.service_types[-1] == {"name": "Sump pump", "job_type_id": None}
    # HCP loses the job type: the page warns, naming the service type.
    with app.app_context():
        row = db.session.scalar(select(Form))
        row.service_types = [{"name": "Plumbing repair", "job_type_id": "jt_gone"}]
        db.session.commit()
    page = text(admin_client.get(URL))
    assert "The HCP job type mapped to &#39;Plumbing repair&#39; no longer exists" in page
    # Two service types of the same name are refused.
    data = current_values(admin_client)
    data["service_types-1-name"] = "Plumbing repair"
    assert "Each service type once only" in text(admin_client.post(URL, data=data))


def test_embed_snippet_is_ready_to_copy(admin_client):
    page = text(admin_client.get(URL))
    assert (
        "&lt;script src=&#34;http://localhost/static/embed.js&#34; "
        "data-form=&#34;service-request&#34; async&gt;&lt;/script&gt;"
        in page
        or '&lt;script src="http://localhost/static/embed.js" data-form="service-request" '
        "async&gt;&lt;/script&gt;"
        in page
    )


def test_new_form_from_the_template(app, admin_client):
    response = admin_client.post(
        "/admin/forms/new", data={"name": "Emergencies", "slug": "Emergency-1"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/forms/emergency-1"
    form = form_row(app, "emergency-1")
    assert form.definition["template"] == formdefs.TEMPLATE_NAME
    assert formdefs.missing_required_keys(form.definition) == []
    assert form.published is False
    with app.app_context():
        assert db.session.scalar(select(TermsVersion).where(TermsVersion.form_id == form.id))
    for bad in ("service-request", "new", "no spaces", "-x"):
        response = admin_client.post("/admin/forms/new", data={"name": "X", "slug": bad})
        assert response.status_code == 400, bad
    assert "Emergencies" in text(admin_client.get("/admin/forms"))


# ---------------------------------------------------------------- field mapping

FIELDS_URL = "/admin/forms/service-request/fields"


def mapping_of(client: Any, url: str = FIELDS_URL) -> dict[str, str]:
    page = text(client.get(url))
    data = {}
    for name, inner in re.findall(r'<select[^>]*name="(key_\d+)"[^>]*>(.*?)</select>', page, re.S):
        data[name] = selected_value(inner)
    return data


def field_index(app: Any, name: str, step: str) -> str:
    definition = form_row(app).definition
    for i, (s, f) in enumerate(formdefs.iter_fields(definition)):
        if f["name"] == name and s["slug"] == step:
            return f"key_{i}"
    raise KeyError(name)


def test_every_field_shows_its_housecall_pro_key(app, admin_client):
    mapping = mapping_of(admin_client)
    definition = form_row(app).definition
    assert len(mapping) == len(list(formdefs.iter_fields(definition)))
    assert mapping[field_index(app, "customer_email", "contact")] == "customer_email"
    assert mapping[field_index(app, "zip", "location")] == "zip"
    assert mapping[field_index(app, "zip", "contact")] == "zip"  # zip may be used twice
    assert mapping[field_index(app, "special_instructions", "description")] == ""
    page = text(admin_client.get(FIELDS_URL))
    assert "Housecall Pro Key" in page and "Not mapped" in page


def test_a_key_is_mapped_by_one_field_only_except_zip(app, admin_client):
    data = mapping_of(admin_client)
    data[field_index(app, "special_instructions", "description")] = "booking_reason"
    response = admin_client.post(FIELDS_URL, data=data)
    assert response.status_code == 400
    assert "booking_reason is mapped by more than one field" in text(response)
    data = mapping_of(admin_client)
    data[field_index(app, "special_instructions", "description")] = ""
    data[field_index(app, "urgency", "service")] = "booking_type"
    data[field_index(app, "booking_type", "service")] = ""  # optional keys may move or go
    assert admin_client.post(FIELDS_URL, data=data).status_code == 303
    definition = form_row(app).definition
    fields = {f["name"]: f.get("hcp_key") for _, f in formdefs.iter_fields(definition)}
    assert fields["urgency"] == "booking_type" and fields["booking_type"] is None
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "mapping saved"))
        assert "urgency: - → booking_type" in entry.detail


def test_a_published_form_cannot_lose_a_required_key(app, admin_client):
    data = mapping_of(admin_client)
    data[field_index(app, "street", "contact")] = ""
    data[field_index(app, "city", "contact")] = ""
    response = admin_client.post(FIELDS_URL, data=data)
    assert response.status_code == 400
    assert "Missing required HousecallPro mappings: street, city" in text(response)
    assert formdefs.missing_required_keys(form_row(app).definition) == []


def test_an_unpublished_form_missing_keys_cannot_be_published(app, admin_client, client):
    save(admin_client, published=[])
    data = mapping_of(admin_client)
    data[field_index(app, "street", "contact")] = ""
    assert admin_client.post(FIELDS_URL, data=data).status_code == 303
    assert formdefs.missing_required_keys(form_row(app).definition) == ["street"]
    page = text(admin_client.get(FIELDS_URL))
    assert "Missing required HousecallPro mappings: street" in page
    assert "Missing required HousecallPro mappings: street" in text(
        admin_client.get("/admin/forms")
    )
    response = save(admin_client, published=["y"])
    assert response.status_code == 400
    assert "Missing required HousecallPro mappings: street" in text(response)
    assert form_row(app).published is False
    assert client.get("/f/service-request/").status_code == 404


def test_the_sync_fails_a_submission_of_a_form_missing_keys_with_the_same_words(app, admin_client):
    from hcpform.jobs import sync_submission

    save(admin_client, published=[])
    data = mapping_of(admin_client)
    data[field_index(app, "street", "contact")] = ""
    admin_client.post(FIELDS_URL, data=data)
    with app.app_context():
        sub_id = make_submission().id
        db.session.commit()
        assert sync_submission(sub_id) == "failed"
    with app.app_context():
        sub = db.session.get(Submission, sub_id)
        assert sub.status == Status.FAILED
        assert sub.last_error == "Missing required HousecallPro mappings: street"


@pytest.mark.parametrize("url", [URL, FIELDS_URL])
def test_unknown_forms_are_404(admin_client, url):
    assert admin_client.get(url.replace("service-request", "nope")).status_code == 404


def test_scheduling_settings_are_saved_and_keep_each_service_types_length(
    app, admin_client, client
):
    with app.app_context():
        form = db.session.scalar(select(Form).where(Form.slug == "service-request"))
        types = [dict(s) for s in form.service_types]
        types[1] |= {"duration_minutes": 90, "employee_ids": ["pro_x"]}
        form.service_types = types
        db.session.commit()
    assert '<option selected value="booked">' in text(admin_client.get(URL))  # the default
    response = save(
        admin_client, scheduling_mode="preferences", booking_days="7", lead_time_minutes="240"
    )
    assert response.status_code == 303, text(response)[:3000]
    form = form_row(app)
    assert (form.scheduling_mode, form.booking_days, form.lead_time_minutes) == (
        "preferences", 7, 240,
    )  # fmt: skip
    assert form.service_types[1]["duration_minutes"] == 90
    assert form.service_types[1]["employee_ids"] == ["pro_x"]
    bad = save(admin_client, scheduling_mode="sometimes", booking_days="0")
    assert bad.status_code == 400 and "Use 1 to 60 days" in text(bad)
    # The live wizard offers the form's own windows as preferred times now.
    wizard = Wizard(client)
    wizard.complete(submit=False)
    assert "preferred time" in wizard.page
