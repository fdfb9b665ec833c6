"""The dashboard's figures (SQL aggregates, on SQLite and PostgreSQL) and its page."""

from __future__ import annotations

import secrets
import statistics
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hcpform.admin import stats
from hcpform.extensions import db
from hcpform.models import Draft, Form, FunnelCount, HcpCall, OutOfAreaRequest, Submission
from hcpform.timeutil import utcnow
from tests.admin_helpers import make_submission, text

pytest_plugins = ["tests.admin_fixtures"]


def add_draft(form_id: int, *, furthest: int, submitted: bool = False, age_days: float = 0):
    now = utcnow() - timedelta(days=age_days)
    draft = Draft(
        token=secrets.token_urlsafe(16),
        form_id=form_id,
        answers={},
        furthest_step=furthest,
        started_at=now,
        expires_at=now + timedelta(days=7),
        submitted_at=now if submitted else None,
    )
    db.session.add(draft)
    db.session.flush()
    return draft


def add_call(duration_ms: int, *, ok: bool = True, age: timedelta = timedelta(0)):
    db.session.add(
        HcpCall(
            method="GET",
            path="/customers",
            status=200 if ok else 503,
            ok=ok,
            duration_ms=duration_ms,
            created_at=utcnow() - age,
        )
    )


@pytest.mark.both_dbs
def test_call_latency_percentiles_and_error_rate_match_percentile_cont(app_ctx, db_backend):
    recent = list(range(1, 101))  # 1..100 ms in the last hour
    for ms in recent:
        add_call(ms, ok=ms % 10 != 0, age=timedelta(minutes=30))
    older = [500, 700, 900]  # three days ago: in the 7-day figures only
    for ms in older:
        add_call(ms, ok=False, age=timedelta(days=3))
    db.session.commit()
    now = utcnow()
    day = stats.call_health(now - timedelta(hours=24), "24 h")
    assert (day.calls, day.errors) == (100, 10)
    assert day.error_rate == pytest.approx(0.10)
    assert day.p50 == pytest.approx(statistics.quantiles(recent, n=100, method="inclusive")[49])
    assert day.p50 == pytest.approx(50.5)
    assert day.p95 == pytest.approx(95.05)
    week = stats.call_health(now - timedelta(days=7), "7 d")
    everything = sorted(recent + older)
    assert (week.calls, week.errors) == (103, 13)
    assert week.p95 == pytest.approx(statistics.quantiles(everything, n=20, method="inclusive")[18])
    empty = stats.call_health(now + timedelta(days=1), "none")
    assert (empty.calls, empty.p50, empty.p95, empty.error_rate) == (0, None, None, None)


@pytest.mark.both_dbs
def test_status_counts_success_and_duplicate_rates(app_ctx, db_backend):
    for status, matched in [
        ("synced", "phone"), ("synced", "email"), ("synced", "created"), ("synced", "created"),
        ("failed", None), ("pending", None), ("waiting", None), ("quarantined", None),
        ("manual", None), ("syncing", None),
    ]:  # fmt: skip
        make_submission(status=status, customer_matched_by=matched)
    make_submission(status="failed", created_at=utcnow() - timedelta(days=40))  # out of the period
    db.session.commit()
    counts = stats.status_counts()
    assert counts == {
        "pending": 1, "syncing": 1, "synced": 4, "failed": 2, "waiting": 1,
        "quarantined": 1, "manual": 1,
    }  # fmt: skip
    figures = stats.sync_figures(utcnow() - timedelta(days=7))
    assert (figures.received, figures.synced, figures.failed) == (10, 4, 1)
    assert figures.success_rate == pytest.approx(4 / 5)
    assert figures.duplicate_rate == pytest.approx(2 / 4)


