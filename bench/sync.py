"""Sync latency and cost: submit -> job created in HCP, HCP calls per submission, throughput.

    .venv/bin/python bench/sync.py [--quick] [--db postgresql] [--hcp-rate 20] [--latency-ms 100]

Starts a redis-server, the HCP sandbox with --latency-ms added to every call, and real
`flask --app hcpform worker` processes. Submissions are saved and enqueued the way the wizard's
submit does it (a committed pending row, then enqueue_sync), from this process.

  latency     one worker, one submission at a time: submit -> POST /jobs answered, p50/p95,
              for new customers and then for the same people again (returning customers);
  cost        HcpCall rows per submission, by method and path, new vs returning;
  throughput  a batch synced by 1, 2, 4 and 8 workers: submissions/s, HCP calls/s, and the most
              HCP calls started in any 1-second window (the limiter must keep it <= --hcp-rate).

Goals (issue 7): p95 <= calls on the critical path x latency + 100 ms; a new customer costs 3
calls, a returning one at most 3; throughput near-linear in workers up to the HCP rate limit,
then flat at it and never above.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    Procs,
    app_env,
    flask_cmd,
    header,
    init_db,
    percentile,
    phone_for,
    save_results,
    start_services,
)


def make_app(env: dict[str, str]) -> Any:
    """Return the product app configured exactly as the workers are (same environment)."""
    for key, value in env.items():
        os.environ[key] = value
    from hcpform import create_app

    return create_app()


def add_submission(n: int, run: str) -> Any:
    """Save one pending submission for person n (as the wizard's submit does) and return it."""
    from sqlalchemy import select

    from hcpform import validation
    from hcpform.extensions import db
    from hcpform.models import Form, Status, Submission
    from hcpform.submissions import make_reference
    from hcpform.timeutil import utcnow

    form = db.session.scalar(select(Form).where(Form.slug == "service-request"))
    day = validation.today_in(form.time_zone, utcnow()) + timedelta(days=3)
    while day.weekday() in form.closed_weekdays:
        day += timedelta(days=1)
    window = form.time_windows[0]
    start, end = validation.window_bounds(day, window, form.time_zone)
    sub = Submission(
        reference=make_reference(),
        form_id=form.id,
        status=Status.PENDING,
        first_name="Bench",
        last_name=f"Person{n}",
        phone=validation.parse_phone(phone_for(n)),
        email=f"sync{run}.{n}@example.com",
        street=f"{100 + n % 9000} N Clark St",
        city="Chicago",
        state="IL",
        zip="60614",
        country="US",
        customer_type="residential",
        is_first_time_client=True,
        service_type="Drain cleaning",
        urgency="soon",
        description="Kitchen sink drains slowly.",
        booking_date=day,
        booking_window=window["id"],
        scheduled_start=start,
        scheduled_end=end,
        terms_version_id=form.current_terms.id if form.current_terms else None,
        answers={},
        created_at=utcnow(),
    )
    db.session.add(sub)
    db.session.commit()
    return sub


def submit(n: int, run: str) -> int:
    """Commit a submission, then enqueue its sync (the order the wizard uses); return its id."""
    from hcpform.extensions import db
    from hcpform.jobs import enqueue_sync
    from hcpform.timeutil import utcnow

    sub = add_submission(n, run)
    if enqueue_sync(sub.id):
        sub.enqueued_at = utcnow()
        db.session.commit()
    return sub.id


def wait_done(ids: list[int], timeout: float) -> dict[int, str]:
    """Wait until every submission is synced or failed (or the timeout); return their statuses."""
    from sqlalchemy import select

    from hcpform.extensions import db
    from hcpform.models import Submission

    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        rows = dict(
            db.session.execute(
                select(Submission.id, Submission.status).where(Submission.id.in_(ids))
            ).all()
        )
        if (
            all(s in ("synced", "failed", "waiting") for s in rows.values())
            or time.monotonic() > deadline
        ):
            db.session.rollback()
            return rows
        db.session.rollback()
        time.sleep(0.02)


def calls_of(ids: list[int]) -> list[Any]:
    from sqlalchemy import select

    from hcpform.extensions import db
    from hcpform.models import HcpCall

    return list(
        db.session.scalars(
            select(HcpCall).where(HcpCall.submission_id.in_(ids)).order_by(HcpCall.id)
        )
    )


def all_calls_since(first_id: int) -> list[Any]:
    from sqlalchemy import select

    from hcpform.extensions import db
    from hcpform.models import HcpCall

    return list(
        db.session.scalars(select(HcpCall).where(HcpCall.id > first_id).order_by(HcpCall.id))
    )


def last_call_id() -> int:
    from sqlalchemy import func, select

    from hcpform.extensions import db
    from hcpform.models import HcpCall

    return db.session.scalar(select(func.coalesce(func.max(HcpCall.id), 0))) or 0


def job_latencies(ids: list[int]) -> dict[int, float]:
    """Return, per submission, seconds from its created_at to the answer of its POST /jobs."""
    from sqlalchemy import select

    from hcpform.extensions import db
    from hcpform.models import Submission

    created = dict(
        db.session.execute(
            select(Submission.id, Submission.created_at).where(Submission.id.in_(ids))
        ).all()
    )
    out = {}
    for call in calls_of(ids):
        if call.method == "POST" and call.path == "/jobs" and call.ok:
            out[call.submission_id] = (
                call.created_at - created[call.submission_id]
            ).total_seconds()
    return out


WORKER_CMD = flask_cmd("worker")


def start_workers(procs: Procs, env: dict[str, str], n: int, redis_url: str) -> list[Any]:
    """Start n `flask worker` processes and wait until all of them listen on the queue."""
    import redis
    from rq import Worker

    conn = redis.Redis.from_url(redis_url)
    before = len(Worker.all(connection=conn))
    started = [procs.start(f"worker{i}", WORKER_CMD, env=env) for i in range(n)]
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=conn)) < before + n:
        if time.monotonic() > deadline or any(p.poll() is not None for p in started):
            raise RuntimeError("workers did not start:\n" + procs.log_tail("worker0"))
        time.sleep(0.1)
    return started


