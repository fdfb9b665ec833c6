"""The Marketing page: figures per source and campaign from a seeded month, checked number by
number (conversions, cost per lead, cost per completed job, return on ad spend), the links to
the submissions behind them, the CSV files, spend entry and import, the period's validation,
the charts, and the failure patterns on the dashboard."""

from __future__ import annotations

import csv
import io
import re
import secrets
from datetime import UTC, date, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from sqlalchemy import func, select

from hcpform import adspend, marketing
from hcpform.admin import failures
from hcpform.extensions import db
from hcpform.models import (
    AdSpend,
    AuditEntry,
    CampaignVisit,
    Draft,
    HcpCall,
    Status,
    SyncAttempt,
)
from hcpform.timeutil import utcnow
from tests.admin_helpers import make_submission, text
from tests.factories import default_form

pytest_plugins = ["tests.admin_fixtures"]

MARCH = {"period": "custom", "date_from": "2025-03-01", "date_to": "2025-03-31"}
TZ = "America/Chicago"


def at(day: int, month: int = 3, hour: int = 12) -> datetime:
    """Noon in Chicago (18:00 UTC in March after the 9th: CDT; use days after the 9th)."""
    return datetime(2025, month, day, hour + 5, 0, tzinfo=UTC)


def visits(form_id: int, source: str, medium: str, campaign: str, count: int, day: int = 12):
    db.session.add(
        CampaignVisit(
            form_id=form_id,
            day=date(2025, 3, day),
            source=source,
            medium=medium,
            campaign=campaign,
            count=count,
        )
    )


def drafts(form_id: int, n: int, attribution: dict[str, str], when: datetime) -> None:
    for _ in range(n):
        db.session.add(
            Draft(
                token=secrets.token_urlsafe(16),
                form_id=form_id,
                answers={},
                attribution=attribution,
                started_at=when,
                expires_at=when + timedelta(days=30),
            )
        )


def lead(source: str, medium: str = "", campaign: str = "", *, when: datetime, **state: Any):
    """A request as the sync and the webhooks leave it: job, HCP status, paid cents."""
    job = state.pop("job", False)
    values: dict[str, Any] = {
        "utm_source": source,
        "utm_medium": medium,
        "utm_campaign": campaign,
        "created_at": when,
    }
    if job:
        values |= {
            "status": Status.SYNCED,
            "hcp_job_id": f"job_{secrets.token_hex(4)}",
            "synced_at": when + timedelta(minutes=1),
        }
    if state.get("hcp_status") == "completed":
        values["hcp_completed_at"] = when + timedelta(days=2)
    if state.get("paid_cents"):
        values["invoiced_cents"] = state["paid_cents"]
    return make_submission(**values, **state)


