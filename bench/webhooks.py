"""The webhook endpoint: requests/s and p95 of POST /hooks/hcp beside a bare Flask POST, same run.

    .venv/bin/python bench/webhooks.py [--quick] [--db sqlite|postgresql] [--duration 10]

Starts a redis-server and the HCP sandbox, then gunicorn (2 sync workers) on bench/bare_app.py
and on hcpform (`init-db` first, HCP_WEBHOOK_SECRET set, the per-address webhook limit raised
so that the load is counted but never refused). --users threads, each with its own
requests.Session, post signed `job.completed` deliveries (each one new, so each is verified,
stored once and enqueued; no worker runs, so the apply jobs wait in Redis) in a closed loop for
--duration seconds; the bare app gets the same bodies on `POST /hooks`, which reads the body and
answers 200. Every target is 127.0.0.1; every loop is bounded by time.

What HCP needs (issue 12): an answer well within its delivery timeout (acknowledge within 1 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Procs,
    app_env,
    header,
    init_db,
    ms,
    percentile,
    postgres_url,
    save_results,
    sqlite_url,
    start_gunicorn,
    start_redis,
    start_sandbox,
)
from hcpform.webhooks.signing import signature  # noqa: E402

SECRET = "bench-webhook-secret-" + "s" * 24


def delivery(n: int, run: int) -> tuple[bytes, dict[str, str]]:
    """Return a signed job.completed delivery, different for every n."""
    body = json.dumps(
        {
            "event": "job.completed",
            "event_occurred_at": "2026-12-07T10:00:00Z",
            "company_id": "bench",
            "job": {"id": f"job_bench_{run}_{n}", "work_status": "complete unrated"},
        }
    ).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "Api-Timestamp": stamp,
        "Api-Signature": signature(SECRET, stamp, body),
    }
    return body, headers


def load(url: str, *, users: int, duration: float, run: int) -> dict[str, Any]:
    """Post deliveries from `users` threads for `duration` seconds; return the figures."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(10**9))
    deadline = time.monotonic() + duration

    def user() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                n = next(counter)
            body, headers = delivery(n, run)
            started = time.perf_counter()
            response = session.post(url, data=body, headers=headers, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.monotonic()
    threads = [threading.Thread(target=user) for _ in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall if wall else 0.0,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "statuses": statuses,
    }


def show(name: str, r: dict[str, Any]) -> None:
    """Print one app's figures."""
    print(
        f"  {name:<22} {r['requests']:>6} requests, {r['rps']:7.1f} req/s, "
        f"p50 {ms(r['p50_s'])}, p95 {ms(r['p95_s'])}, statuses {r['statuses']}"
    )


def main() -> int:
    """Run the bare app, then hcpform, under the same load; print and save the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s per app")
    parser.add_argument("--db", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per app")
    parser.add_argument("--users", type=int, default=8, help="senders at once")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (both apps)")
    args = parser.parse_args()
    if args.quick:
        args.duration = 3.0
    info = header("Webhook endpoint (bench/webhooks.py)")
    out: dict[str, Any] = {"machine": info, "args": vars(args)}
    run = int(time.time())
    with Procs() as procs:
        bare_url, bare = start_gunicorn(
            procs,
            "bench.bare_app:app",
            app_env("sqlite://", "redis://x", "http://x"),
            workers=args.workers,
            name="bare",
        )
        out["bare"] = load(f"{bare_url}/hooks", users=args.users, duration=args.duration, run=run)
        procs.stop(bare)
        redis_url, hcp_url = start_redis(procs), start_sandbox(procs)
        db_url = sqlite_url(procs)
        if args.db == "postgresql":
            db_url, why = postgres_url()
            if db_url is None:
                print(f"PostgreSQL: skipped: {why}")
                return 1
        env = app_env(db_url, redis_url, hcp_url, RATELIMIT_WEBHOOK_PER_IP="1000000/minute")
        env["HCP_WEBHOOK_SECRET"] = SECRET
        init_db(env)
        url, web = start_gunicorn(procs, "wsgi:app", env, workers=args.workers, name="web")
        out["hcpform"] = load(f"{url}/hooks/hcp", users=args.users, duration=args.duration, run=run)
        procs.stop(web)
    print(f"\n{args.users} senders, {args.duration:g} s per app, gunicorn {args.workers} workers:")
    show("bare Flask POST", out["bare"])
    show(f"POST /hooks/hcp ({args.db})", out["hcpform"])
    bare, ours = out["bare"], out["hcpform"]
    if bare["rps"]:
        print(f"  => {ours['rps'] / bare['rps']:.2f}x the bare app's requests/s; ", end="")
    print(f"p95 {ms(ours['p95_s'])} (goal: well under 1 s)")
    save_results("webhooks", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
