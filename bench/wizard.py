"""Wizard throughput: complete wizards per second against a bare Flask ceiling, same run.

    .venv/bin/python bench/wizard.py [--quick] [--db sqlite,postgresql] [--duration 20]

Starts a redis-server, the HCP sandbox, then gunicorn (2 sync workers, HCPFORM_RATELIMIT_ENABLED
=false) on hcpform (`init-db` first) and on bench/bare_app.py. Separate load processes, each with
threads and one requests.Session per simulated person, walk complete wizards (every step's GET
and POST, the review, the submit, the confirmation). Two phases per app:

  peak  closed loop, --users people at once, for --duration seconds (or --max-wizards);
  half  open loop at half the peak request rate, for the latency at a normal load.

Goals (issue 7): step requests/s >= 0.5 x bare requests/s; p95 at half load <= 3 x bare p95
(each app at half its own peak). Every target is 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    Procs,
    Walk,
    app_env,
    children,
    cpu_seconds,
    header,
    init_db,
    percentile,
    person,
    postgres_url,
    save_results,
    sqlite_url,
    start_gunicorn,
    start_redis,
    start_sandbox,
)

# -- the load processes -----------------------------------------------------------------------


def load_process(
    kind: str, url: str, users: int, duration: float, max_units: int, rate: float, seed: int
) -> dict[str, Any]:
    """Run `users` threads walking wizards (or GET / on the bare app); return every timing.

    rate > 0 paces this process's requests to `rate` per second (open loop); 0 = as fast as
    the server answers (closed loop). Stops at `duration` seconds or `max_units` units.
    """
    import requests

    records: list[tuple[str, float, int]] = []
    errors: list[str] = []
    units = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    next_slot = [time.monotonic()]

    def pace() -> None:
        if rate <= 0:
            return
        with lock:
            slot = next_slot[0] = max(next_slot[0] + 1 / rate, time.monotonic() - 0.5)
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def record(label: str, seconds: float, status: int) -> None:
        records.append((label, seconds, status))

    def more() -> int | None:
        with lock:
            if time.monotonic() >= deadline or units[0] >= max_units:
                return None
            units[0] += 1
            return units[0]

    def user(index: int) -> None:
        while (n := more()) is not None:
            session = requests.Session()  # a new person: no cookies, a new connection pool
            try:
                if kind == "bare":
                    pace()
                    started = time.perf_counter()
                    response = session.get(url + "/", timeout=30)
                    record("GET /", time.perf_counter() - started, response.status_code)
                    if response.status_code != 200:
                        errors.append(f"bare {response.status_code}")
                else:
                    Walk(url, session, record, pace).run(person(seed + n, run=str(seed)))
            except Exception as exc:  # a failed wizard counts as an error, the run goes on
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            finally:
                session.close()

    before = resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "records": records,
        "errors": errors,
        "units": units[0] - len(errors),
        "elapsed": time.monotonic() - started,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    }


def run_phase(
    pool: ProcessPoolExecutor,
    kind: str,
    url: str,
    server_pids: list[int],
    *,
    users: int,
    procs: int,
    duration: float,
    max_units: int,
    rate: float,
    seed: int,
) -> dict[str, Any]:
    """Run the load processes at once; return the phase's figures."""
    cpu_before = sum(cpu_seconds(p) for p in server_pids)
    started = time.monotonic()
    per_proc = [users // procs + (1 if i < users % procs else 0) for i in range(procs)]
    futures = [
        pool.submit(
            load_process,
            kind,
            url,
            n,
            duration,
            max(1, max_units // procs),
            rate / procs,
            seed + i * 1_000_000,
        )
        for i, n in enumerate(per_proc)
        if n
    ]
    results = [f.result(timeout=duration + 600) for f in futures]
    wall = time.monotonic() - started
    server_cpu = sum(cpu_seconds(p) for p in server_pids) - cpu_before
    records = [r for res in results for r in res["records"]]
    errors = [e for res in results for e in res["errors"]]
    elapsed = max(res["elapsed"] for res in results)
    latencies = [r[1] for r in records]
    by_label: dict[str, list[float]] = defaultdict(list)
    for label, seconds, _status in records:
        by_label[label].append(seconds)
    units = sum(res["units"] for res in results)
    return {
        "kind": kind,
        "users": users,
        "offered_rate": rate,
        "elapsed_s": elapsed,
        "wall_s": wall,
        "requests": len(records),
        "units": units,
        "errors": len(errors),
        "error_examples": errors[:5],
        "rps": len(records) / elapsed,
        "units_per_s": units / elapsed,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "server_cpu_ms_per_request": 1000 * server_cpu / max(1, len(records)),
        "server_cpu_share": server_cpu / elapsed / (os.cpu_count() or 1),
        "loadgen_cpu_share": sum(r["cpu"] for r in results) / elapsed / (os.cpu_count() or 1),
        "by_label": {
            label: {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95)}
            for label, v in by_label.items()
        },
    }


def show(title: str, r: dict[str, Any]) -> None:
    unit = "wizards" if r["kind"] == "wizard" else "requests"
    offered = f", offered {r['offered_rate']:.0f} req/s" if r["offered_rate"] else ""
    print(
        f"  {title:<5} {r['users']:>2} users{offered}: {r['units_per_s']:8.1f} {unit}/s, "
        f"{r['rps']:7.1f} req/s, p50 {r['p50'] * 1000:6.1f} ms, p95 {r['p95'] * 1000:6.1f} ms, "
        f"p99 {r['p99'] * 1000:6.1f} ms, errors {r['errors']}, {r['requests']} requests in "
        f"{r['elapsed_s']:.1f} s; server CPU {r['server_cpu_ms_per_request']:.2f} ms/req "
        f"({r['server_cpu_share']:.0%} of the cores), load generator {r['loadgen_cpu_share']:.0%}"
    )
    for e in r["error_examples"][:3]:
        print(f"        error: {e}")


def bench_app(
    pool: ProcessPoolExecutor,
    kind: str,
    url: str,
    server_pids: list[int],
    args: argparse.Namespace,
    seed: int,
) -> dict[str, Any]:
    """Warm up, measure the peak, then the latency at half the peak request rate."""
    run_phase(
        pool,
        kind,
        url,
        server_pids,
        users=2,
        procs=2,
        duration=2,
        max_units=6 if kind == "wizard" else 200,
        rate=0,
        seed=seed,
    )
    units = args.max_wizards if kind == "wizard" else args.max_wizards * 15
    peak = run_phase(
        pool,
        kind,
        url,
        server_pids,
        users=args.users,
        procs=args.procs,
        duration=args.duration,
        max_units=units,
        rate=0,
        seed=seed + 100_000,
    )
    show("peak", peak)
    half = run_phase(
        pool,
        kind,
        url,
        server_pids,
        users=args.users,
        procs=args.procs,
        duration=args.duration,
        max_units=units,
        rate=peak["rps"] / 2,
        seed=seed + 200_000,
    )
    show("half", half)
    return {"peak": peak, "half": half}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: short phases, SQLite only"
    )
    parser.add_argument(
        "--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--max-wizards", type=int, default=5000, help="cap per phase")
    parser.add_argument("--users", type=int, default=8, help="simulated people at once")
    parser.add_argument("--procs", type=int, default=2, help="load processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (both apps)")
    parser.add_argument(
        "--hcp-rate",
        type=float,
        default=None,
        help="HCP_RATE_LIMIT_PER_SECOND for the web app (default: the product's)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.max_wizards, args.db = 3.0, 40, "sqlite"
    info = header("Wizard throughput (bench/wizard.py)")
    settings: dict[str, Any] = {"RATELIMIT_ENABLED": False, "SPAM_MIN_SECONDS": 0}
    if args.hcp_rate is not None:
        settings["HCP_RATE_LIMIT_PER_SECOND"] = args.hcp_rate
    print(
        f"gunicorn: {args.workers} sync workers per app; load: {args.procs} processes, "
        f"{args.users} people at once; {args.duration:g} s per phase; settings {settings}"
    )
    print(
        "SPAM_MIN_SECONDS=0 so that each submit is a real pending submission and is enqueued "
        "(no worker runs: jobs wait in Redis).\n"
    )
    out: dict[str, Any] = {"machine": info, "args": vars(args), "settings": settings}
    seed = int(time.time()) % 1000 * 10_000_000
    ctx = get_context("spawn")
    with Procs() as procs, ProcessPoolExecutor(max_workers=args.procs, mp_context=ctx) as pool:
        print("bare Flask (bench/bare_app.py):")
        bare_url, bare = start_gunicorn(
            procs,
            "bench.bare_app:app",
            app_env("sqlite://", "redis://x", "http://x"),
            workers=args.workers,
            name="bare",
        )
        out["bare"] = bench_app(pool, "bare", bare_url, [bare.pid, *children(bare.pid)], args, seed)
        procs.stop(bare)
        redis_url = start_redis(procs)
        hcp_url = start_sandbox(procs)
        for backend in [b.strip() for b in args.db.split(",") if b.strip()]:
            if backend == "postgresql":
                db_url, why = postgres_url()
                if db_url is None:
                    print(f"\nPostgreSQL: skipped: {why}")
                    out["postgresql"] = {"skipped": why}
                    continue
            else:
                db_url = sqlite_url(procs)
            print(f"\nhcpform on {backend}:")
            env = app_env(db_url, redis_url, hcp_url, **settings)
            init_db(env)
            url, gproc = start_gunicorn(
                procs, "wsgi:app", env, workers=args.workers, name=f"web-{backend}"
            )
            pids = [gproc.pid, *children(gproc.pid)]
            seed += 10_000_000
            try:
                result = bench_app(pool, "wizard", url, pids, args, seed)
            finally:
                procs.stop(gproc)
            out[backend] = result
            summarise(backend, result, out["bare"])
    out["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save_results("wizard", out)
    return 0


def summarise(backend: str, result: dict[str, Any], bare: dict[str, Any]) -> None:
    peak, half = result["peak"], result["half"]
    ratio = peak["rps"] / bare["peak"]["rps"]
    p95_ratio = half["p95"] / bare["half"]["p95"]
    cpu_ratio = bare["peak"]["server_cpu_ms_per_request"] / peak["server_cpu_ms_per_request"]
    print(
        "  per request (peak): "
        + ", ".join(
            f"{label} {v['p50'] * 1000:.1f}/{v['p95'] * 1000:.1f}"
            for label, v in peak["by_label"].items()
        )
        + " ms (p50/p95)"
    )
    print(
        f"  => step requests/s vs bare: {peak['rps']:.0f} / {bare['peak']['rps']:.0f} = "
        f"{ratio:.2f} (goal >= 0.5: {'MET' if ratio >= 0.5 else 'NOT MET'})"
    )
    print(
        f"  => p95 at half load vs bare p95 at half load: {half['p95'] * 1000:.1f} / "
        f"{bare['half']['p95'] * 1000:.1f} ms = {p95_ratio:.1f}x "
        f"(goal <= 3x: {'MET' if p95_ratio <= 3 else 'NOT MET'})"
    )
    print(
        f"  => server CPU per request, bare / step: {cpu_ratio:.2f} (the throughput ratio "
        "if the server had the cores to itself)"
    )
    result["ratios"] = {"rps": ratio, "p95_half": p95_ratio, "server_cpu": cpu_ratio}


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