def seed_march() -> None:
    """google/cpc/spring, facebook/social/promo, no UTM at all, and bing with spend only."""
    form_id = default_form().id
    visits(form_id, "google", "cpc", "spring", 100)
    visits(form_id, "facebook", "social", "promo", 50)
    visits(form_id, "", "", "", 30)
    drafts(
        form_id, 20, {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring"}, at(12)
    )
    drafts(
        form_id,
        10,
        {"utm_source": "Facebook", "utm_medium": "social", "utm_campaign": "promo"},
        at(13),
    )
    drafts(form_id, 5, {}, at(14))
    drafts(form_id, 3, {"utm_source": "google"}, at(2, month=4))  # April: outside
    g = ("google", "cpc", "spring")
    # google: 8 requests, 5 jobs, 3 completed, $1,500 + $500 paid (one says "Google")
    lead(*g, when=at(12), job=True, hcp_status="completed", paid_cents=150_000)
    lead(
        "Google", "CPC", "Spring", when=at(13), job=True, hcp_status="completed", paid_cents=50_000
    )
    lead(*g, when=at(14), job=True, hcp_status="completed")
    lead(*g, when=at(15), job=True, hcp_status="scheduled")
    lead(*g, when=at(16), job=True, hcp_status="canceled")
    for day in (17, 18, 19):
        lead(*g, when=at(day))
    lead(*g, when=at(20), status=Status.QUARANTINED, spam_reason="hidden field filled in")
    lead(*g, when=at(2, month=4), job=True, hcp_status="completed", paid_cents=99_900)
    # facebook: 4 requests, 1 job, nothing completed
    lead("facebook", "social", "promo", when=at(21), job=True, hcp_status="scheduled")
    for day in (22, 23, 24):
        lead("facebook", "social", "promo", when=at(day))
    # no UTM: 2 requests, 2 jobs, 1 completed and paid $300
    lead("", when=at(25), job=True, hcp_status="completed", paid_cents=30_000)
    lead("", when=at(26), job=True)
    now = utcnow()
    for source, cents in (("google", 310_000), ("facebook", 0), ("bing", 50_000)):
        adspend.save(adspend.SpendLine(date(2025, 3, 1), source, cents), by="t", now=now)
    adspend.save(adspend.SpendLine(date(2025, 4, 1), "google", 300_000), by="t", now=now)
    db.session.commit()


def march() -> marketing.Period:
    return marketing.Period(date(2025, 3, 1), date(2025, 3, 31))


# --- the figures, number by number -----------------------------------------------------------


@pytest.mark.both_dbs
def test_figures_per_source_number_by_number(app_ctx):
    seed_march()
    report = marketing.report(march(), TZ, ("source",))
    rows = {r.key[0]: r for r in report.rows}
    assert set(rows) == {"google", "facebook", "", "bing"}
    google = rows["google"]
    assert (google.visits, google.started, google.leads) == (100, 20, 8)
    assert (google.jobs, google.completed, google.revenue_cents) == (5, 3, 200_000)
    assert google.spend_cents == 310_000
    assert google.cost_per_lead == 38_750  # $3,100 / 8
    assert google.cost_per_job == 103_333  # $3,100 / 3 = $1,033.33
    assert google.roas == pytest.approx(200_000 / 310_000)
    assert google.start_rate == pytest.approx(0.20)
    assert google.lead_rate == pytest.approx(0.40)
    assert google.job_rate == pytest.approx(0.625)
    assert google.completion_rate == pytest.approx(0.60)
    assert google.visit_rate == pytest.approx(0.08)

    facebook = rows["facebook"]  # spend entered as $0: leads cost nothing, no ROAS
    assert (facebook.visits, facebook.started, facebook.leads, facebook.jobs) == (50, 10, 4, 1)
    assert (facebook.completed, facebook.revenue_cents, facebook.spend_cents) == (0, 0, 0)
    assert facebook.cost_per_lead == 0
    assert facebook.cost_per_job is None and facebook.roas is None
    assert facebook.completion_rate == 0.0

    bing = rows["bing"]  # spend and no lead at all
    assert (bing.visits, bing.started, bing.leads, bing.spend_cents) == (0, 0, 0, 50_000)
    assert bing.cost_per_lead is None and bing.cost_per_job is None
    assert bing.roas == 0.0
    assert bing.start_rate is None and bing.lead_rate is None

    direct = rows[""]  # no UTM, no spend
    assert (direct.visits, direct.started, direct.leads, direct.jobs) == (30, 5, 2, 2)
    assert (direct.completed, direct.revenue_cents, direct.spend_cents) == (1, 30_000, None)
    assert direct.cost_per_lead is None and direct.roas is None

    total = report.total
    assert (total.visits, total.started, total.leads, total.jobs) == (180, 35, 14, 8)
    assert (total.completed, total.revenue_cents, total.spend_cents) == (4, 230_000, 360_000)
    assert total.cost_per_lead == 25_714  # $3,600 / 14 = $257.142…
    assert total.cost_per_job == 90_000
    assert total.roas == pytest.approx(230_000 / 360_000)
    assert [r.key[0] for r in report.rows] == ["google", "", "facebook", "bing"]  # by revenue


@pytest.mark.both_dbs
def test_figures_per_campaign_and_per_form(app_ctx):
    seed_march()
    report = marketing.report(march(), TZ, marketing.DIMENSIONS)
    rows = {r.key: r for r in report.rows}
    spring = rows[("google", "cpc", "spring")]
    assert (spring.visits, spring.started, spring.leads, spring.completed) == (100, 20, 8, 3)
    assert spring.spend_cents is None  # spend is per source, not per campaign
    assert rows[("", "", "")].leads == 2
    assert report.total.leads == 14
    other = marketing.report(march(), TZ, ("source",), form_id=default_form().id + 1)
    assert other.rows == [] and other.total.leads == 0


def test_a_period_with_no_leads_and_no_spend_divides_by_nothing(app_ctx):
    seed_march()
    empty = marketing.report(marketing.Period(date(2024, 1, 1), date(2024, 1, 31)), TZ, ("source",))
    assert empty.rows == []
    total = empty.total
    assert total.leads == 0 and total.spend_cents is None
    assert total.cost_per_lead is None and total.cost_per_job is None and total.roas is None
    assert total.start_rate is None and total.job_rate is None


def test_spend_is_prorated_by_the_days_of_each_month(app_ctx):
    seed_march()
    # March 17–31 is 15 of 31 days, April 1–15 is 15 of 30.
    assert adspend.spend_in(date(2025, 3, 17), date(2025, 4, 15)) == {
        "google": 310_000 * 15 // 31 + 300_000 // 2,
        "facebook": 0,
        "bing": 24_194,  # 50,000 × 15 / 31 = 24,193.5… rounded half up
    }
    assert adspend.spend_in(date(2025, 3, 1), date(2025, 3, 1)) == {
        "google": 10_000,
        "facebook": 0,
        "bing": 1_613,
    }


@pytest.mark.both_dbs
def test_daily_series_counts_requests_jobs_and_completions_by_local_day(app_ctx):
    seed_march()
    daily = marketing.daily(march(), TZ)
    assert len(daily.days) == 31
    assert sum(daily.leads.values()) == 14 and daily.leads[date(2025, 3, 12)] == 1
    assert sum(daily.jobs.values()) == 8
    assert daily.completed == {date(2025, 3, 14): 1, date(2025, 3, 15): 1, date(2025, 3, 16): 1,
                               date(2025, 3, 27): 1}  # fmt: skip


@pytest.mark.both_dbs
def test_a_late_evening_request_counts_on_its_local_day(app_ctx):
    make_submission(created_at=datetime(2025, 3, 13, 4, 30, tzinfo=UTC))  # 23:30 on the 12th
    db.session.commit()
    assert marketing.daily(march(), TZ).leads == {date(2025, 3, 12): 1}


# --- visits -----------------------------------------------------------------------------------


@pytest.mark.both_dbs
def test_the_first_page_counts_a_visit_per_campaign(app, client):
    for _ in range(2):
        assert (
            client.get(
                "/f/service-request/?utm_source=Google&utm_medium=CPC&utm_campaign=Spring"
            ).status_code
            == 200
        )
    assert client.get("/f/service-request/").status_code == 200
    with app.app_context():
        rows = db.session.execute(
            select(
                CampaignVisit.source,
                CampaignVisit.medium,
                CampaignVisit.campaign,
                CampaignVisit.count,
            )
        ).all()
    assert sorted(rows) == [("", "", "", 1), ("google", "cpc", "spring", 2)]


@pytest.mark.both_dbs
def test_invented_campaigns_stop_adding_rows_past_the_daily_cap(app_ctx, monkeypatch):
    monkeypatch.setattr(marketing, "DAILY_COMBINATIONS", 3)
    form = default_form()
    now = utcnow()
    for n in range(6):
        marketing.count_visit(form, {"utm_source": f"bot{n}"}, now=now)
    db.session.commit()
    rows = dict(db.session.execute(select(CampaignVisit.source, CampaignVisit.count)).all())
    assert rows == {"bot0": 1, "bot1": 1, "bot2": 1, marketing.OTHER: 3}


# --- the page, its links and its CSV files ----------------------------------------------------


def test_the_page_shows_the_figures_as_money_and_dashes(app, admin_client):
    with app.app_context():
        seed_march()
    response = admin_client.get("/admin/marketing", query_string=MARCH)
    assert response.status_code == 200
    page = unescape(text(response))
    sources = page.split('id="sources-h"')[1].split("</table>")[0]
    google = re.search(r"<tr><th scope=\"row\">google</th>(.*?)</tr>", sources, re.S).group(1)
    cells = [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", google, re.S)
    ]
    assert cells == [
        "100",
        "20",
        "8",
        "5",
        "3",
        "$2,000.00",
        "$3,100.00",
        "$387.50",
        "$1,033.33",
        "0.65×",
    ]
    bing = re.search(r"<tr><th scope=\"row\">bing</th>(.*?)</tr>", sources, re.S).group(1)
    cells = [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", bing, re.S)
    ]
    assert cells == ["0", "0", "0", "0", "0", "$0.00", "$500.00", "–", "–", "0.00×"]
    direct = re.search(r"<tr><th scope=\"row\">\(none\)</th>(.*?)</tr>", sources, re.S).group(1)
    assert direct.count("–") == 4  # no spend: spend, CPL, CAC and ROAS are dashes
    assert "$257.14" in sources and "$900.00" in sources and "0.64×" in sources  # totals
    conversion = page.split('id="conversion-h"')[1].split("</table>")[0]
    assert "20.0%" in conversion and "62.5%" in conversion and "60.0%" in conversion


@pytest.mark.both_dbs
def test_each_figure_links_to_the_submissions_behind_it(app, admin_client):
    with app.app_context():
        seed_march()
    page = text(admin_client.get("/admin/marketing", query_string=MARCH))
    sources = page.split('id="sources-h"')[1].split("</table>")[0]
    links = [unescape(h) for h in re.findall(r'href="([^"]+)"', sources)]
    expected = {
        ("google", "lead"): 8, ("google", "job"): 5, ("google", "completed"): 3,
        ("google", "paid"): 2, ("facebook", "lead"): 4, ("(none)", "lead"): 2,
        ("(none)", "completed"): 1, (None, "lead"): 14, (None, "paid"): 3,
    }  # fmt: skip
    checked = 0
    for href in links:
        source = re.search(r"[?&]source=([^&]+)", href)
        stage = re.search(r"[?&]stage=([^&]+)", href).group(1)
        name = unescape(source.group(1)).replace("%28", "(").replace("%29", ")") if source else None
        if (name, stage) not in expected:
            continue
        listing = text(admin_client.get(href))
        count = int(re.search(r"<strong>(\d+)</strong> submission", listing).group(1))
        assert count == expected[(name, stage)], (href, count)
        checked += 1
    assert checked == len(expected)


def test_csv_exports_hold_the_tables_and_neutralise_formulas(app, admin_client):
    with app.app_context():
        seed_march()
        lead('=HYPERLINK("http://x")', "+cmd", "@sum", when=at(27))
        adspend.save(adspend.SpendLine(date(2025, 3, 1), "-evil", 100), by="t", now=utcnow())
        db.session.commit()
    response = admin_client.get("/admin/marketing.csv", query_string={**MARCH, "table": "sources"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "marketing-sources-20250301-20250331.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text(response))))
    google = next(r for r in rows if r["source"] == "google")
    assert google["requests"] == "8" and google["revenue_paid"] == "2000.00"
    assert google["ad_spend"] == "3100.00" and google["cost_per_lead"] == "387.50"
    assert google["cost_per_completed_job"] == "1033.33" and google["return_on_ad_spend"] == "0.65"
    assert google["request_to_job"] == "62.5%"
    assert rows[-1]["source"] == "Total" and rows[-1]["requests"] == "15"
    sources = {r["source"] for r in rows}
    assert '\'=hyperlink("http://x")' in sources and "'-evil" in sources
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())

    campaigns = list(csv.DictReader(io.StringIO(text(admin_client.get(
        "/admin/marketing.csv", query_string={**MARCH, "table": "campaigns"})))))  # fmt: skip
    evil = next(r for r in campaigns if r["source"].startswith("'="))
    assert evil["medium"] == "'+cmd" and evil["campaign"] == "'@sum"
    daily = list(csv.reader(io.StringIO(text(admin_client.get(
        "/admin/marketing.csv", query_string={**MARCH, "table": "daily"})))))  # fmt: skip
    assert daily[0] == ["day", "requests", "jobs_created", "jobs_completed"] and len(daily) == 32
    spend = text(admin_client.get("/admin/marketing.csv", query_string={"table": "spend"}))
    assert spend.splitlines()[0] == "month,source,amount"
    assert "2025-03,google,3100.00" in spend and "2025-03,'-evil,1.00" in spend
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(AuditEntry.action == "export")) == 4


# --- ad spend: the form and the CSV import ----------------------------------------------------


def spend_rows(app) -> list[tuple[str, str, int]]:
    with app.app_context():
        return [
            (f"{m:%Y-%m}", s, c)
            for m, s, c in db.session.execute(
                select(AdSpend.month, AdSpend.source, AdSpend.amount_cents).order_by(
                    AdSpend.month, AdSpend.source
                )
            )
        ]


def test_spend_form_saves_replaces_and_refuses_bad_values(app, admin_client):
    ok = admin_client.post(
        "/admin/marketing/spend",
        data={"month": "2025-03", "source": " Google ", "amount": "$1,250.5"},
    )
    assert ok.status_code == 303 and ok.headers["Location"].endswith("/admin/marketing#spend-h")
    admin_client.post(
        "/admin/marketing/spend", data={"month": "2025-3", "source": "google", "amount": "99"}
    )
    assert spend_rows(app) == [("2025-03", "google", 9_900)]
    for data, message in [
        ({"month": "March", "source": "google", "amount": "1"}, "Enter the month as YYYY-MM"),
        ({"month": "2025-13", "source": "google", "amount": "1"}, "Enter the month as YYYY-MM"),
        ({"month": "2025-03", "source": "", "amount": "1"}, "Enter the source"),
        ({"month": "2025-03", "source": "(none)", "amount": "1"}, "Enter the source"),
        ({"month": "2025-03", "source": "google", "amount": "-5"}, "Enter an amount in dollars"),
        ({"month": "2025-03", "source": "google", "amount": "1.234"}, "Enter an amount in dollars"),
        ({"month": "2025-03", "source": "google", "amount": "99999999"}, "$10,000,000 or less"),
        ({"month": "2025-03", "source": "goo\x00gle", "amount": "1"}, ""),
    ]:
        response = admin_client.post("/admin/marketing/spend", data=data, follow_redirects=True)
        assert response.status_code == 200
        assert 'class="flash flash--error"' in text(response), data
        assert unescape(message) in unescape(text(response)), data
    assert spend_rows(app) == [("2025-03", "google", 9_900)]
    removed = admin_client.post(
        "/admin/marketing/spend/delete", data={"spend_id": "1"}, follow_redirects=True
    )
    assert "Removed the spend of google 2025-03" in text(removed)
    assert spend_rows(app) == []


def upload(admin_client, body: bytes, name: str = "spend.csv"):
    return admin_client.post(
        "/admin/marketing/spend/import",
        data={"file": (io.BytesIO(body), name)},
        content_type="multipart/form-data",
        follow_redirects=True,
    )


def test_spend_csv_import_takes_every_line_or_none(app, admin_client):
    good = (
        b"\xef\xbb\xbfmonth,source,amount\r\n2025-03,google,3100\r\n"
        b'2025-03,Facebook,"1,200.50"\r\n\r\n2025-04,google,$3000.00\r\n'
    )
    page = text(upload(admin_client, good))
    assert "Imported 3 spend lines." in page
    assert spend_rows(app) == [
        ("2025-03", "facebook", 120_050),
        ("2025-03", "google", 310_000),
        ("2025-04", "google", 300_000),
    ]  # fmt: skip
    bad = (
        b"month,source,amount\n2025-05,google,100\n2025-5x,bing,1\n2025-05,,3\n"
        b"2025-05,yahoo,abc\n2025-05,google,5\n2025-06,google\n"
    )
    page = unescape(text(upload(admin_client, bad)))
    assert "Nothing was imported" in page
    for message in (
        "Line 3: Enter the month as YYYY-MM",
        "Line 4: Enter the source",
        "Line 5: Enter an amount in dollars",
        "Line 6: google for 2025-05 is already on line 2",
        "Line 7: expected 3 values (month, source, amount), got 2",
    ):
        assert message in page
    assert "Line 2" not in page.split("Nothing was imported")[1].split("</main>")[0]
    assert len(spend_rows(app)) == 3  # nothing half-imported: no 2025-05 google line
    assert "the first line must be the header" in text(upload(admin_client, b"2025-03,google,1\n"))
    assert "not UTF-8" in text(upload(admin_client, b"month,source,amount\n2025-03,g\xe9,1\n"))
    assert "Choose a CSV file" in text(upload(admin_client, b"", name=""))
    assert len(spend_rows(app)) == 3


# --- the period ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"period": "custom"}, "Enter the first day"),
        (
            {"period": "custom", "date_from": "2025-03-31", "date_to": "2025-03-01"},
            "on or after the first day",
        ),
        (
            {"period": "custom", "date_from": "2020-01-01", "date_to": "2025-01-01"},
            "at most 366 days",
        ),
        ({"period": "custom", "date_from": "1999-12-31", "date_to": "2000-01-02"}, "2000 or later"),
        (
            {"period": "custom", "date_from": "2999-01-01", "date_to": "2999-01-02"},
            "can&#39;t be in the future",
        ),
        (
            {"period": "custom", "date_from": "2025-02-30", "date_to": "2025-03-01"},
            "Not a valid date value",
        ),
        ({"period": "forever"}, "Not a valid choice"),
    ],
)
def test_a_bad_period_is_a_field_message_and_this_month_is_shown(admin_client, query, message):
    response = admin_client.get("/admin/marketing", query_string=query)
    assert response.status_code == 400
    page = text(response)
    assert message in page and "error-message" in page
    assert "here is this month instead" in page
    assert "This month (" in page


