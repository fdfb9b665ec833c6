"""A form as JSON: export, import (CLI and admin), duplicate; the settings page's own checks."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hcpform import formdefs
from hcpform.admin import formio
from hcpform.extensions import db
from hcpform.models import AuditEntry, Form, TermsVersion
from tests.admin_helpers import csrf_of, text
from tests.conftest import worker_env
from tests.test_admin_forms import URL, current_values
from tests.test_queue import run_flask

pytest_plugins = ["tests.admin_fixtures"]


def _form(slug: str = formdefs.DEFAULT_SLUG) -> Form:
    form: Form = db.session.scalar(select(Form).where(Form.slug == slug))
    return form


def _customise(form: Form) -> None:
    """Give a form a value in every setting, unlike the template's."""
    form.name = "Plumbing – north"
    form.service_types = [
        {"name": "Drain cleaning", "job_type_id": "jt_1", "duration_minutes": 90,
         "employee_ids": ["pro_a", "pro_b"]},
        {"name": "Water heater", "job_type_id": None, "creates": "estimate", "repeats": "yearly"},
        {"name": "Callback", "job_type_id": None, "creates": "lead"},
    ]  # fmt: skip
    form.service_area_zips = ["78701", "78702"]
    form.time_windows = [
        {"id": "0830-1100", "label": "8:30–11 am", "start": "08:30", "end": "11:00"},
        {"id": "13-16", "label": "1–4 pm", "start": "13:00", "end": "16:00"},
    ]
    form.closed_weekdays = [5, 6]
    form.closed_dates = ["2027-01-01", "2027-12-25"]
    form.booking_horizon_days = 30
    form.scheduling_mode = "preferences"
    form.booking_days = 7
    form.lead_time_minutes = 240
    form.territories = {"pro_a": ["787"], "pro_b": ["786", "78702"]}
    form.dispatch_jobs = True
    form.emergency_keywords = ["flooding", "burst pipe"]
    form.emergency_job_type_id = "jt_9"
    form.contact_method_default = "email"
    form.office_emails = ["office@example.com"]
    form.allowed_domains = ["https://www.example.com"]
    form.business_name = "North Plumbing"
    form.business_phone = "+13125550100"
    form.brand_color = "#112233"
    form.logo_url = "https://example.com/logo.png"
    form.submissions_per_hour = 40
    form.abandoned_after_minutes = 30
    form.abandoned_to_hcp = True
    form.time_zone = "America/Denver"
    definition = copy.deepcopy(form.definition)
    definition["steps"][1]["fields"][1]["label"] = "How soon?"
    form.definition = definition
    db.session.add(TermsVersion(form_id=form.id, version=2, text="Our own terms."))
    db.session.commit()


@pytest.mark.both_dbs
def test_export_then_import_gives_an_identical_form(app):
    with app.test_request_context():
        _customise(_form())
        exported = formio.export_form(_form())
        assert exported["format"] == "hcpform-form/1" and exported["terms"] == "Our own terms."
        result = formio.import_form(json.loads(json.dumps(exported | {"slug": "copy-1"})))
        db.session.commit()
        assert result.created and not result.form.published
        again = formio.export_form(_form("copy-1"))
        assert again == exported | {"slug": "copy-1"}
        # The same file on the form it came from changes nothing, not even the terms' version.
        versions = len(_form().terms_versions)
        result = formio.import_form(exported)
        db.session.commit()
        assert result.changes == [] and len(_form().terms_versions) == versions
        assert formio.export_form(_form()) == exported


def test_new_terms_text_is_a_new_terms_version(app):
    with app.test_request_context():
        data = formio.export_form(_form()) | {"terms": "Pay on the day."}
        result = formio.import_form(data)
        db.session.commit()
        assert "terms (version 2)" in result.changes
        assert [t.text for t in _form().terms_versions][-1] == "Pay on the day."
        assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "form imported"))


def _without(definition: dict[str, Any], key: str) -> dict[str, Any]:
    definition = copy.deepcopy(definition)
    for _, field in formdefs.iter_fields(definition):
        if field.get("hcp_key") == key:
            field["hcp_key"] = None
    return definition


