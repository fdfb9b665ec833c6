"""How fast a backlog drains once an HCP outage ends, and whether the queue churns meanwhile.

The outage leaves N submissions waiting (HCP refused the key, so the circuit is open). Then the
key works again and the admin's "Test connection" resumes them all at once. Real `flask worker`
processes (with their sweep every few seconds) sync them against the sandbox. The script prints
the drain time, the rate against the HCP rate budget, the longest the queue got, and how many
sync jobs were made per submission (1.0 means no redundant enqueue).

    .venv/bin/python bench/drain.py                 # N=1000, 4 workers, SQLite
    .venv/bin/python bench/drain.py --n 500 --db postgresql
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Procs,
    app_env,
    header,
    init_db,
    save_results,
    start_services,
)
from bench.sync import add_submission, make_app, start_workers  # noqa: E402


def queue_length() -> int:
    """Return the sync jobs waiting: on the queue plus scheduled."""
    from hcpform.jobs import get_queue

    queue = get_queue()
    return len(queue) + queue.scheduled_job_registry.count


def sync_jobs_made() -> int:
    """Return how many sync jobs were ever made (each submission's job counter, summed)."""
    from hcpform.extensions import get_redis

    conn = get_redis()
    keys = list(conn.scan_iter("hcpform:sync:job:*", count=1000))
    return sum(int(v or 0) for v in conn.mget(keys)) if keys else 0


def statuses() -> dict[str, int]:
    from sqlalchemy import func, select

    from hcpform.extensions import db
    from hcpform.models import Submission

    rows = db.session.execute(
        select(Submission.status, func.count()).group_by(Submission.status)
    ).all()
    db.session.rollback()
    return {str(s): c for s, c in rows}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="submissions waiting at the end")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--db", default="sqlite", choices=["postgresql", "sqlite"])
    parser.add_argument("--hcp-rate", type=float, default=50.0, help="HCP_RATE_LIMIT_PER_SECOND")
    parser.add_argument("--latency-ms", type=int, default=50, help="added to every HCP call")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this long")
    args = parser.parse_args()
    info = header("Backlog drain after an HCP outage (bench/drain.py)")
    out: dict[str, Any] = {"machine": info, "args": vars(args)}
    run = str(int(time.time()) % 100000)
    with Procs() as procs:
        db_url, redis_url, hcp_url = start_services(
            procs, db=args.db, latency_ms=args.latency_ms, out=out
        )
        settings = {
            "HCP_RATE_LIMIT_PER_SECOND": args.hcp_rate,
            "RATELIMIT_ENABLED": False,
            # The sweep runs often and thinks a row is stuck after 10 s: during a long drain it
            # meets every queued row again, which is where redundant jobs used to come from.
            "SWEEP_INTERVAL_SECONDS": 5,
            "SWEEP_PENDING_GRACE_SECONDS": 10,
        }
        env = app_env(db_url, redis_url, hcp_url, **settings)
        init_db(env)
        app = make_app(env)
        with app.app_context():
            from hcpform.admin.settings import check_connection
            from hcpform.connection import connection_row, mark_disconnected
            from hcpform.extensions import db
            from hcpform.models import Status, Submission

            # The outage's end state: the circuit is open, N submissions wait.
            mark_disconnected(connection_row(), "HCP refused the API key (401)")
            made = time.monotonic()
            for n in range(1, args.n + 1):
                add_submission(n, run)
            db.session.execute(
                Submission.__table__.update().values(
                    status=Status.WAITING, last_error="Waiting for the HCP connection"
                )
            )
            db.session.commit()
            print(f"{args.n} waiting submissions made in {time.monotonic() - made:.1f} s")
            start_workers(procs, env, args.workers, redis_url)

            started = time.monotonic()
            result = check_connection()  # the outage ends: what the admin's button does
            print(f"connection test: {result.message}; resumed {result.resumed}")
            longest, samples = 0, 0
            while True:
                longest = max(longest, queue_length())
                samples += 1
                found = statuses()
                if found.get(Status.SYNCED, 0) >= args.n:
                    break
                if time.monotonic() - started > args.timeout:
                    print(f"gave up after {args.timeout:g} s: {found}")
                    break
                time.sleep(0.2)
            took = time.monotonic() - started
            jobs = sync_jobs_made()
            calls = db.session.execute(
                db.text("SELECT count(*) FROM hcp_call WHERE submission_id IS NOT NULL")
            ).scalar_one()
            db.session.rollback()
            ideal = calls / args.hcp_rate
            out.update(
                drain_seconds=round(took, 1),
                synced=statuses().get(Status.SYNCED, 0),
                longest_queue=longest,
                sync_jobs=jobs,
                hcp_calls=calls,
                budget_seconds=round(ideal, 1),
            )
            print(
                f"\ndrain: {out['synced']}/{args.n} synced {took:.1f} s after the outage ended "
                f"({args.workers} workers, HCP_RATE_LIMIT_PER_SECOND={args.hcp_rate:g}, "
                f"{args.latency_ms} ms per call)\n"
                f"  {calls} HCP calls ({calls / max(1, args.n):.2f} per submission): at the rate "
                f"budget alone they take {ideal:.1f} s, so the drain ran at "
                f"{ideal / took:.0%} of the budget\n"
                f"  longest queue (queued + scheduled): {longest} (backlog {args.n}); sync jobs "
                f"made: {jobs} = {jobs / max(1, args.n):.2f} per submission"
            )
            db.session.remove()
            db.engine.dispose()
    save_results("drain", out)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
