"""Scale of the admin: 100,000 submissions and 1,000,000 HCP call records, then time each page.

    .venv/bin/python bench/admin.py [--quick] [--db postgresql,sqlite] [--repeat 7]

Seeds a fresh bench database (`init-db`, then COPY on PostgreSQL / executemany on SQLite:
submissions over the last 365 days, one sync attempt each, HCP calls, drafts and funnel
counts), signs in as an admin through the login form, then times every admin page through the
Flask test client (the server side only: routing, queries, templates), each --repeat times
after one warm-up. For each page it prints the median and the slowest time, the number of SQL
statements, and the slowest statement; a page over the 200 ms goal also gets the EXPLAIN
(ANALYZE) of its slowest statement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    Procs,
    app_env,
    header,
    init_db,
    postgres_url,
    save_results,
    sqlite_url,
    start_redis,
)
from hcpform.formdefs import TEMPLATE_SERVICE_TYPES  # noqa: E402

GOAL_MS = 200.0
FIRST = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Maria Daniel Nancy Matthew Lisa "
    "Anthony Betty Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua "
    "Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie"
).split()
LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White "
    "Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres "
    "Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts"
).split()
SERVICES = TEMPLATE_SERVICE_TYPES
STATUSES = (
    ["synced"] * 90
    + ["pending"] * 2
    + ["failed"] * 3
    + ["waiting"] * 1
    + ["quarantined"] * 3
    + ["manual"] * 1
)
URGENCIES = ("emergency", "soon", "soon", "flexible", "flexible", "flexible")
CALL_KINDS = (
    ("GET", "/customers", 200),
    ("GET", "/customers", 200),
    ("POST", "/customers", 201),
    ("POST", "/jobs", 201),
    ("GET", "/job_fields/job_types", 200),
)
REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


# -- seeding ----------------------------------------------------------------------------------


def column_defaults(table: Any) -> dict[str, Any]:
    """Return each column's scalar default (what the ORM would have filled in)."""
    out = {}
    for col in table.columns:
        default = col.default
        if default is not None and not callable(getattr(default, "arg", None)):
            out[col.name] = default.arg
        elif default is not None and getattr(default.arg, "__name__", "") == "list":
            out[col.name] = []
        elif default is not None and getattr(default.arg, "__name__", "") == "dict":
            out[col.name] = {}
        elif not col.nullable and not col.primary_key:
            out[col.name] = None  # must be given by the generator
    return out


def gen_submissions(
    n: int, form_id: int, now: datetime, rng: random.Random
) -> list[dict[str, Any]]:
    rows = []
    refs: set[str] = set()
    for i in range(1, n + 1):
        created = now - timedelta(seconds=rng.uniform(0, 365 * 86400) * (i / n) ** 0.0)
        while True:
            ref = "HCP-" + "".join(rng.choice(REF_ALPHABET) for _ in range(5))
            if ref not in refs:
                refs.add(ref)
                break
        first, last = rng.choice(FIRST), rng.choice(LAST)
        status = rng.choice(STATUSES)
        day = (created + timedelta(days=rng.randint(1, 14))).date()
        start = datetime.combine(day, datetime.min.time()) + timedelta(hours=14)
        matched = (
            rng.choice(("created", "created", "created", "phone", "email"))
            if status == "synced"
            else None
        )
        rows.append(
            {
                "id": i,
                "reference": ref,
                "form_id": form_id,
                "status": status,
                "created_at": created,
                "updated_at": created,
                "first_name": first,
                "last_name": last,
                "phone": f"+1312{2000000 + i:07d}",
                "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                "street": f"{rng.randint(1, 9999)} N Clark St",
                "street_line_2": "",
                "city": "Chicago",
                "state": "IL",
                "zip": "60614",
                "country": "US",
                "customer_type": "commercial" if rng.random() < 0.15 else "residential",
                "company": "",
                "is_first_time_client": rng.random() < 0.6,
                "service_type": rng.choice(SERVICES),
                "urgency": rng.choice(URGENCIES),
                "description": "Kitchen sink drains slowly. " * 3,
                "special_instructions": "",
                "booking_date": day,
                "booking_window": "08-11",
                "scheduled_start": start,
                "scheduled_end": start + timedelta(hours=3),
                "answers": {"zip": "60614", "booking_type": "Drain cleaning"},
                "language": "en",
                "utm_source": rng.choice(("", "", "google", "facebook")),
                "source": "hosted",
                "hcp_customer_id": f"cus_{i:032x}" if status == "synced" else None,
                "hcp_address_id": f"adr_{i:032x}" if status == "synced" else None,
                "hcp_job_id": f"job_{i:032x}" if status == "synced" else None,
                "customer_matched_by": matched,
                "attempts": 1,
                "synced_at": created + timedelta(seconds=1) if status == "synced" else None,
                "last_error": "HCP answered 422: customer: invalid" if status == "failed" else "",
                "last_error_code": 422 if status == "failed" else None,
            }
        )
    return rows