@pytest.mark.parametrize("period", ["this_month", "last_month", "last_30", "last_90"])
def test_every_preset_period_renders(admin_client, period):
    response = admin_client.get("/admin/marketing", query_string={"period": period})
    assert response.status_code == 200


def test_garbage_query_strings_never_break_the_page_or_the_csv(admin_client):
    junk = ["", "x", "-1", "0", "2025-00-00", "９", "2025-03-01T00:00", "'; drop table", "\x00",
            "%", "a" * 5000, "2025-03-01\n", "[]", "1e9", "٢٠٢٥-٠٣-٠١"]  # fmt: skip
    names = ["period", "date_from", "date_to", "form", "table"]
    rng = __import__("random").Random(12)
    for n in range(60):
        query = {name: rng.choice(junk) for name in rng.sample(names, rng.randint(1, len(names)))}
        if n % 3 == 0:
            query["period"] = "custom"
        for path in ("/admin/marketing", "/admin/marketing.csv"):
            response = admin_client.get(path, query_string=query)
            assert response.status_code in (200, 400), (path, query, response.status_code)
    for query in (
        {"source": "\x00"},
        {"stage": "nope"},
        {"campaign": "x" * 500},
        {"source": "(none)"},
    ):
        assert admin_client.get("/admin/submissions", query_string=query).status_code == 200


