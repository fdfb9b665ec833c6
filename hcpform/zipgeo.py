"""US ZIP codes from a compact offline table: is it real, its city and state, distances. No map.

The table is `zip_table.tsv.gz`, next to this module and committed with it: one line per ZIP of
the `zipcodes` package's data (about 42,800), `zip, city, state, latitude, longitude, other
accepted city names (|-separated)`, tab-separated and sorted. It is ~600 KB on disk and ~2 MB in
a process once read (on the first lookup), where `zipcodes` kept ~35 MB of Python dicts.
`python -m hcpform.zipgeo` writes it again from the installed `zipcodes`, the only place that
package is used besides tests/test_zipgeo.py, which checks the two agree on every ZIP.
"""

from __future__ import annotations

import gzip
import logging
import math
import threading
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

EARTH_RADIUS_MILES = 3958.8
TABLE = Path(__file__).with_name("zip_table.tsv.gz")
_ZIP_COUNT = 100_000  # 00000-99999: the index has a slot for every 5-digit number
_NO_ZIP = -1
_loaded: tuple[bytes, array[int]] | None = None
_lock = threading.Lock()
log = logging.getLogger(__name__)


class ZipTableError(RuntimeError):
    """The ZIP table is missing or damaged: the install is broken, not the ZIP someone typed."""


@dataclass(frozen=True)
class ZipRecord:
    """One ZIP of the table, spelled as the `zipcodes` data spells it."""

    zip5: str
    city: str
    state: str
    latitude: float
    longitude: float
    # Other names the Postal Service accepts for this ZIP (the main one is `city`).
    acceptable_cities: tuple[str, ...] = ()


def pack(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Return the gzip'd table made from `zipcodes` rows (its dicts); the same rows, same bytes.

    Raises:
        ValueError: when a row has a field the table cannot hold (a tab, a line break, a `|`).
    """
    lines = []
    for row in sorted(rows, key=lambda r: str(r["zip_code"])):
        fields = [
            str(row["zip_code"]), str(row["city"]), str(row["state"]),
            str(row["lat"]), str(row["long"]), "|".join(row.get("acceptable_cities") or ()),
        ]  # fmt: skip
        if any(ch in "\t\n\r" for f in fields for ch in f) or "|" in "".join(fields[:5]):
            raise ValueError(f"ZIP {fields[0]} has a field the table cannot hold")
        lines.append("\t".join(fields) + "\n")
    return gzip.compress("".join(lines).encode(), compresslevel=9, mtime=0)


def _read(path: Path) -> tuple[bytes, array[int]]:
    """Return the table's text and, for each 5-digit number, where its line starts (or -1)."""
    data = gzip.decompress(path.read_bytes())
    index = array("i", [_NO_ZIP]) * _ZIP_COUNT
    start = 0
    while start < len(data):
        end = data.index(b"\n", start)
        index[int(data[start : start + 5])] = start
        start = end + 1
    return data, index


def _table() -> tuple[bytes, array[int]]:
    """Return the table, read once per process (thread-safe).

    Raises:
        ZipTableError: when the file is missing or damaged.
    """
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                try:
                    _loaded = _read(TABLE)
                except (OSError, EOFError, ValueError) as exc:
                    log.error("the ZIP table cannot be read: %r", exc)
                    raise ZipTableError("the ZIP table cannot be read") from exc
    return _loaded


def lookup(zip5: object) -> ZipRecord | None:
    """Return the table's record of a 5-ASCII-digit ZIP, or None (for any other value too).

    Raises:
        ZipTableError: only when the table itself cannot be read.
    """
    if not isinstance(zip5, str) or len(zip5) != 5 or not (zip5.isascii() and zip5.isdigit()):
        return None
    data, index = _table()
    start = index[int(zip5)]
    if start == _NO_ZIP:
        return None
    zip_code, city, state, lat, long, others = (
        data[start : data.index(b"\n", start)].decode().split("\t")
    )
    return ZipRecord(
        zip5=zip_code, city=city, state=state, latitude=float(lat), longitude=float(long),
        acceptable_cities=tuple(others.split("|")) if others else (),
    )  # fmt: skip


@lru_cache(maxsize=4096)
def coordinates(zip_code: str) -> tuple[float, float] | None:
    """Return (latitude, longitude) of a ZIP's centre, or None when it is unknown."""
    record = lookup((zip_code or "")[:5])
    return (record.latitude, record.longitude) if record else None


def place(zip_code: str) -> str:
    """Return "City, ST" for a ZIP, or '' when it is unknown."""
    record = lookup((zip_code or "")[:5])
    return f"{record.city}, {record.state}" if record else ""


def haversine_miles(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle distance between two (latitude, longitude) points in miles."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(h)))


def nearest(zip_code: str, served: Iterable[str]) -> tuple[str, float] | None:
    """Return the served ZIP nearest to `zip_code` and its distance in miles, or None."""
    here = coordinates(zip_code)
    if here is None:
        return None
    best: tuple[str, float] | None = None
    for other in served:
        there = coordinates(other)
        if there is None:
            continue
        miles = haversine_miles(here, there)
        if best is None or miles < best[1]:
            best = (other[:5], miles)
    return best


def _write_table() -> None:  # pragma: no cover  (run by hand after a `zipcodes` upgrade)
    """Write the table again from the installed `zipcodes` package (a test dependency)."""
    import zipcodes

    TABLE.write_bytes(pack(zipcodes.filter_by()))
    print(f"{TABLE.name}: {TABLE.stat().st_size:,} bytes")


if __name__ == "__main__":
    _write_table()