def seed(db_url: str, n_subs: int, n_calls: int, rng: random.Random) -> dict[str, float]:
    """Fill the bench database; return the seconds each table took."""
    from sqlalchemy import create_engine, select

    from hcpform.config import normalise_database_url
    from hcpform.models import Draft, Form, FunnelCount, HcpCall, Submission, SyncAttempt

    engine = create_engine(normalise_database_url(db_url))
    with engine.connect() as conn:
        form_id = conn.execute(select(Form.id).where(Form.slug == "service-request")).scalar_one()
    now = datetime.now(UTC).replace(tzinfo=None)
    timings: dict[str, float] = {}
    pg = db_url.startswith("postgres")

    def load(table: Any, rows: Any, label: str) -> None:
        started = time.monotonic()
        defaults = column_defaults(table)
        cols = [c.name for c in table.columns if c.name in defaults or c.primary_key or c.nullable]
        json_cols = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}

        def tuples() -> Any:
            for row in rows:
                values = []
                for c in cols:
                    v = row.get(c, defaults.get(c))
                    if c in json_cols and v is not None:
                        v = json.dumps(v)
                    values.append(v)
                yield tuple(values)

        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            if pg:
                with cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
                    for t in tuples():
                        copy.write_row(t)
            else:
                marks = ", ".join("?" for _ in cols)
                sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})"
                batch: list[tuple] = []
                for t in tuples():
                    batch.append(
                        tuple(v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in t)
                    )
                    if len(batch) >= 20000:
                        cur.executemany(sql, batch)
                        batch.clear()
                if batch:
                    cur.executemany(sql, batch)
            raw.commit()
        finally:
            raw.close()
        timings[label] = time.monotonic() - started
        print(f"  {label}: {timings[label]:.1f} s", flush=True)

    subs = gen_submissions(n_subs, form_id, now, rng)
    drafts = (
        {
            "id": s["id"],
            "token": f"tok{s['id']:020d}",
            "form_id": form_id,
            "answers": {},
            "completed_steps": [],
            "furthest_step": 6,
            "attribution": {},
            "lookup": {},
            "source": "hosted",
            "started_at": s["created_at"] - timedelta(minutes=3),
            "updated_at": s["created_at"],
            "expires_at": s["created_at"] + timedelta(days=7),
            "submitted_at": s["created_at"],
        }
        for s in subs
    )
    load(Draft.__table__, drafts, f"{n_subs:,} drafts")
    for s in subs:
        s["draft_id"] = s["id"]
    load(Submission.__table__, subs, f"{n_subs:,} submissions")
    attempts = (
        {
            "id": s["id"],
            "submission_id": s["id"],
            "number": 1,
            "started_at": s["created_at"],
            "finished_at": s["created_at"] + timedelta(seconds=1),
            "outcome": s["status"],
            "message": "",
            "worker": "bench:1",
        }
        for s in subs
    )
    load(SyncAttempt.__table__, attempts, f"{n_subs:,} sync attempts")

    def calls() -> Any:
        per = n_calls // n_subs
        extra = n_calls - per * n_subs
        cid = 0
        for s in subs:
            k = per + (1 if s["id"] <= extra else 0)
            for j in range(k):
                cid += 1
                method, path, status = CALL_KINDS[j % len(CALL_KINDS)]
                ok = rng.random() > 0.02
                yield {
                    "id": cid,
                    "submission_id": s["id"],
                    "method": method,
                    "path": path,
                    "status": status if ok else 503,
                    "ok": ok,
                    "duration_ms": int(rng.lognormvariate(5.0, 0.5)),
                    "attempt": 1,
                    "message": "" if ok else "HTTP 503 (non-JSON body)",
                    "created_at": s["created_at"] + timedelta(milliseconds=200 * (j + 1)),
                }

    load(HcpCall.__table__, calls(), f"{n_calls:,} HCP calls")
    funnel = (
        {
            "form_id": form_id,
            "day": (now - timedelta(days=d)).date(),
            "event": "start",
            "count": rng.randint(200, 900),
        }
        for d in range(366)
    )
    load(FunnelCount.__table__, funnel, "366 funnel counts")
    started = time.monotonic()
    with engine.connect() as conn:
        if pg:
            from sqlalchemy import text

            for table in ("draft", "submission", "sync_attempt", "hcp_call", "funnel_count"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                ) if table != "funnel_count" else None
            conn.execute(text("ANALYZE"))
        else:
            conn.exec_driver_sql("ANALYZE")
        conn.commit()
    timings["analyze"] = time.monotonic() - started
    engine.dispose()
    return timings