# --- the charts and the page's weight -----------------------------------------------------------


def test_charts_are_inline_svg_with_a_title_and_no_script_nor_outside_url(app, admin_client):
    with app.app_context():
        seed_march()
    page = text(admin_client.get("/admin/marketing", query_string=MARCH))
    svgs = re.findall(r"<svg\b.*?</svg>", page, re.S)
    assert len(svgs) == 3
    for svg in svgs:
        assert re.search(r'role="img" aria-labelledby="(chart-\d+)-title \1-desc"', svg)
        assert re.search(r"<title id=\"chart-\d+-title\">[^<]+</title><desc id=", svg)
        assert "<script" not in svg and "<style" not in svg and "style=" not in svg
        assert re.findall(r"https?://[^\s\"'<>]+", svg) == ["http://www.w3.org/2000/svg"]
    assert "Requests and jobs per day" in svgs[0] and "Revenue paid by source" in svgs[2]
    assert '<details class="chart-data"><summary>' in page
    assert "<script" not in page and "style=" not in page
    dashboard = text(admin_client.get("/admin/?days=7"))
    assert "<svg" not in dashboard and "No calls to Housecall Pro in this period." in dashboard
    with app.app_context():
        add_calls()
    dashboard = text(admin_client.get("/admin/?days=7"))
    assert len(re.findall(r"<svg\b", dashboard)) == 2 and "<script" not in dashboard
    assert "HCP call latency per day" in dashboard and "HCP call error rate per day" in dashboard


