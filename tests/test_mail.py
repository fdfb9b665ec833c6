"""Confirmations and office alerts by email (issue 13), against real SMTP servers started here.

Each server is an aiosmtpd Controller on a free port: one that keeps what it gets, one that
refuses (5xx), one that drops the connection in the middle of the first message, one that is
down for a while. Messages go through the outbox and the workers' code, never a mock.
"""

from __future__ import annotations

import asyncio
import email
import re
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from hcpform import mailjobs, outbox
from hcpform.extensions import db
from hcpform.models import OutboxMessage, Submission
from tests.conftest import free_port
from tests.factories import default_form, make_submission
from tests.helpers import Wizard, person, reference_in, set_form, step_data, wait_for

pytest_plugins = ["tests.admin_fixtures"]

OFFICE = ["dispatch@plumbing.example", "owner@plumbing.example"]


class Server:
    """A real SMTP server: keeps each message it accepts; `mode` says how it misbehaves."""

    def __init__(self, port: int, mode: str = "ok") -> None:
        self.port, self.mode = port, mode
        self.messages: list[EmailMessage] = []
        self.data_calls = 0
        self.delay = 0.0
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Accept, refuse, or drop the connection, as the mode says."""
        self.data_calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "refuse":
            return "554 5.7.1 Message refused by policy"
        if self.mode == "drop" and self.data_calls == 1:
            server.transport.abort()  # gone after the body, before any answer
            return "250 OK"
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    def start(self) -> Server:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Any:
    """The test's SMTP server (started; a test may stop it or change its mode)."""
    server = Server(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: dict[str, Any], smtp: Server) -> dict[str, Any]:
    """Mail on, through the test's server, with short retries."""
    return settings | {
        "MAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
        "MAIL_FROM": "requests@plumbing.example",
        "MAIL_TIMEOUT": 3.0,
        "MAIL_LEASE_SECONDS": 20,
        "MAIL_RETRY_BASE_SECONDS": 0.2,
        "MAIL_RETRY_CAP_SECONDS": 1.0,
        "MAIL_MAX_ATTEMPTS": 4,
        "MAIL_REFUSED_ATTEMPTS": 2,
        "MAIL_SWEEP_SECONDS": 1,
    }


def submit(app: Any, client: Any, **answers: str) -> Submission:
    """Walk the wizard (contact preference and other answers given) and return the row."""
    wizard = Wizard(client)
    data = person()
    for key, value in answers.items():
        placed = False
        for step in data.values():
            if key in step:
                step[key], placed = value, True
        if not placed:
            data["contact"][key] = value
    wizard.complete(data)
    reference = reference_in(wizard.page)
    with app.app_context():
        sub = db.session.scalar(select(Submission).where(Submission.reference == reference))
        db.session.expunge(sub)
    return sub


def messages(app: Any, sub_id: int) -> list[OutboxMessage]:
    """Return a submission's outbox rows (detached)."""
    with app.app_context():
        rows = outbox.for_submission(sub_id)
        for row in rows:
            db.session.expunge(row)
    return rows


def send_due(app: Any) -> list[str]:
    """Send every due message once, as a worker's jobs would; return their results."""
    with app.app_context():
        return [mailjobs.send_message(i) for i in outbox.due_ids(now=_now())]


def _now() -> Any:
    from hcpform.timeutil import utcnow

    return utcnow()


