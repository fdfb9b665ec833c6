"""The homeowner's language: ?lang=, the draft, Accept-Language, the switch, and HCP's tag."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from hcpform.extensions import db
from hcpform.models import Draft, Form, Submission
from hcpform.sync import sync_submission
from tests.helpers import Wizard, person, reference_in, set_form, step_data

pytestmark = pytest.mark.both_dbs


def html_lang(page: str) -> str:
    match = re.search(r'<html lang="([^"]+)"', page)
    assert match, page[:300]
    return match.group(1)


def test_english_by_default(client):
    wizard = Wizard(client)
    wizard.open()
    assert html_lang(wizard.page) == "en"
    assert "Check your area" in wizard.page
    assert 'data-lang-switch="es"' in wizard.page and "Español" in wizard.page
    assert "data-messages" not in wizard.page  # wizard.js keeps its own English


def test_lang_param_survives_on_the_draft_without_the_param(client, app):
    wizard = Wizard(client)
    wizard.open("/f/service-request/?lang=es")
    assert html_lang(wizard.page) == "es"
    assert "lang=es" in re.search(r'<form class="wizard-form"[^>]*action="([^"]+)"', wizard.page)[1]
    wizard.post({"zip": "60614"})
    assert "lang=" not in wizard.url
    assert html_lang(wizard.page) == "es"
    assert 'data-lang-switch="en"' in wizard.page
    with app.app_context():
        assert db.session.scalar(select(Draft)).answers["_lang"] == "es"


def test_accept_language_spanish(client):
    page = client.get(
        "/f/service-request/", headers={"Accept-Language": "es-US,es;q=0.9,en;q=0.5"}
    ).get_data(as_text=True)
    assert html_lang(page) == "es"
    page = client.get(
        "/f/service-request/", headers={"Accept-Language": "fr-FR,de;q=0.8"}
    ).get_data(as_text=True)
    assert html_lang(page) == "en"  # nothing we speak: the form's default


def test_the_switch_keeps_the_answers(client, app):
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "60614"})
    wizard.post({"booking_type": "Water heater", "urgency": "flexible"})
    switch = re.search(r'href="([^"]+)"[^>]*data-lang-switch="es"', wizard.page)[1]
    wizard.open(switch.replace("&amp;", "&"))
    assert html_lang(wizard.page) == "es"
    wizard.open(wizard.url.replace("/description", "/service").split("&lang")[0])
    assert html_lang(wizard.page) == "es"  # the draft speaks Spanish now
    assert 'value="Water heater" selected' in wizard.page
    assert 'value="flexible" checked' in wizard.page
    back = re.search(r'href="([^"]+)"[^>]*data-lang-switch="en"', wizard.page)[1]
    wizard.open(back.replace("&amp;", "&"))
    assert html_lang(wizard.page) == "en"
    with app.app_context():
        assert db.session.scalar(select(Draft)).answers["_lang"] == "en"


def test_spanish_step_one_and_a_spanish_validation_message(client):
    wizard = Wizard(client)
    wizard.open("/f/service-request/?lang=es")
    assert "<title>Paso 1 de 6: Verifique su zona – Your Home Services</title>" in wizard.page
    assert "¿Dónde necesita el servicio?" in wizard.page and "Código postal" in wizard.page
    assert ">Continuar</button>" in wizard.page
    assert "Le quedan %(count)s caracteres" in wizard.page.replace("&#34;", '"')  # wizard.js's
    response = wizard.post({"zip": "12"})
    assert response.status_code == 400
    assert "Hay un problema" in wizard.page
    assert "Escriba un código postal de 5 dígitos" in wizard.page
    assert "<title>Error: Paso 1 de 6" in wizard.page
    wizard.post({"zip": "60614"})
    assert "¿Qué tan urgente es?" in wizard.page and "Calentador de agua" in wizard.page
    response = wizard.post({})
    assert "Elija el tipo de servicio que necesita" in wizard.page


def test_a_business_text_falls_back_to_the_form_language(client, app):
    with app.app_context():
        form = db.session.scalar(select(Form))
        definition = dict(form.definition)
        steps = [dict(s) for s in definition["steps"]]
        steps[0]["title"] = "Where are you?"
        definition["steps"] = steps
    set_form(app, definition=definition)
    page = client.get("/f/service-request/?lang=es").get_data(as_text=True)
    assert "Paso 1 de 6: Where are you?" in page  # the business's own text, not empty
    assert "¿Dónde necesita el servicio?" in page  # the template's unchanged heading


def test_a_spanish_request_reaches_hcp_with_a_spanish_tag_and_note(client, app, sandbox):
    wizard = Wizard(client)
    answers = person()
    wizard.open("/f/service-request/?lang=es")
    for step in ("location", "service", "description", "contact", "classification", "schedule"):
        response = wizard.post(step_data(wizard.page, step, answers))
        assert response.status_code == 200, (step, wizard.page[:1500])
        assert html_lang(wizard.page) == "es"
    assert "Revise sus respuestas antes de enviar su solicitud" in wizard.page
    assert "Calentador de agua" in wizard.page or "Limpieza de drenajes" in wizard.page
    wizard.post({})
    assert "Solicitud enviada" in wizard.page and "Qué sigue" in wizard.page
    reference = reference_in(wizard.page)
    with app.app_context():
        sub = db.session.scalar(select(Submission).where(Submission.reference == reference))
        assert sub.language == "es"
        assert sub.service_type == "Drain cleaning"  # answers stay the form's own values
        assert sync_submission(sub.id) == "synced"
    job = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["jobs"][0]
    assert "Spanish" in job["tags"]
    notes = " ".join(n["content"] for n in job["notes"])
    assert "Language: Spanish – the customer filled the form in Spanish" in notes


def test_an_english_request_has_no_language_tag(client, app, sandbox):
    wizard = Wizard(client)
    wizard.complete()
    with app.app_context():
        sub = db.session.scalar(select(Submission))
        assert sub.language == "en"
        assert sync_submission(sub.id) == "synced"
    job = requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["jobs"][0]
    assert "Spanish" not in job["tags"]
    assert "Language:" not in " ".join(n["content"] for n in job["notes"])


def test_messages_outside_a_request_stay_english(app):
    from hcpform import validation

    with app.app_context():  # the worker and the CLI have no request, hence no homeowner
        with pytest.raises(validation.Invalid, match="Enter a ZIP code of 5 digits"):
            validation.parse_zip("12")