def add_calls() -> None:
    """Six HCP calls yesterday and today: 200 ms on average, one in three failed."""
    now = utcnow()
    for n, (ms, ok) in enumerate([(100, True), (300, False), (200, True)] * 2):
        db.session.add(
            HcpCall(
                method="POST",
                path="/jobs",
                status=200 if ok else 503,
                ok=ok,
                duration_ms=ms,
                created_at=now - timedelta(hours=n * 5),
            )  # fmt: skip
        )
    db.session.commit()


@pytest.mark.both_dbs
def test_sync_calls_per_local_day(app_ctx):
    add_calls()
    today = date.today()
    period = marketing.Period(today - timedelta(days=6), today + timedelta(days=1))
    days = marketing.call_days(period, TZ)
    assert len(days) == 8
    assert sum(d.calls for d in days) == 6 and sum(d.errors for d in days) == 2
    assert sum(d.total_ms for d in days) == 1200
    busy = [d for d in days if d.calls]
    assert all(d.average_ms == d.total_ms / d.calls for d in busy)
    empty = next(d for d in days if not d.calls)
    assert empty.error_rate is None and empty.average_ms is None


def page_weight(client, page: str) -> int:
    total = len(page.encode())
    for href in re.findall(r'<link rel="stylesheet" href="([^"]+)"', page):
        total += len(client.get(unescape(href)).get_data())
    return total