def breakdown(ids: list[int]) -> dict[str, float]:
    """Split submit -> job created into where the time went (medians over the submissions, ms).

    queue: submit to the worker's attempt starting (commit, enqueue, dequeue, fork);
    before_first_call: attempt start to the first HCP request leaving (claim, loads, client);
    hcp: the HCP calls themselves (their recorded durations);
    between_calls: our own work between the calls (commits, call records, payloads);
    after_job: the POST /jobs answer to the submission marked synced.
    """
    from sqlalchemy import select

    from hcpform.extensions import db
    from hcpform.models import Submission, SyncAttempt

    subs = {s.id: s for s in db.session.scalars(select(Submission).where(Submission.id.in_(ids)))}
    starts = dict(
        db.session.execute(
            select(SyncAttempt.submission_id, SyncAttempt.started_at).where(
                SyncAttempt.submission_id.in_(ids)
            )
        ).all()
    )
    by_sub: dict[int, list[Any]] = {}
    for call in calls_of(ids):
        by_sub.setdefault(call.submission_id, []).append(call)
    parts: dict[str, list[float]] = {
        k: [] for k in ("queue", "before_first_call", "hcp", "between_calls", "after_job")
    }
    for sid, calls in by_sub.items():
        sub, started = subs[sid], starts.get(sid)
        if started is None or sub.synced_at is None:
            continue
        sent = [c.created_at.timestamp() - c.duration_ms / 1000 for c in calls]
        done = [c.created_at.timestamp() for c in calls]
        hcp = sum(c.duration_ms for c in calls) / 1000
        parts["queue"].append(started.timestamp() - sub.created_at.timestamp())
        parts["before_first_call"].append(sent[0] - started.timestamp())
        parts["hcp"].append(hcp)
        parts["between_calls"].append(done[-1] - sent[0] - hcp)
        parts["after_job"].append(sub.synced_at.timestamp() - done[-1])
    return {k: percentile(v, 50) * 1000 for k, v in parts.items()}


def describe_calls(calls: list[Any]) -> str:
    counts = Counter(
        f"{c.method} {c.path if not c.path.startswith('/customers/') else '/customers/{id}/…'}"
        for c in calls
    )
    return ", ".join(f"{k} x{v}" for k, v in counts.most_common())


def latency_phase(label: str, people: list[int], run: str, timeout: float) -> dict[str, Any]:
    """Submit one at a time (the next after the previous is synced): latency without queueing."""
    ids, lat = [], {}
    for n in people:
        sid = submit(n, run)
        ids.append(sid)
        wait_done([sid], timeout)
        lat.update(job_latencies([sid]))
    calls = calls_of(ids)
    per_sub = Counter(c.submission_id for c in calls)
    statuses = Counter(wait_done(ids, 0).values())
    values = [lat[i] for i in ids if i in lat]
    steady = [lat[i] for i in ids[1:] if i in lat]
    result = {
        "label": label,
        "n": len(ids),
        "statuses": dict(statuses),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else float("nan"),
        "first": values[0] if values else float("nan"),
        "steady_p95": percentile(steady, 95),
        "calls_total": len(calls),
        "calls_first": per_sub.get(ids[0], 0),
        "calls_per_submission": Counter(per_sub.get(i, 0) for i in ids),
        "calls_after_first": len(calls) / max(1, len(ids))
        if len(ids) < 2
        else (len(calls) - per_sub.get(ids[0], 0)) / (len(ids) - 1),
        "calls_by_kind_first": describe_calls([c for c in calls if c.submission_id == ids[0]]),
        "calls_by_kind_second": describe_calls(
            [c for c in calls if len(ids) > 1 and c.submission_id == ids[1]]
        ),
        "ids": ids,
        "breakdown_ms": breakdown(ids[1:] or ids),
    }
    print(
        f"  {label}: {result['n']} submissions, {dict(statuses)}; submit -> job created p50 "
        f"{result['p50'] * 1000:.0f} ms, p95 {result['p95'] * 1000:.0f} ms, max "
        f"{result['max'] * 1000:.0f} ms (first one {result['first'] * 1000:.0f} ms)"
    )
    print(
        f"    HCP calls: first submission {result['calls_first']} "
        f"({result['calls_by_kind_first']}); "
        f"each later one {result['calls_after_first']:.2f} ({result['calls_by_kind_second']})"
    )
    print(
        "    where the time goes (medians, ms): "
        + ", ".join(f"{k} {v:.0f}" for k, v in result["breakdown_ms"].items())
    )
    return result


