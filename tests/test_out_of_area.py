"""Out-of-area requests in the admin: list, ZIP and period filters, CSV export (formula-safe), and
demand by ZIP with straight-line miles from the nearest served ZIP, checked on known pairs."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from hcpform import zipgeo
from hcpform.extensions import db
from hcpform.models import Form, OutOfAreaRequest
from hcpform.timeutil import utcnow
from tests.admin_helpers import text
from tests.helpers import Wizard, set_form

pytest_plugins = ["tests.admin_fixtures"]

SERVED = ["60601", "90012"]  # downtown Chicago, downtown Los Angeles

# Great-circle distances between the ZIPs' centres, in miles, as published atlases give them for
# the city centres (New York–Chicago 711, San Francisco–Los Angeles 347, New York–Los Angeles
# 2,445, Chicago's Near South Side to the Loop 3).
KNOWN_PAIRS = [
    ("10001", "60601", 711),
    ("94105", "90012", 347),
    ("10001", "90012", 2445),
    ("60616", "60601", 3),
]


@pytest.mark.parametrize(("a", "b", "miles"), KNOWN_PAIRS)
def test_distances_match_known_zip_pairs(a, b, miles):
    found = zipgeo.haversine_miles(zipgeo.coordinates(a), zipgeo.coordinates(b))
    assert found == pytest.approx(miles, rel=0.02, abs=0.5)
    assert zipgeo.haversine_miles(zipgeo.coordinates(b), zipgeo.coordinates(a)) == found


def test_unknown_zips_have_no_place_nor_distance():
    assert zipgeo.coordinates("00000") is None and zipgeo.coordinates("abc") is None
    assert zipgeo.place("99999") == "" and zipgeo.nearest("00000", SERVED) is None
    assert zipgeo.nearest("10001", []) is None


@pytest.fixture
def seeded(app):
    """A form serving two ZIPs and out-of-area requests from three others (one a month ago)."""
    set_form(app, service_area_zips=SERVED)
    now = utcnow()
    with app.app_context():
        form_id = db.session.scalar(select(Form.id).where(Form.slug == "service-request"))
        rows = [
            ("10001", '=HYPERLINK("http://evil")@example.com', now - timedelta(hours=1)),
            ("10001", "", now - timedelta(hours=2)),
            ("10001", "old@example.com", now - timedelta(days=40)),
            ("94105", "sf@example.com", now - timedelta(hours=3)),
            ("60616-1234", "", now - timedelta(hours=4)),
        ]
        for zip_code, email, at in rows:
            db.session.add(
                OutOfAreaRequest(form_id=form_id, zip=zip_code, email=email, created_at=at)
            )
        db.session.commit()
    return now


def test_the_wizard_stores_them_and_the_admin_lists_them(app, client, admin_client):
    set_form(app, service_area_zips=SERVED)
    wizard = Wizard(client)
    wizard.open()
    wizard.post({"zip": "10001"})
    assert "10001" in wizard.page
    wizard.post({"email": "ny@example.com"})
    page = text(admin_client.get("/admin/out-of-area"))
    assert "ny@example.com" in page and "New York, NY" in page
    assert 'data-zip="10001"' in page


def test_demand_by_zip_names_the_nearest_served_zip_and_its_miles(app, admin_client, seeded):
    page = text(admin_client.get("/admin/out-of-area"))
    table = page.split("data-demand", 1)[1].split("</table>", 1)[0]
    rows = {
        zip_code: cells
        for zip_code, cells in (
            (part.split('"', 1)[0], part) for part in table.split('data-zip="')[1:]
        )
    }
    assert set(rows) == {"10001", "94105", "60616"}
    assert "<td>3</td>" in rows["10001"] and "60601" in rows["10001"]  # 3 requests
    assert "710.5" in rows["10001"]
    assert "90012" in rows["94105"] and "346.6" in rows["94105"]
    assert "60601" in rows["60616"] and "3.1" in rows["60616"]
    assert page.index('data-zip="10001"') < page.index('data-zip="94105"')  # most asked first


def test_filters_by_zip_and_period(app, admin_client, seeded):
    page = text(admin_client.get("/admin/out-of-area?zip=100"))
    assert 'data-zip="10001"' in page and 'data-zip="94105"' not in page
    assert "old@example.com" in page
    today = (seeded - timedelta(days=1)).date().isoformat()
    page = text(admin_client.get(f"/admin/out-of-area?zip=100&since={today}"))
    assert "old@example.com" not in page and "<td>2</td>" in page
    old = (seeded - timedelta(days=41)).date().isoformat()
    until = (seeded - timedelta(days=39)).date().isoformat()
    page = text(admin_client.get(f"/admin/out-of-area?since={old}&until={until}"))
    assert "old@example.com" in page and "sf@example.com" not in page
    page = text(admin_client.get("/admin/out-of-area?zip=abc"))
    assert "Enter up to 5 digits" in page  # a clear message, not a 500


def test_csv_export_is_filtered_and_formula_safe(app, admin_client, seeded):
    response = admin_client.get("/admin/out-of-area.csv?zip=100")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["created_at", "form", "zip", "place", "email", "nearest_served_zip", "miles"]
    assert len(rows) == 4 and {r[2] for r in rows[1:]} == {"10001"}
    evil = next(r for r in rows[1:] if "HYPERLINK" in r[4])
    assert evil[4].startswith("'=")  # neutralised: spreadsheets show it as text
    assert rows[1][5:] == ["60601", "710.5"]
    demand = admin_client.get("/admin/out-of-area.csv?table=demand")
    table = list(csv.reader(io.StringIO(demand.get_data(as_text=True))))
    assert table[0][0] == "zip" and [r[0] for r in table[1:]] == ["10001", "60616", "94105"]
    assert table[1][3] == "3" and table[1][4] == "2" and table[1][-2:] == ["60601", "710.5"]