ADMIN_PAGE_BUDGET = 200_000  # bytes: the page with its stylesheets, no images, no script


def test_marketing_and_dashboard_stay_under_the_admin_page_budget(app, admin_client):
    with app.app_context():
        seed_march()
        for n in range(80):  # many sources and campaigns
            lead(f"source{n}", "cpc", f"campaign{n}", when=at(12 + n % 15), job=True,
                 hcp_status="completed", paid_cents=1000 * n)  # fmt: skip
        db.session.commit()
    weights = {}
    for query in ({"period": "last_90"}, {**MARCH}):
        page = text(admin_client.get("/admin/marketing", query_string=query))
        weights[query["period"]] = page_weight(admin_client, page)
        if query["period"] == "custom":
            assert "the total and the CSV file have all 84." in page
            assert "the total and the CSV file have all 83." in page
    with app.app_context():
        add_calls()
    dashboard = text(admin_client.get("/admin/?days=90"))
    assert dashboard.count("<svg") == 2
    weights["dashboard"] = page_weight(admin_client, dashboard)
    print(weights)
    assert all(weight < ADMIN_PAGE_BUDGET for weight in weights.values()), weights


# --- failure patterns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "message", "label", "shape"),
    [
        ("failed", "HCP answered 422: job type jt_81f2a not found",
         "HCP refused the request (422)", "job type <id> not found"),
        ("retry", "HCP error (503: Service Unavailable); retrying in 12 s",
         "HCP unavailable or slow (retried) (503)", "Service Unavailable"),
        ("retry", "HCP error (no answer: read timed out after 2.0 s); retrying in 3 s",
         "HCP unavailable or slow (retried)", "read timed out after <n> s"),
        ("failed", "HCP kept failing for 24 h; last: 500: upstream 7f3a9b2c1d4e5f60 broke",
         "HCP unavailable or slow (retried) (500)", "upstream <id> broke"),
        ("timeout", "the attempt took longer than SYNC_JOB_TIMEOUT (30 s) and was stopped",
         "Attempt took too long",
         "the attempt took longer than SYNC_JOB_TIMEOUT (<n> s) and was stopped"),
        ("failed", "HCP answered 400: email 'a@b.co' is not valid for HCP-7K2Q9",
         "HCP refused the request (400)", "email <value> is not valid for <reference>"),
    ],
)  # fmt: skip
def test_a_cause_is_the_error_class_and_the_message_shape(outcome, message, label, shape):
    assert failures.cause_of(outcome, message) == (label, shape)