@pytest.mark.both_dbs
def test_funnel_counts_each_step_and_the_drop_off(app_ctx, db_backend):
    form = db.session.scalar(select(Form).where(Form.slug == "service-request"))
    db.session.add(FunnelCount(form_id=form.id, day=utcnow().date(), event="start", count=20))
    db.session.add(
        FunnelCount(
            form_id=form.id, day=utcnow().date() - timedelta(days=30), event="start", count=99
        )
    )
    furthest = [1] * 4 + [2] * 2 + [3] + [6] * 3  # 10 drafts
    drafts = [add_draft(form.id, furthest=f) for f in furthest]
    for draft in drafts[-2:]:
        draft.submitted_at = draft.started_at
    add_draft(form.id, furthest=6, submitted=True, age_days=30)  # outside the period
    make_submission(draft_id=drafts[-1].id, hcp_job_id="job_1", status="synced")
    make_submission(draft_id=drafts[-2].id, status="pending")
    db.session.commit()
    stages = stats.funnel(utcnow() - timedelta(days=7), form)
    counts = [s.count for s in stages]
    assert counts == [20, 10, 6, 4, 3, 3, 3, 2, 1]
    assert stages[0].label.startswith("Opened the form")
    assert stages[1].label == "Step 1 done: Check your area"
    assert stages[-2].label == "Submitted" and stages[-1].label == "Job created in HCP"
    assert (stages[1].lost, stages[1].lost_rate) == (10, 0.5)
    assert (stages[2].lost, stages[2].lost_rate) == (4, 0.4)
    assert stages[-1].lost_rate == pytest.approx(0.5)


@pytest.mark.both_dbs
def test_out_of_area_requests_by_zip(app_ctx, db_backend):
    form_id = db.session.scalar(select(Form.id))
    for zip_code in ["73301"] * 3 + ["10001"] * 2 + ["94105"]:
        db.session.add(OutOfAreaRequest(form_id=form_id, zip=zip_code, created_at=utcnow()))
    db.session.add(
        OutOfAreaRequest(form_id=form_id, zip="94105", created_at=utcnow() - timedelta(days=9))
    )
    db.session.commit()
    assert stats.out_of_area(utcnow() - timedelta(days=7)) == [
        ("73301", 3),
        ("10001", 2),
        ("94105", 1),
    ]


def test_dashboard_page_shows_the_figures(app, admin_client):
    with app.app_context():
        make_submission(status="failed")
        make_submission(status="synced", customer_matched_by="created")
        add_call(120)
        db.session.add(
            OutOfAreaRequest(
                form_id=db.session.scalar(select(Form.id)), zip="73301", created_at=utcnow()
            )
        )
        db.session.commit()
    page = text(admin_client.get("/admin/?days=30"))
    assert "Last 30 days" in page
    assert "Sync success rate" in page and "50.0%" in page
    assert "Duplicate-customer rate" in page
    assert "Latency p95" in page and "120 ms" in page
    assert "73301" in page
    assert "Housecall Pro connection" in page
    assert 'href="/admin/submissions?status=failed"' in page
    # A bad period falls back to 7 days instead of failing.
    assert "Last 7 days" in text(admin_client.get("/admin/?days=abc"))


def test_dashboard_never_loads_submission_rows(app, admin_client):
    """The figures are aggregates: no SELECT of whole submission rows runs for the dashboard."""
    from sqlalchemy import event

    with app.app_context():
        for _ in range(3):
            make_submission()
        db.session.commit()
        statements = []
        engine = db.engine

        def remember(conn, cursor, statement, *args):  # noqa: ANN001
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", remember)
    try:
        assert admin_client.get("/admin/").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    row_reads = [s for s in statements if "submission.first_name" in s or "hcp_call.message" in s]
    assert row_reads == []
    assert Submission.__tablename__ == "submission"


def test_dashboard_queries_are_answered_from_covering_indexes(app, admin_client):
    """On SQLite each dashboard statement reads an index alone, never table rows (0004)."""
    from sqlalchemy import event

    with app.app_context():
        make_submission(status="synced", customer_matched_by="created")
        add_call(100)
        db.session.commit()
        engine = db.engine
        seen: list[tuple[str, Any]] = []

        def remember(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
            if statement.lstrip().upper().startswith("SELECT"):
                seen.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", remember)
    try:
        assert admin_client.get("/admin/?days=90").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            plans = {
                statement: [
                    row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, params)
                ]
                for statement, params in seen
                if any(t in statement for t in ("FROM submission", "FROM draft", "FROM hcp_call"))
            }
        finally:
            raw.close()
    assert len(plans) >= 6
    for statement, steps in plans.items():
        for step in steps:
            if step.startswith(("SCAN", "SEARCH")):
                assert "COVERING INDEX" in step, (statement, steps)
