"""The compact ZIP table agrees with the `zipcodes` package on every 5-digit number, and is safe.

`zipcodes` is a test dependency only: the app reads hcpform/zip_table.tsv.gz, made from it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import zipcodes
from hypothesis import given, settings
from hypothesis import strategies as st

from hcpform import validation, zipgeo
from tests.conftest import ROOT

EVERY_5_DIGITS = [f"{n:05d}" for n in range(100_000)]


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    """`zipcodes`' own data, by ZIP."""
    return {row["zip_code"]: row for row in zipcodes.filter_by()}


def test_the_committed_table_is_the_one_zipcodes_makes_today(rows):
    """After a `zipcodes` upgrade this fails: run `python -m hcpform.zipgeo` and commit."""
    assert zipgeo.TABLE.read_bytes() == zipgeo.pack(rows.values())
    assert zipgeo.TABLE.stat().st_size < 1_000_000


def test_every_zip_is_valid_in_the_table_exactly_when_zipcodes_has_it(rows):
    for zip5 in EVERY_5_DIGITS[::101]:  # its data is what its own lookup answers (a sample: slow)
        assert ([rows[zip5]] if zip5 in rows else []) == zipcodes.matching(zip5), zip5
    for zip5 in EVERY_5_DIGITS:
        record, row = zipgeo.lookup(zip5), rows.get(zip5)
        assert (record is None) == (row is None), zip5
        if record is None or row is None:
            continue
        assert (record.zip5, record.city, record.state) == (zip5, row["city"], row["state"])
        assert record.acceptable_cities == tuple(row["acceptable_cities"]), zip5
        assert record.latitude == pytest.approx(float(row["lat"]), abs=1e-4), zip5
        assert record.longitude == pytest.approx(float(row["long"]), abs=1e-4), zip5
        assert zipgeo.place(zip5) == f"{row['city']}, {row['state']}"
    assert sum(zipgeo.lookup(z) is not None for z in EVERY_5_DIGITS) == len(rows) > 40_000


def test_what_the_wizard_knows_of_a_zip_is_what_zipcodes_said(rows):
    """The city names the contact step accepts: the main one, then the others, titled, once."""
    validation._zip_lookup.cache_clear()
    for zip5, row in rows.items():
        expected = []
        for name in [row["city"], *row["acceptable_cities"]]:
            if name and name.title() not in expected:
                expected.append(name.title())
        info = validation.zip_info(zip5)
        assert info is not None, zip5
        assert (info.city, info.state, info.cities) == (
            row["city"].title(), row["state"], tuple(expected),
        )  # fmt: skip
    assert validation.zip_info("00000") is None
    validation._zip_lookup.cache_clear()


def test_distances_come_from_the_tables_coordinates():
    chicago, new_york = zipgeo.coordinates("60614"), zipgeo.coordinates("10001")
    assert chicago is not None and new_york is not None
    assert 700 < zipgeo.haversine_miles(chicago, new_york) < 730
    assert zipgeo.nearest("60614", ["10001", "60601", "99999"]) == (
        "60601", pytest.approx(zipgeo.haversine_miles(chicago, zipgeo.coordinates("60601"))),
    )  # fmt: skip


@pytest.mark.parametrize(
    "typed",
    ["\u0666\u0660\u0666\u0661\u0664", "\uff19\uff14\uff11\uff10\uff13", "6061", "6061-4",
     "6061\u200d", "6061\u0301", " 6061", "", "-1234", "6061\x00"],
)  # fmt: skip
def test_only_five_ascii_digits_are_ever_a_zip(typed):
    """Arabic-Indic and full-width digits pass str.isdigit(); the table still says no."""
    assert zipgeo.lookup(typed) is None
    assert zipgeo.coordinates(typed) is None and zipgeo.place(typed) == ""
    assert zipgeo.place("60614-1234") == "Chicago, IL"  # a stored ZIP+4: its first five


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=12))
def test_lookups_of_any_unicode_text_never_raise(text):
    for value in (text, text[:5], text.ljust(5, "0")[:5]):
        record = zipgeo.lookup(value)
        assert record is None or (value.isascii() and len(value) == 5)
        zipgeo.coordinates(value)
        zipgeo.place(value)
        zipgeo.nearest(value, [value, "60614"])
        validation.zip_info(value)
        validation.address_mismatch("Austin", "TX", value)


def test_a_damaged_table_is_logged_and_every_zip_is_unknown(tmp_path, monkeypatch, caplog):
    damaged = tmp_path / "zip_table.tsv.gz"
    damaged.write_bytes(b"not gzip at all")
    monkeypatch.setattr(zipgeo, "TABLE", damaged)
    monkeypatch.setattr(zipgeo, "_loaded", None)
    validation._zip_lookup.cache_clear()
    try:
        with pytest.raises(zipgeo.ZipTableError):
            zipgeo.lookup("60614")
        with pytest.raises(validation.Invalid, match="find ZIP 60614"):
            validation.parse_zip("60614")
    finally:
        validation._zip_lookup.cache_clear()
    assert "the ZIP table cannot be read" in caplog.text


def test_no_process_of_the_app_loads_zipcodes():
    """Every hcpform module imported and a few ZIPs checked: `zipcodes` stays out of memory."""
    code = (
        "import importlib, pkgutil, sys, hcpform\n"
        "for m in pkgutil.walk_packages(hcpform.__path__, 'hcpform.'):\n"
        "    importlib.import_module(m.name)\n"
        "from hcpform import validation, zipgeo\n"
        "validation.parse_zip('60614'); zipgeo.nearest('60614', ['10001'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'zipcodes'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