def attempt(sub_id: int, number: int, outcome: str, message: str, when: datetime) -> None:
    db.session.add(
        SyncAttempt(
            submission_id=sub_id,
            number=number,
            started_at=when,
            finished_at=when,
            outcome=outcome,
            message=message,
        )
    )


@pytest.mark.both_dbs
def test_dashboard_groups_failed_and_retried_syncs_by_cause(app, admin_client):
    now = utcnow()
    with app.app_context():
        subs = [make_submission(status=Status.FAILED).id for _ in range(14)]
        for n, sub_id in enumerate(subs):
            attempt(sub_id, 1, "failed", f"HCP answered 422: job type jt_{n:04x}b not found",
                    now - timedelta(hours=n + 1))  # fmt: skip
        for n in range(3):
            attempt(subs[0], n + 2, "retry", f"HCP error (503: busy); retrying in {n + 4} s",
                    now - timedelta(minutes=n + 1))  # fmt: skip
        attempt(subs[1], 5, "synced", "Created job job_1", now)
        attempt(
            subs[1],
            6,
            "failed",
            "HCP answered 422: job type jt_old not found",
            now - timedelta(days=9),
        )
        db.session.commit()
    page = unescape(text(admin_client.get("/admin/?days=7")))
    section = page.split('id="patterns-h"')[1].split("</section>")[0]
    rows = re.findall(
        r'<tr><th scope="row">(.*?)</th><td>(.*?)</td>\s*'
        r'<td class="num"><a href="([^"]+)">(\d+)',
        section,
        re.S,
    )
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("HCP refused the request (422)", "job type <id> not found", "14"),
        ("HCP unavailable or slow (retried) (503)", "busy", "3"),
    ]
    first, last = now - timedelta(hours=14), now - timedelta(hours=1)
    with app.app_context():
        from hcpform.admin.filters import admin_time

        assert (
            admin_time(first, "%b %d, %H:%M") in section
            and admin_time(last, "%b %d, %H:%M") in section
        )
    listing = text(admin_client.get(unescape(rows[0][2])))
    assert listing.count('href="/admin/submissions/') == 14
    assert "jt_old" not in listing  # older than the period
    assert admin_client.get("/admin/failures?cause=nope").status_code == 404
    assert "job type &lt;id&gt; not found" in text(admin_client.get("/admin/failures?days=30"))


@pytest.mark.parametrize(
    ("cents", "count", "expected"),
    [(5, 2, 3), (1, 3, 0), (2, 3, 1), (310_000, 3, 103_333), (0, 4, 0), (100, 0, None),
     (None, 4, None)],
)  # fmt: skip
def test_money_per_item_rounds_half_up_to_the_cent(cents, count, expected):
    assert marketing.cents_ratio(cents, count) == expected