def test_a_missing_mapping_is_refused_with_the_builders_message_and_nothing_changes(app):
    with app.test_request_context():
        before = formio.export_form(_form())
        data = before | {"definition": _without(before["definition"], "customer_email")}
        # The published form keeps being published: the field mapping page's rule.
        with pytest.raises(formio.ImportRefused) as refused:
            formio.import_form(data | {"name": "Changed"})
        assert refused.value.errors[0].startswith(
            "Missing required HousecallPro mappings: customer_email. A published form must map"
        )
        assert formio.export_form(_form()) == before
        # A new form with --publish: the exact message, and no form is created.
        with pytest.raises(formio.ImportRefused) as refused:
            formio.import_form(data | {"slug": "other"}, publish=True)
        assert refused.value.errors == ["Missing required HousecallPro mappings: customer_email"]
        assert _form("other") is None
        # Without --publish the new form is made, unpublished, and says why.
        result = formio.import_form(data | {"slug": "other"})
        assert not result.form.published
        assert result.unpublished_because == (
            "Missing required HousecallPro mappings: customer_email"
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "Unknown keys (remove them): colour"),
        ({"format": "hcpform-form/9"}, "format: this file is not an hcpform form export"),
        ({"service_area_zips": "78701"}, "service_area_zips: must be a list"),
        ({"booking_days": True}, "booking_days: must be a whole number"),
        (
            {"service_types": [{"name": "Drains", "colour": "red"}]},
            "service_types[1]: unknown keys (remove them): colour",
        ),
        (
            {
                "definition": {
                    "steps": [
                        {"slug": "a", "fields": [{"name": "x", "type": "text", "hcp_key": "fax"}]}
                    ]
                }
            },
            "definition step a, field 1 (x): 'fax' is not a Housecall Pro key",
        ),  # fmt: skip
        ({"service_area_zips": [78701]}, "service_area_zips: must be a list of texts"),
        (
            {"service_types": [{"name": "Drains", "employee_ids": "pro_a"}]},
            "service_types[1].employee_ids: must be a list",
        ),
        ({"time_zone": "Mars/Base"}, "time_zone: 'Mars/Base' is not a time zone"),
        (
            {"abandoned_after_minutes": 1},
            "abandoned_after_minutes: Enter a number of minutes from 5 to 10080",
        ),
        ({"slug": "Bad Slug"}, "slug: Use lower-case letters, digits and dashes"),
    ],
)
def test_bad_files_are_refused_naming_the_key(app, change, message):
    with app.test_request_context():
        before = formio.export_form(_form())
        with pytest.raises(formio.ImportRefused) as refused:
            formio.import_form(before | change)
        assert any(e.startswith(message) for e in refused.value.errors), refused.value.errors
        assert formio.export_form(_form()) == before
        assert db.session.scalar(select(Form.id).where(Form.slug == "bad-slug")) is None


@pytest.mark.parametrize(
    ("key", "json_value", "page_value", "message"),
    [
        ("service_area_zips", ["78701", "1234"], "78701, 1234",
         "These are not valid ZIP codes: 1234"),
        ("time_windows", [{"label": "late", "start": "18:00", "end": "09:00"}],
         "18:00-09:00 late", "Line 1 (18:00-09:00 late): the end must be after the start"),
        ("allowed_domains", ["https://example.com/page"], "https://example.com/page",
         "Write each like https://www.example.com (no path); these are not: "
         "https://example.com/page"),
        ("office_emails", ["office"], "office", "office"),
    ],
)  # fmt: skip
def test_import_refuses_what_the_settings_page_refuses_with_its_message(
    app, admin_client, key, json_value, page_value, message
):
    page = text(admin_client.post(URL, data=current_values(admin_client) | {key: page_value}))
    assert message in page.replace("&#39;", "'")
    with app.test_request_context():
        before = formio.export_form(_form())
        with pytest.raises(formio.ImportRefused) as refused:
            formio.import_form(before | {key: json_value})
        assert any(e.startswith(f"{key}: ") and message in e for e in refused.value.errors)
        assert formio.export_form(_form()) == before