def bodies(message: EmailMessage) -> tuple[str, str]:
    """Return a message's plain text and HTML bodies."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "both parts are there"
    return text.get_content(), html.get_content()


def test_confirmation_and_office_alert_are_queued_with_the_submission_and_sent(
    app: Any, client: Any, smtp: Server
) -> None:
    set_form(app, office_emails=OFFICE, business_phone="+13125550100")
    sub = submit(app, client, contact_method="text")
    rows = messages(app, sub.id)
    assert sorted((r.kind, r.recipient) for r in rows) == [
        ("confirmation", "jane.doe@example.com"),
        ("office_alert", OFFICE[0]),
        ("office_alert", OFFICE[1]),
    ]
    assert {r.state for r in rows} == {"queued"} and all(r.channel == "email" for r in rows)
    assert sorted(send_due(app)) == ["sent", "sent", "sent"]
    assert len(smtp.messages) == 3
    confirmation = next(m for m in smtp.messages if m["To"] == "jane.doe@example.com")
    assert sub.reference in confirmation["Subject"]
    text, html = bodies(confirmation)
    for body in (text, html):
        assert sub.reference in body
        assert "(312) 555-0100" in body  # the business's phone
        assert "What happens next" in body
    assert not re.search(r"<img\b", html, re.I)  # no tracking pixel, no remote image
    assert not re.search(r"src=[\"']?https?:", html, re.I)
    row = next(r for r in messages(app, sub.id) if r.kind == "confirmation")
    assert (
        confirmation["Message-ID"]
        == f"<hcpform-outbox-{row.id}-{row.created_at:%Y%m%d%H%M%S}@plumbing.example>"
    )
    alert = next(m for m in smtp.messages if m["To"] == OFFICE[0])
    assert alert["Subject"].startswith(f"New request {sub.reference}")
    text, _ = bodies(alert)
    assert "Jane Doe" in text and "(312) 555-0142" in text
    assert "Text me" in text  # the contact preference, for the office
    assert {r.state for r in messages(app, sub.id)} == {"sent"}
    assert send_due(app) == []  # nothing is sent twice


def test_an_emergency_alert_says_urgent_in_its_subject(app: Any, client: Any, smtp: Server) -> None:
    set_form(app, office_emails=OFFICE[:1])
    sub = submit(app, client, urgency="emergency")
    assert sorted(r.kind for r in messages(app, sub.id)) == ["confirmation", "emergency_alert"]
    send_due(app)
    alert = next(m for m in smtp.messages if m["To"] == OFFICE[0])
    assert alert["Subject"].startswith("URGENT:") and sub.reference in alert["Subject"]
    assert "EMERGENCY" in bodies(alert)[0]


def test_the_update_when_the_job_is_created_goes_to_those_who_chose_email(
    app: Any, client: Any, smtp: Server, start_worker: Any
) -> None:
    by_email = submit(app, client, contact_method="email")
    by_call = submit(app, app.test_client(), contact_method="call")
    start_worker("--name", "mail-worker")

    def synced_and_sent() -> bool:
        """Both jobs exist in HCP and every email is sent."""
        with app.app_context():
            subs = [db.session.get(Submission, s.id) for s in (by_email, by_call)]
            db.session.expire_all()
            rows = db.session.scalars(select(OutboxMessage)).all()
            done = all(s is not None and s.hcp_job_id for s in subs)
            return done and len(rows) == 3 and all(r.state == "sent" for r in rows)

    wait_for(synced_and_sent, timeout=60)
    kinds = sorted((r.kind, r.submission_id) for r in messages(app, by_email.id))
    assert kinds == [("confirmation", by_email.id), ("job_update", by_email.id)]
    # "Call me": the confirmation they asked for by sending the request, and no update.
    assert [r.kind for r in messages(app, by_call.id)] == ["confirmation"]
    update = next(
        m
        for m in smtp.messages
        if by_email.reference in m["Subject"] and "scheduled" in m["Subject"]
    )
    assert "confirmed for" in bodies(update)[0]
    with app.app_context():
        call_row = db.session.get(Submission, by_call.id)
        assert call_row.contact_method == "call"


def test_a_refusing_server_is_retried_then_the_message_fails_with_its_reason(
    app: Any, admin_client: Any, smtp: Server
) -> None:
    smtp.mode = "refuse"
    with app.app_context():
        sub = make_submission()
        outbox.queue_submitted(sub, default_form(), now=_now())
        db.session.commit()
        message_id, sub_id = outbox.for_submission(sub.id)[0].id, sub.id
        assert mailjobs.send_message(message_id) == "retry"
        row = db.session.get(OutboxMessage, message_id)
        assert row.state == "queued" and "554" in row.last_error and row.next_attempt_at
    wait_for(lambda: send_due(app) == ["failed"], timeout=10)
    with app.app_context():
        row = db.session.get(OutboxMessage, message_id)
        assert row.state == "failed" and row.attempts == 2
        assert "554 5.7.1 Message refused by policy" in row.last_error
    page = admin_client.get(f"/admin/submissions/{sub_id}").get_data(as_text=True)
    assert 'data-email-state="failed"' in page and "Message refused by policy" in page
    assert smtp.messages == []


def test_a_connection_dropped_mid_message_is_retried_and_delivered_once(
    app: Any, smtp: Server
) -> None:
    smtp.mode = "drop"
    with app.app_context():
        sub = make_submission()
        outbox.queue_submitted(sub, default_form(), now=_now())
        db.session.commit()
        message_id = outbox.for_submission(sub.id)[0].id
        assert mailjobs.send_message(message_id) == "retry"
        assert "Disconnected" in db.session.get(OutboxMessage, message_id).last_error
    wait_for(lambda: send_due(app) == ["sent"], timeout=10)
    assert smtp.data_calls == 2 and len(smtp.messages) == 1
    assert send_due(app) == []


def test_a_server_down_for_a_while_gets_the_message_after_backoff(app: Any, smtp: Server) -> None:
    smtp.stop()
    with app.app_context():
        sub = make_submission()
        outbox.queue_submitted(sub, default_form(), now=_now())
        db.session.commit()
        message_id = outbox.for_submission(sub.id)[0].id
        assert mailjobs.send_message(message_id) == "retry"
        first = db.session.get(OutboxMessage, message_id)
        assert "Connection" in first.last_error or "refused" in first.last_error.lower()
        assert first.next_attempt_at is not None and first.next_attempt_at > _now()
        assert outbox.due_ids(now=_now()) == []  # it waits for its backoff
    time.sleep(1.2)
    assert send_due(app) == ["retry"]  # still down: the wait grows
    smtp.start()
    wait_for(lambda: "sent" in send_due(app), timeout=10)
    assert len(smtp.messages) == 1
    with app.app_context():
        assert db.session.get(OutboxMessage, message_id).attempts == 3


def test_two_workers_racing_on_one_message_send_it_once(
    app: Any, smtp: Server, start_worker: Any
) -> None:
    smtp.delay = 1.0  # both workers hold the job while the first one is sending
    with app.app_context():
        sub = make_submission()
        outbox.queue_submitted(sub, default_form(), now=_now())
        db.session.commit()
        message_id = outbox.for_submission(sub.id)[0].id
        for _ in range(4):
            assert mailjobs.enqueue_message(message_id)
    start_worker("--name", "racer-1")
    start_worker("--name", "racer-2")

    def sent() -> bool:
        """The message is marked sent."""
        with app.app_context():
            return db.session.get(OutboxMessage, message_id).state == "sent"

    wait_for(sent, timeout=40)
    time.sleep(2.5)  # the other jobs run and find nothing to do
    assert len(smtp.messages) == 1 and smtp.data_calls == 1


def test_a_killed_send_is_taken_over_after_its_lease(app: Any, smtp: Server) -> None:
    with app.app_context():
        sub = make_submission()
        outbox.queue_submitted(sub, default_form(), now=_now())
        db.session.commit()
        message_id = outbox.for_submission(sub.id)[0].id
        token = outbox.claim(message_id, now=_now())  # a worker that died mid-send
        assert token and outbox.claim(message_id, now=_now()) is None
        assert mailjobs.send_message(message_id) == "skipped"
        from datetime import timedelta

        later = _now() + timedelta(seconds=21)
        assert outbox.due_ids(now=later) == [message_id]
        assert outbox.claim(message_id, now=later) is not None


def test_the_queue_is_filled_once_per_message(app: Any) -> None:
    with app.app_context():
        sub = make_submission()
        assert outbox.queue_submitted(sub, default_form(), now=_now()) == 1
        assert outbox.queue_submitted(sub, default_form(), now=_now()) == 0
        db.session.commit()
        assert len(outbox.for_submission(sub.id)) == 1


def test_office_addresses_are_validated_in_the_form_settings(app: Any, admin_client: Any) -> None:
    page = admin_client.get("/admin/forms/service-request").get_data(as_text=True)
    assert 'name="office_emails"' in page and 'name="contact_method_default"' in page
    with app.app_context():
        found, problems = outbox.parse_addresses("a@plumbing.example, nope, b@plumbing.example")
    assert found == ["a@plumbing.example", "b@plumbing.example"]
    assert problems == ["“nope” is not an email address"]


def test_the_password_is_never_shown_nor_sent_without_tls(app: Any, smtp: Server) -> None:
    from hcpform import mail

    assert mail.describe("smtp://user:s3cret%21@mail.example:587") == (
        "smtp://user:***@mail.example:587"
    )
    with pytest.raises(ValueError) as refused:
        mail.parse_url("ftp://user:s3cret@mail.example")
    assert "s3cret" not in str(refused.value)
    app.config["MAIL_URL"] = f"smtp://user:s3cret@127.0.0.1:{smtp.port}"
    with app.app_context():
        sub = make_submission()
        outbox.queue_submitted(sub, default_form(), now=_now())
        db.session.commit()
        message_id = outbox.for_submission(sub.id)[0].id
        assert mailjobs.send_message(message_id) == "retry"  # this server offers no STARTTLS
        row = db.session.get(OutboxMessage, message_id)
        assert "no STARTTLS" in row.last_error and "s3cret" not in row.last_error
        assert "s3cret" not in outbox.mail_status()["server"]
    assert smtp.data_calls == 0


def test_a_spanish_request_gets_its_confirmation_in_spanish_and_the_office_in_english(
    app: Any, client: Any, smtp: Server
) -> None:
    set_form(app, office_emails=OFFICE[:1], business_phone="+13125550100")
    wizard = Wizard(client)
    answers = person()
    wizard.open("/f/service-request/?lang=es")
    for step in ("location", "service", "description", "contact", "classification", "schedule"):
        wizard.post(step_data(wizard.page, step, answers))
    wizard.post({})
    reference = reference_in(wizard.page)
    assert sorted(send_due(app)) == ["sent", "sent"]
    confirmation = next(m for m in smtp.messages if m["To"] == "jane.doe@example.com")
    assert confirmation["Subject"] == f"Recibimos su solicitud {reference}"
    text, html = bodies(confirmation)
    for body in (text, html):
        assert "Hola, Jane:" in body and "Limpieza de drenajes" in body
        assert "Qué sigue" in body and "(312) 555-0100" in body
    assert '<html lang="es">' in html
    alert = next(m for m in smtp.messages if m["To"] == OFFICE[0])
    assert alert["Subject"].startswith(f"New request {reference}")  # the office reads English
    assert '<html lang="en">' in bodies(alert)[1]