def max_in_window(starts: list[float], window: float = 1.0) -> int:
    """Return the most events whose start falls in any half-open window of `window` seconds."""
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while t - starts[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class GrantLog:
    """Collect the rate limiter's own grants, as the `limits` library stores them in Redis.

    Its moving window keeps, per key, a list of the last `limit` grant times (seconds); each stays
    there until `limit` newer grants push it out. Reading the lists every 0.1 s sees every grant
    with its exact time as long as no 0.1 s holds more than `limit` of them, so a limiter that
    over-granted would show up as a window over the limit: the check that no 1-second window
    ever held more calls than the limit.
    """

    def __init__(self, redis_url: str) -> None:
        import threading

        import redis

        self.conn = redis.Redis.from_url(redis_url)
        self.grants: dict[tuple[bytes, bytes], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from hcpform.hcp.client import RATE_LIMIT_PREFIX

        while not self._stop.is_set():
            for key in self.conn.scan_iter(match="*" + RATE_LIMIT_PREFIX + "*"):
                if self.conn.type(key) != b"list":  # the shared pause is a plain key
                    continue
                for member in self.conn.lrange(key, 0, -1):
                    self.grants[(key, member)] = float(member)
            self._stop.wait(0.1)

    def __enter__(self) -> GrantLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def throughput_phase(
    procs: Procs,
    env: dict[str, str],
    redis_url: str,
    workers: int,
    batch: int,
    run: str,
    first_person: int,
    timeout: float,
) -> dict[str, Any]:
    started_workers = start_workers(procs, env, workers, redis_url)
    try:
        mark = last_call_id()
        with GrantLog(env["REDIS_URL"]) as grants:
            t0 = time.monotonic()
            ids = [submit(first_person + i, run) for i in range(batch)]
            statuses = wait_done(ids, timeout)
            elapsed = time.monotonic() - t0
            time.sleep(0.3)  # one more read of the set
    finally:
        for p in started_workers:
            procs.stop(p, timeout=20)
    calls = all_calls_since(mark)
    starts = [(c.created_at.timestamp() - c.duration_ms / 1000) for c in calls]
    span = (max(starts) - min(starts)) if len(starts) > 1 else float("nan")
    synced = sum(1 for s in statuses.values() if s == "synced")
    result = {
        "workers": workers,
        "batch": batch,
        "synced": synced,
        "statuses": dict(Counter(statuses.values())),
        "elapsed_s": elapsed,
        "subs_per_s": synced / elapsed,
        "calls": len(calls),
        # (n - 1) intervals between n calls; the first second's burst still lifts this a little
        "calls_per_s": (len(calls) - 1) / span if span == span and span > 0 else float("nan"),
        "max_calls_in_1s": max_in_window(starts),
        "limiter_grants": len(grants.grants),
        "max_grants_in_1s": max_in_window(list(grants.grants.values())),
        "rate_limit_timeouts": sum(
            1 for c in calls if c.status is None and "rate" in (c.message or "")
        ),
    }
    print(
        f"  {workers} worker(s): {synced}/{batch} synced in {elapsed:.1f} s = "
        f"{result['subs_per_s']:.2f} submissions/s; {len(calls)} HCP calls, "
        f"{result['calls_per_s']:.1f} calls/s; at most {result['max_grants_in_1s']} limiter grants "
        f"in any 1 s ({result['limiter_grants']} grants read from Redis; "
        f"{result['max_calls_in_1s']} by the call records' approximate send times)"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: few submissions, 1 and 2 workers"
    )
    parser.add_argument("--db", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument(
        "--latency-ms", type=int, default=100, help="added by the sandbox to every call"
    )
    parser.add_argument("--hcp-rate", type=float, default=20.0, help="HCP_RATE_LIMIT_PER_SECOND")
    parser.add_argument("--n", type=int, default=40, help="submissions per latency phase")
    parser.add_argument(
        "--workers", default="1,2,4,8", help="worker counts for the throughput phase"
    )
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=12.0,
        help="size each throughput batch to take about this long",
    )
    parser.add_argument(
        "--worker",
        default="rq",
        choices=["rq", "warm"],
        help="rq: `flask --app hcpform worker` (the product); warm: bench/warm_worker.py, "
        "an experimental non-forking worker, to measure the cost of a fork per job",
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.workers, args.batch_seconds = 5, "1,2", 3.0
    if args.worker == "warm":
        global WORKER_CMD
        WORKER_CMD = [sys.executable, str(ROOT / "bench" / "warm_worker.py")]
    info = header("Sync latency and cost (bench/sync.py)")
    out: dict[str, Any] = {"machine": info, "args": vars(args)}
    run = str(int(time.time()) % 100000)
    with Procs() as procs:
        db_url, redis_url, hcp_url = start_services(
            procs, db=args.db, latency_ms=args.latency_ms, out=out
        )
        settings = {
            "HCP_RATE_LIMIT_PER_SECOND": args.hcp_rate,
            "RATELIMIT_ENABLED": False,
            "SWEEP_INTERVAL_SECONDS": 3600,  # no sweep in the middle of a measurement
        }
        env = app_env(db_url, redis_url, hcp_url, **settings)
        init_db(env)
        print(
            f"database {'hcpform_bench' if 'postgres' in db_url else 'SQLite file'} "
            f"({args.db}); workers: {args.worker}; sandbox latency {args.latency_ms} ms per call; "
            f"settings {settings}\n"
        )
        app = make_app(env)
        with app.app_context():
            print("latency and cost, 1 worker, one submission at a time:")
            workers = start_workers(procs, env, 1, redis_url)
            people = list(range(1, args.n + 1))
            try:
                new = latency_phase("new customers", people, run, timeout=60)
                again = latency_phase("returning customers", people, run, timeout=60)
            finally:
                for p in workers:
                    procs.stop(p)
            out["new"], out["returning"] = new, again
            for r in (new, again):
                r["calls_per_submission"] = {
                    str(k): v for k, v in r["calls_per_submission"].items()
                }
            critical_new = round(new["calls_after_first"])
            critical_again = round(again["calls_after_first"])
            lat = args.latency_ms / 1000
            for label, r, crit, goal_calls in (
                ("new", new, critical_new, 3),
                ("returning", again, critical_again, 3),
            ):
                budget = crit * lat + 0.1
                print(
                    f"  => {label}: p95 {r['p95'] * 1000:.0f} ms vs budget {crit} calls x "
                    f"{args.latency_ms} ms + 100 ms = {budget * 1000:.0f} ms: "
                    f"{'MET' if r['p95'] <= budget else 'NOT MET'} "
                    "(steady state, without the first: "
                    f"{r['steady_p95'] * 1000:.0f} ms); calls {r['calls_after_first']:.2f} vs goal "
                    f"{goal_calls}: {'MET' if r['calls_after_first'] <= goal_calls else 'NOT MET'}"
                )
            print(f"\nthroughput (new customers, HCP_RATE_LIMIT_PER_SECOND={args.hcp_rate:g}):")
            calls_per_sub = max(1.0, new["calls_after_first"])
            single = 1 / max(new["p50"], 0.05)
            out["throughput"] = []
            person = 100_000
            for w in [int(x) for x in args.workers.split(",")]:
                expected = min(single * w, args.hcp_rate / calls_per_sub)
                batch = max(5, min(200, int(expected * args.batch_seconds)))
                result = throughput_phase(procs, env, redis_url, w, batch, run, person, timeout=120)
                person += batch
                out["throughput"].append(result)
            base = out["throughput"][0]["subs_per_s"]
            ceiling = args.hcp_rate / calls_per_sub
            print(
                f"  => the HCP rate limit allows {args.hcp_rate:g} calls/s = {ceiling:.2f} new "
                f"customers/s at {calls_per_sub:.2f} calls each"
            )
            for r in out["throughput"]:
                ideal = min(base * r["workers"], ceiling)
                r["vs_ideal"] = r["subs_per_s"] / ideal
                over = r["max_grants_in_1s"] > args.hcp_rate
                print(
                    f"     {r['workers']} worker(s): {r['subs_per_s']:.2f}/s = "
                    f"{r['vs_ideal']:.0%} of "
                    f"min(linear {base * r['workers']:.2f}, limit {ceiling:.2f}); "
                    "most limiter grants in 1 s: "
                    f"{r['max_grants_in_1s']} ({'ABOVE the limit' if over else 'within the limit'})"
                )
            from hcpform.extensions import db

            db.session.remove()
            db.engine.dispose()
    save_results("sync", out)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
