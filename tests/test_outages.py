"""Outages: Redis, HCP and the database go away; the app restarts; a worker dies mid-job.

Each test waits by polling with a deadline, and measures how long recovery took.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from hcpform.extensions import db
from hcpform.models import Draft, HcpCall, Status, Submission
from tests.conftest import free_port, kill_tree
from tests.helpers import (
    Wizard,
    hidden_inputs,
    person,
    reference_in,
    step_data,
    token_of,
    wait_for,
)

# The shortest lease check_config allows with these timeouts: a job timeout of 10 calls x
# (0.25 + 0.25 + 1.5) s = 20 s, and one call more.
LEASE = 23
JOB_TIMEOUT = 20


def statuses(app: Any) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(Submission.status, func.count()).group_by(Submission.status)
        )
        found = {status: count for status, count in rows}
        db.session.remove()
        return found


def sandbox_counts(url: str) -> dict[str, int]:
    return requests.get(f"{url}/_sandbox/state", timeout=10).json()["counts"]


class Supervisor:
    """Keep N workers alive as systemd's Restart=always would (no person acts)."""

    def __init__(self, start_worker: Any, count: int) -> None:
        self.start_worker = start_worker
        self.procs = [start_worker() for _ in range(count)]
        self.restarts = 0

    def tend(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                self.procs[i] = self.start_worker()
                self.restarts += 1


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Short leases and sweeps, so that recovery is quick enough to measure in a test."""
    return {
        **settings,
        "SYNC_LEASE_SECONDS": LEASE,
        "SYNC_JOB_TIMEOUT": JOB_TIMEOUT,
        "HCP_READ_TIMEOUT": 1.5,
        "HCP_CONNECT_TIMEOUT": 0.25,
        "SYNC_RATE_LIMIT_WAIT_SECONDS": 0.25,
        "SWEEP_INTERVAL_SECONDS": 2,
        "SWEEP_PENDING_GRACE_SECONDS": 2,
    }


# -- Redis ------------------------------------------------------------------------------------


def test_redis_stopped_during_submissions_loses_nothing(
    client, app, sandbox, redis_server, start_worker
):
    if redis_server.external:
        pytest.skip("REDIS_URL names an outside Redis that this test cannot stop")
    workers = Supervisor(start_worker, 2)
    before = Wizard(app.test_client())
    before.complete()
    wait_for(lambda: statuses(app) == {Status.SYNCED: 1}, 60)

    redis_server.stop()  # it keeps no data: the queue, scheduled retries, the sweep chain go
    try:
        references = []
        for _ in range(3):
            wizard = Wizard(app.test_client())
            response = wizard.complete()  # the whole wizard, lookup and all, with Redis down
            assert response.status_code == 200 and "Request sent" in wizard.page
            references.append(reference_in(wizard.page))
            workers.tend()
        assert statuses(app) == {Status.SYNCED: 1, Status.PENDING: 3}
        health = client.get("/healthz")
        assert health.status_code == 200 and health.get_json()["queue"]["ok"] is False
    finally:
        redis_server.start()

    def all_synced() -> bool:
        workers.tend()
        return statuses(app) == {Status.SYNCED: 4}

    took = wait_for(all_synced, 120)
    print(f"\nRedis back: 3 waiting submissions synced {took:.1f} s later "
          f"(worker restarts {workers.restarts})")  # fmt: skip
    assert sandbox_counts(sandbox.url)["jobs"] == 4


# -- HCP ----------------------------------------------------------------------------------------


@pytest.fixture
def own_sandbox(settings: dict[str, Any]) -> Any:
    """A sandbox of this test's own, on a fixed port, that the test can stop and start."""
    from hcpform.formdefs import TEMPLATE_SERVICE_TYPES
    from hcpform_sandbox import SandboxServer

    server = SandboxServer(port=free_port(), job_types=TEMPLATE_SERVICE_TYPES)
    server.start()
    settings["HCP_SANDBOX_URL"] = server.url
    yield server
    server.stop()


def test_hcp_unreachable_for_a_while_then_everything_syncs_by_itself(
    own_sandbox, app, start_worker
):
    app.config["HCP_SANDBOX_URL"] = own_sandbox.url
    workers = Supervisor(start_worker, 2)
    own_sandbox.stop()  # connection refused, as when HCP or the network is down
    for _ in range(3):
        wizard = Wizard(app.test_client())
        wizard.complete()
        assert "Request sent" in wizard.page  # the homeowner never notices

    def waiting_to_retry() -> bool:
        with app.app_context():
            subs = list(db.session.scalars(select(Submission)))
            db.session.remove()
        return all(
            s.status == Status.PENDING and s.next_attempt_at and s.attempts >= 2 and s.last_error
            for s in subs
        )

    wait_for(waiting_to_retry, 60)
    with app.app_context():
        sub = db.session.scalar(select(Submission).limit(1))
        assert "HCP error (no answer" in sub.last_error and "retrying in" in sub.last_error
        failed_calls = db.session.scalar(
            select(func.count()).select_from(HcpCall).where(HcpCall.ok.is_(False))
        )
        assert failed_calls >= 6
    # The office sees it: three submissions pending, and HCP's calls all failing.
    from tests.test_security import admin_login

    admin = app.test_client()
    admin_login(app, admin)
    page = admin.get("/admin/").get_data(as_text=True)
    cards = dict(
        (label, int(number))
        for number, label in re.findall(
            r'card-number">(\d+)</span>\s*<span class="card-label">([^<]+)<', page
        )
    )  # a worker may be retrying one of them right now
    assert cards.get("Pending", 0) + cards.get("Syncing", 0) == 3, cards
    assert cards.get("Synced", 0) == 0, cards
    assert re.search(r'<td class="num">\d+</td><td class="num">100\.0%</td>', page)
    health = admin.get("/healthz").get_json()
    assert health["ok"] is True and health["queue"]["ok"] is True  # the app itself is fine

    own_sandbox.start()  # HCP is back, empty and healthy

    def all_synced() -> bool:
        workers.tend()
        return statuses(app) == {Status.SYNCED: 3}

    took = wait_for(all_synced, 90)
    print(f"\nHCP back: 3 waiting submissions synced {took:.1f} s later")
    assert sandbox_counts(own_sandbox.url)["jobs"] == 3


# -- the database -------------------------------------------------------------------------------


class TcpCut:
    """A TCP forwarder to a server that a test can cut (connections reset, port refused)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        if self.listener is not None:
            try:  # wakes the thread blocked in accept(); close() alone would leave it listening
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns = []


@pytest.fixture
def db_behind_a_cut(postgres_url: str, settings: dict[str, Any], tmp_path: Path) -> Any:
    """An app on PostgreSQL reached through a TCP forwarder the test can cut."""
    from urllib.parse import urlparse

    import psycopg

    from hcpform import create_app
    from hcpform.database import ensure_default_form

    # A database of its own: other test runs reset the shared one's schema at any moment.
    base, name = postgres_url.rsplit("/", 1)
    postgres_url = f"{base}/{name}_outages"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (f"{name}_outages",)
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{name}_outages"')
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    parsed = urlparse(postgres_url)
    cut = TcpCut(parsed.port or 5432)
    cut.start()
    url = postgres_url.replace(f":{parsed.port or 5432}/", f":{cut.port}/")
    if f":{cut.port}/" not in url:  # no port in the URL: add ours
        url = postgres_url.replace(f"@{parsed.hostname}/", f"@{parsed.hostname}:{cut.port}/")
    app = create_app(
        {
            "TESTING": True,
            **settings,
            "DATABASE_URL": url,
            "SQLALCHEMY_ENGINE_OPTIONS": {
                "pool_pre_ping": True,
                "connect_args": {"connect_timeout": 2},
            },
        },
        instance_path=str(tmp_path / "instance-pg"),
    )
    with app.app_context():
        db.create_all()
        ensure_default_form()
        db.session.commit()
    yield app, cut
    cut.cut()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_database_unreachable_gives_a_clear_503_and_writes_nothing(db_behind_a_cut):
    app, cut = db_behind_a_cut
    client = app.test_client()
    wizard = Wizard(client)
    answers = person()
    wizard.open()
    for step in ("location", "service", "description"):
        wizard.post(answers[step])
    contact_page = wizard.page
    token = wizard.token
    assert cut.conns, "the app did not reach the database through the forwarder"

    cut.cut()
    response = client.post(
        wizard.url, data={**hidden_inputs(contact_page), "csrf_token": token_of(contact_page),
                          **answers["contact"]},
    )  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 503, page[:500]
    assert "the service is unavailable" in page.lower() and "Your answers are safe" in page
    assert "Traceback" not in page and "psycopg" not in page
    assert client.get("/healthz").status_code == 503
    assert client.get("/f/service-request/").status_code == 503

    cut.start()  # the database is back: nothing of the failed step was half-written
    with app.app_context():
        draft = db.session.scalar(select(Draft).where(Draft.token == token))
        assert draft.completed_steps == ["location", "service", "description"]
        assert "customer_phone" not in draft.answers
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 0
    # The person presses the button again, and carries on to the end.
    wizard.page = contact_page
    wizard.post(answers["contact"])
    for step in ("classification", "schedule"):
        wizard.post(step_data(wizard.page, step, answers))
    wizard.post({})
    assert "Request sent" in wizard.page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 1


def test_database_gone_at_submit_leaves_no_submission_row(db_behind_a_cut):
    app, cut = db_behind_a_cut
    client = app.test_client()
    wizard = Wizard(client)
    wizard.complete(submit=False)
    review_page = wizard.page
    cut.cut()
    response = wizard.post({}, follow=False)
    assert response.status_code == 503
    cut.start()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 0
        draft = db.session.scalar(select(Draft).where(Draft.token == wizard.token))
        assert draft.submitted_at is None
    wizard.page = review_page
    wizard.post({})
    assert "Request sent" in wizard.page


# -- the app restarts ---------------------------------------------------------------------------


@pytest.mark.parametrize("surface", ["/f", "/embed"])
def test_drafts_survive_an_app_restart(app, settings, tmp_path, surface):
    from hcpform import create_app

    answers = person()
    first = Wizard(app.test_client(), base=f"{surface}/service-request")
    first.open()
    for step in ("location", "service", "description"):
        first.post(answers[step])
    page, token = first.page, first.token

    # A new app object on the same database: a deploy, a crash and restart, another machine.
    restarted = create_app({"TESTING": True, **settings}, instance_path=str(tmp_path / "new"))
    client = restarted.test_client()
    resumed = client.get(f"{surface}/service-request/?d={token}")
    assert resumed.status_code == 302
    assert resumed.headers["Location"].startswith(f"{surface}/service-request/contact?d={token}")
    again = Wizard(client, base=f"{surface}/service-request")
    again.page = page  # the page from before the restart, its token still good
    again.post(answers["contact"])
    assert f"{surface}/service-request/classification" in again.url and again.token == token
    for step in ("classification", "schedule"):
        again.post(step_data(again.page, step, answers))
    again.post({})
    assert "Request sent" in again.page
    with restarted.app_context():
        sub = db.session.scalar(select(Submission))
        assert sub.source == {"/f": "hosted", "/embed": "embed"}[surface]
        assert (sub.first_name, sub.street) == ("Jane", "1234 N Clark St")
        db.session.remove()
        db.engine.dispose()


# -- a worker dies mid-job ----------------------------------------------------------------------


def test_worker_killed_with_jobs_in_flight_is_recovered_by_our_lease(
    app, sandbox, settings, start_worker
):
    # The hung POST keeps the worker waiting (up to HCP_READ_TIMEOUT) until it is killed.
    requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"rules": [{"method": "POST", "path": "/jobs", "kind": "timeout", "seconds": 60}]},
        timeout=5,
    ).raise_for_status()
    for _ in range(3):
        Wizard(app.test_client()).complete()
    worker = start_worker()

    def job_post_in_flight() -> bool:
        log = requests.get(f"{sandbox.url}/_sandbox/requests?method=POST&path=/jobs", timeout=5)
        return log.json()["count"] >= 1 or sandbox_counts(sandbox.url)["jobs"] >= 1

    wait_for(job_post_in_flight, 60)
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(Submission)
                .where(Submission.status == Status.SYNCING)
            )
            == 1
        )
    assert kill_tree(worker) >= 2  # parent and work-horse: RQ would notice after ~11 minutes
    worker.wait(timeout=10)
    killed = time.monotonic()
    start_worker()  # a supervisor restarts it; nobody runs a sweep by hand

    wait_for(lambda: statuses(app) == {Status.SYNCED: 3}, LEASE + 40)
    recovered = time.monotonic() - killed
    print(
        f"\nworker killed mid-job: all 3 synced {recovered:.1f} s after the kill (lease {LEASE} s)"
    )
    # The dead worker's submission waited for its lease, and not for anything else after it.
    assert LEASE <= recovered + 1
    counts = sandbox_counts(sandbox.url)
    assert (counts["jobs"], counts["customers"], counts["addresses"]) == (3, 1, 1)