# -- timing -----------------------------------------------------------------------------------


class QueryLog:
    """Record every SQL statement an app runs, with its time, while `active`."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.active = False
        self.items: list[tuple[float, str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        conn.info.setdefault("bench_t", []).append(time.perf_counter())

    def _after(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        started = conn.info["bench_t"].pop()
        if self.active:
            self.items.append((time.perf_counter() - started, statement, params))


def login(client: Any) -> None:
    """Sign in through the login form, as a person would."""
    import re

    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    data = {"email": "bench@example.com", "password": "bench-password-123"}
    if token:
        data["csrf_token"] = token.group(1)
    response = client.post("/admin/login", data=data)
    if response.status_code not in (302, 303):
        raise RuntimeError(
            f"admin login failed: {response.status_code} {response.get_data(as_text=True)[:500]}"
        )


def explain(engine_url: str, statement: str, params: Any) -> str:
    from sqlalchemy import create_engine

    engine = create_engine(engine_url)
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            if engine_url.startswith("postgresql"):
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            else:
                cur.execute("EXPLAIN QUERY PLAN " + statement, params or ())
            return "\n".join("      " + " | ".join(str(c) for c in row) for row in cur.fetchall())
        finally:
            raw.close()
    finally:
        engine.dispose()


def time_pages(
    app: Any, pages: list[tuple[str, str]], repeat: int, engine_url: str
) -> list[dict[str, Any]]:
    from hcpform.extensions import db

    client = app.test_client()
    with app.app_context():
        log = QueryLog(db.engine)
    login(client)
    results = []
    for label, url in pages:
        times, statuses, queries = [], set(), []
        for i in range(repeat + 1):
            log.items = []
            log.active = True
            started = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - started
            log.active = False
            statuses.add(response.status_code)
            if i:  # the first run warms caches, templates and the connection
                times.append(elapsed)
                queries = list(log.items)
        slowest = max(queries, key=lambda q: q[0]) if queries else (0.0, "", None)
        r = {
            "page": label,
            "url": url,
            "status": sorted(statuses),
            "median_ms": statistics.median(times) * 1000,
            "max_ms": max(times) * 1000,
            "queries": len(queries),
            "sql_ms": sum(q[0] for q in queries) * 1000,
            "slowest_sql_ms": slowest[0] * 1000,
            "slowest_sql": " ".join(slowest[1].split())[:300],
        }
        verdict = "ok" if r["median_ms"] <= GOAL_MS else "OVER 200 ms"
        print(
            f"  {label:<34} {r['median_ms']:7.1f} ms median, {r['max_ms']:7.1f} max, "
            f"{r['queries']:3d} queries ({r['sql_ms']:.1f} ms SQL, "
            f"slowest {r['slowest_sql_ms']:.1f} ms) "
            f"HTTP {','.join(map(str, r['status']))}  {verdict}",
            flush=True,
        )
        if 404 in statuses or 405 in statuses:
            r["missing"] = True
        if r["median_ms"] > GOAL_MS and slowest[1]:
            print(f"    slowest statement: {r['slowest_sql']}")
            try:
                plan = explain(engine_url, slowest[1], slowest[2])
                r["plan"] = plan
                print(plan)
            except Exception as exc:  # a plan is a bonus
                print(f"    (no plan: {exc})")
        results.append(r)
    return results


def pages_for(app: Any) -> list[tuple[str, str]]:
    from sqlalchemy import func, select

    from hcpform.extensions import db
    from hcpform.models import HcpCall, Submission

    with app.app_context():
        sample = db.session.get(Submission, 4242) or db.session.scalar(select(Submission).limit(1))
        busiest = db.session.execute(
            select(HcpCall.submission_id, func.count())
            .group_by(HcpCall.submission_id)
            .order_by(func.count().desc())
            .limit(1)
        ).first()
        failed = db.session.scalar(
            select(Submission.id).where(Submission.status == "failed").limit(1)
        )
    today = date.today()
    pages = [
        ("dashboard (7 days)", "/admin/"),
        ("dashboard (1 day)", "/admin/?days=1"),
        ("dashboard (90 days)", "/admin/?days=90"),
        ("list, no filter", "/admin/submissions"),
        ("list, page 1000", "/admin/submissions?page=1000"),
        ("list, status=failed", "/admin/submissions?status=failed"),
        ("list, status=synced", "/admin/submissions?status=synced"),
        ("list, status=manual", "/admin/submissions?status=manual"),
        ("list, form", "/admin/submissions?form=service-request"),
        ("list, service_type", "/admin/submissions?service_type=Water+heater"),
        ("list, urgency=emergency", "/admin/submissions?urgency=emergency"),
        ("list, customer_type", "/admin/submissions?customer_type=commercial"),
        (
            "list, last 7 days",
            f"/admin/submissions?date_from={today - timedelta(days=7)}&date_to={today}",
        ),
        (
            "list, all filters",
            f"/admin/submissions?status=synced&service_type=Electrical&urgency=soon"
            f"&customer_type=residential&date_from={today - timedelta(days=90)}",
        ),
        ("search, name (common)", "/admin/submissions?q=Maria+Garcia"),
        ("search, name (absent)", "/admin/submissions?q=Zebedee"),
        ("search, email", f"/admin/submissions?q={sample.email}"),
        ("search, phone", f"/admin/submissions?q={sample.phone.replace('+', '%2B')}"),
        ("search, reference", f"/admin/submissions?q={sample.reference}"),
        ("detail", f"/admin/submissions/{sample.id}"),
        ("detail, failed", f"/admin/submissions/{failed}"),
    ]
    if busiest:
        pages.append((f"detail, {busiest[1]} HCP calls", f"/admin/submissions/{busiest[0]}"))
    return pages


def run_backend(
    backend: str, db_url: str, redis_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    env = app_env(db_url, redis_url, "http://127.0.0.1:9", RATELIMIT_ENABLED=False)
    started = time.monotonic()
    init_db(env)
    print(f"  init-db: {time.monotonic() - started:.1f} s")
    timings = seed(db_url, args.submissions, args.calls, random.Random(7))
    for key, value in env.items():
        os.environ[key] = value
    from hcpform import create_app
    from hcpform.admin.auth import set_admin
    from hcpform.extensions import db

    app = create_app()
    with app.app_context():
        set_admin("bench@example.com", "bench-password-123")
        db.session.commit()
    engine_url = app.config["SQLALCHEMY_DATABASE_URI"]
    print(f"  timing each page ({args.repeat} runs after a warm-up, Flask test client, signed in):")
    results = time_pages(app, pages_for(app), args.repeat, engine_url)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    over = [r["page"] for r in results if r["median_ms"] > GOAL_MS]
    print(
        f"  => {len(results) - len(over)}/{len(results)} pages under {GOAL_MS:.0f} ms"
        + (f"; over: {', '.join(over)}" if over else "")
    )
    return {"seed_seconds": timings, "pages": results, "over": over}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 2,000 submissions, 20,000 calls"
    )
    parser.add_argument("--db", default="postgresql", help="comma-separated: postgresql, sqlite")
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.quick:
        args.submissions, args.calls, args.repeat = 2000, 20000, 2
    info = header("Scale of the admin (bench/admin.py)")
    out: dict[str, Any] = {"machine": info, "args": vars(args)}
    with Procs() as procs:
        redis_url = start_redis(procs)
        for backend in [b.strip() for b in args.db.split(",") if b.strip()]:
            print(f"{backend}: {args.submissions:,} submissions, {args.calls:,} HCP calls")
            if backend == "postgresql":
                db_url, why = postgres_url()
                if db_url is None:
                    print(f"  skipped: {why}")
                    out[backend] = {"skipped": why}
                    continue
            else:
                db_url = sqlite_url(procs)
            out[backend] = run_backend(backend, db_url, redis_url, args)
            print()
    save_results("admin", out)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