def test_cli_exports_and_imports_with_exit_codes(settings, tmp_path):
    env = worker_env(settings, tmp_path)
    assert run_flask(["init-db"], env, tmp_path).returncode == 0
    exported = run_flask(["form", "export", "service-request"], env, tmp_path)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data["format"] == "hcpform-form/1" and data["slug"] == "service-request"

    path = Path(tmp_path / "north.json")
    path.write_text(json.dumps(data | {"slug": "north", "name": "North"}))
    created = run_flask(["form", "import", str(path), "--publish"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    assert "Created form 'north'" in created.stdout and "The form is published." in created.stdout
    assert json.loads(run_flask(["form", "export", "north"], env, tmp_path).stdout) == data | {
        "slug": "north",
        "name": "North",
    }

    broken = data | {"slug": "south", "definition": _without(data["definition"], "zip")}
    path.write_text(json.dumps(broken))
    refused = run_flask(["form", "import", str(path), "--publish"], env, tmp_path)
    assert refused.returncode == 1
    assert "Error: Missing required HousecallPro mappings: zip\n" in refused.stderr
    assert "Nothing was changed." in refused.stderr
    missing = run_flask(["form", "export", "south"], env, tmp_path)
    assert missing.returncode == 1 and "There is no form with the slug south" in missing.stderr

    piped = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "hcpform", "form", "import", "-"],
        input=json.dumps(data | {"slug": "piped"}), env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert piped.returncode == 0 and "Created form 'piped'" in piped.stdout, piped.stderr

    path.write_text("{not json")
    assert run_flask(["form", "import", str(path)], env, tmp_path).returncode == 1


def test_admin_downloads_uploads_and_duplicates_with_csrf(app, admin_client):
    app.config["WTF_CSRF_ENABLED"] = True
    page = text(admin_client.get(URL))
    assert "Download as JSON" in page and "Duplicate form" in page
    token = csrf_of(page)
    download = admin_client.get(URL + "/export.json")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == 'attachment; filename="service-request.json"'
    data = json.loads(download.get_data())

    def upload(body: dict[str, Any], **extra: str) -> Any:
        file = (io.BytesIO(json.dumps(body).encode()), "form.json")
        fields = {"file": file, "back": "service-request", **extra}
        return admin_client.post("/admin/forms/import", data=fields, follow_redirects=True)

    assert upload(data | {"slug": "east"}).status_code == 400  # no CSRF token
    response = upload(data | {"slug": "east", "name": "East"}, csrf_token=token, publish="y")
    assert response.status_code == 200 and "Created the form East" in text(response)
    refused = upload(data | {"colour": "red"}, csrf_token=token)
    assert "Unknown keys (remove them): colour" in text(refused)

    response = admin_client.post(
        URL + "/duplicate", data={"csrf_token": token, "slug": "west", "name": "West"}
    )
    assert response.status_code == 303 and response.headers["Location"].endswith("/forms/west")
    taken = admin_client.post(
        URL + "/duplicate",
        data={"csrf_token": token, "slug": "west", "name": "West"},
        follow_redirects=True,
    )
    assert "The slug west is already used by another form" in text(taken)
    with app.app_context():
        east, west = _form("east"), _form("west")
        assert east.published and not west.published and west.name == "West"
        source = formio.export_form(_form())
        assert formio.export_form(west) == source | {"slug": "west", "name": "West"}
        actions = db.session.scalars(select(AuditEntry.action)).all()
        assert {"form exported", "form imported", "form duplicated"} <= set(actions)


def test_the_documented_example_imports(app):
    doc = (Path(__file__).resolve().parent.parent / "docs" / "forms.md").read_text()
    example = json.loads(doc.split("```json\n", 1)[1].split("```", 1)[0])
    with app.test_request_context():
        result = formio.import_form(example | {"slug": "example"})
        db.session.commit()
        assert result.created and result.unpublished_because.startswith(
            "Missing required HousecallPro mappings: customer_fname"
        )
        assert formio.export_form(result.form) == example | {"slug": "example"}
