"""Size and memory: bytes per wizard step, and peak RSS of the web and worker processes.

    .venv/bin/python bench/size.py [--quick] [--db postgresql] [--checkpoints 1000,5000]
    .venv/bin/python bench/size.py --zips    # only: one web process, the app and a few ZIPs

Starts a redis-server, the HCP sandbox, gunicorn (2 sync workers) on hcpform and one
`flask --app hcpform worker`. First walks one wizard and weighs each page: its HTML and the CSS
and JS it links (as sent, and gzipped as a compressing proxy would send them). Then load
processes walk complete wizards until each checkpoint's number of submissions is reached, the
worker syncs them all to the sandbox, and the RSS of every gunicorn worker, of the worker parent
and of its work-horses (sampled every 50 ms while they live) is read from /proc.

Goal (issue 7): <= 100 MB each, and no growth between the checkpoints.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    STEPS,
    Procs,
    app_env,
    children,
    choose_db_url,
    flask_cmd,
    header,
    init_db,
    memory_kb,
    page_form,
    person,
    sampling,
    save_results,
    sqlite_url,
    start_gunicorn,
    start_redis,
    start_sandbox,
)
from bench.wizard import load_process  # noqa: E402

ASSET_RE = re.compile(r'<(?:link[^>]*rel="stylesheet"[^>]*href|script[^>]*src)="([^"]+)"')
MB = 1024 * 1024


def weigh_steps(url: str) -> list[dict[str, Any]]:
    """Walk one wizard; return each page's bytes (HTML, CSS, JS; raw and gzipped)."""
    import requests

    session = requests.Session()
    pages: list[tuple[str, str, str]] = []  # (label, page url, html)
    answers = person(1, run="size")
    response = session.get(url + "/f/service-request/")
    label = "1 location"
    for i, step in enumerate(STEPS):
        pages.append((label, response.url, response.text))
        action, fields = page_form(response.text)
        response = session.post(urljoin(response.url, action), data={**fields, **answers[step]})
        label = f"{i + 2} {STEPS[i + 1]}" if i + 1 < len(STEPS) else "review"
    pages.append(("review", response.url, response.text))
    action, fields = page_form(response.text)
    response = session.post(urljoin(response.url, action), data=fields)
    pages.append(("done", response.url, response.text))
    cache: dict[str, tuple[bytes, str]] = {}
    out = []
    for label, page_url, text in pages:
        row = {
            "page": label,
            "html": len(text.encode()),
            "html_gz": len(gzip.compress(text.encode())),
            "css": 0,
            "css_gz": 0,
            "js": 0,
            "js_gz": 0,
            "assets": [],
        }
        for ref in ASSET_RE.findall(text):
            asset_url = urljoin(page_url, ref.replace("&amp;", "&"))
            if asset_url not in cache:
                r = session.get(asset_url)
                cache[asset_url] = (r.content, r.headers.get("Cache-Control", ""))
            body, cache_control = cache[asset_url]
            kind = "css" if ".css" in asset_url else "js"
            row[kind] += len(body)
            row[f"{kind}_gz"] += len(gzip.compress(body))
            row["assets"].append(
                {
                    "url": asset_url.replace(url, ""),
                    "bytes": len(body),
                    "cache_control": cache_control,
                }
            )
        row["total"] = row["html"] + row["css"] + row["js"]
        row["total_gz"] = row["html_gz"] + row["css_gz"] + row["js_gz"]
        out.append(row)
    print(f"  {'page':<16} {'HTML':>7} {'CSS':>7} {'JS':>7} {'total':>7}   gzipped: HTML / total")
    for r in out:
        print(
            f"  {r['page']:<16} {r['html']:>7,} {r['css']:>7,} {r['js']:>7,} {r['total']:>7,}   "
            f"{r['html_gz']:>6,} / {r['total_gz']:>6,}"
        )
    assets = {a["url"]: a for r in out for a in r["assets"]}
    for a in assets.values():
        print(
            f"    asset {a['url']}: {a['bytes']:,} bytes, "
            f"Cache-Control: {a['cache_control'] or '(none)'}"
        )
    return out


def synced_count() -> int:
    from sqlalchemy import func, select

    from hcpform.extensions import db
    from hcpform.models import Submission

    db.session.rollback()
    n = db.session.scalar(
        select(func.count()).select_from(Submission).where(Submission.status == "synced")
    )
    db.session.rollback()
    return n or 0


def total_count() -> int:
    from sqlalchemy import func, select

    from hcpform.extensions import db
    from hcpform.models import Submission

    db.session.rollback()
    n = db.session.scalar(select(func.count()).select_from(Submission))
    db.session.rollback()
    return n or 0


def snapshot(
    web_pids: list[int], worker_pid: int, peaks: dict[int, dict[str, int]]
) -> dict[str, Any]:
    web = {pid: memory_kb(pid) for pid in web_pids}
    parent = memory_kb(worker_pid)
    horses = [m for pid, m in peaks.items() if pid not in web_pids and pid != worker_pid]
    return {
        "web_rss_mb": [m.get("VmRSS", 0) / 1024 for m in web.values()],
        "web_peak_mb": [m.get("VmHWM", 0) / 1024 for m in web.values()],
        "worker_rss_mb": parent.get("VmRSS", 0) / 1024,
        "worker_peak_mb": parent.get("VmHWM", 0) / 1024,
        "horse_peak_mb": max((m["VmHWM"] for m in horses), default=0) / 1024,
        "horses_seen": len(horses),
    }


# What a fresh web process does: import the app as gunicorn does, then validate a few ZIPs the
# way the wizard and the admin do. It prints its RSS (KiB) at each stage as one JSON line.
ZIP_PROBE = """
import json, sys

def rss():
    with open("/proc/self/status") as fh:
        return {l.split(":")[0]: int(l.split()[1]) for l in fh if l.startswith(("VmRSS", "VmHWM"))}

seen = {"python": rss()}
from wsgi import app
seen["app imported"] = rss()
from hcpform import validation, zipgeo
with app.app_context():
    for typed in ("60614", "94103-1234", "10001", "99999", "\uff19\uff14\uff11\uff10\uff13"):
        try:
            validation.parse_zip(typed)
        except validation.Invalid:
            pass
    zipgeo.nearest("60614", ["60601", "94103", "10001"])
    zipgeo.place("94103")
seen["5 ZIPs validated"] = rss()
print(json.dumps(seen))
"""


def weigh_zips(env: dict[str, str]) -> dict[str, dict[str, int]]:
    """Return a fresh web process's RSS after Python, the app, and validating a few ZIPs."""
    result = subprocess.run(
        [sys.executable, "-c", ZIP_PROBE],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the ZIP probe failed:\n{result.stderr[-3000:]}")
    seen: dict[str, dict[str, int]] = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


def zips_only(info: dict[str, Any]) -> int:
    """`--zips`: one web process's RSS after importing the app and validating a few ZIPs."""
    out: dict[str, Any] = {"machine": info, "args": {"zips": True}, "runs": []}
    with Procs() as procs:
        env = app_env(sqlite_url(procs), start_redis(procs), "http://127.0.0.1:9")
        init_db(env)
        for _ in range(3):
            out["runs"].append(weigh_zips(env))
    print("RSS of a fresh web process (median of 3 runs), MB:")
    stages = list(out["runs"][0])
    for stage in stages:
        values = sorted(run[stage]["VmRSS"] / 1024 for run in out["runs"])
        print(f"  {stage:<18} {values[1]:6.1f}")
    last = sorted(run[stages[-1]]["VmHWM"] / 1024 for run in out["runs"])[1]
    zips = sorted(
        (run[stages[-1]]["VmRSS"] - run[stages[-2]]["VmRSS"]) / 1024 for run in out["runs"]
    )[1]
    print(
        f"  => peak RSS {last:.1f} MB (goal for a web process <= 100 MB: "
        f"{'MET' if last <= 100 else 'NOT MET'}); the ZIPs added {zips:+.1f} MB"
    )
    save_results("size-zips", out)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: checkpoints 50 and 150")
    parser.add_argument("--db", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--checkpoints", default="1000,5000")
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument(
        "--zips", action="store_true", help="only a web process's RSS after a few ZIP checks"
    )
    args = parser.parse_args()
    if args.quick:
        args.checkpoints = "50,150"
    checkpoints = [int(x) for x in args.checkpoints.split(",")]
    info = header("Size and memory (bench/size.py)")
    if args.zips:
        return zips_only(info)
    out: dict[str, Any] = {"machine": info, "args": vars(args)}
    with Procs() as procs:
        db_url, _why = choose_db_url(args.db, procs)
        redis_url = start_redis(procs)
        hcp_url = start_sandbox(procs)
        settings = {
            "RATELIMIT_ENABLED": False,
            "SPAM_MIN_SECONDS": 0,
            "HCP_RATE_LIMIT_PER_SECOND": 1000,
        }
        env = app_env(db_url, redis_url, hcp_url, **settings)
        init_db(env)
        url, gunicorn = start_gunicorn(procs, "wsgi:app", env, workers=2, name="web")
        worker = procs.start("worker", flask_cmd("worker"), env=env)
        print(
            f"database: {args.db}; gunicorn 2 sync workers; 1 flask worker; settings {settings}\n"
        )
        print("bytes per wizard step (first visit: the page and every CSS/JS file it links):")
        out["steps"] = weigh_steps(url)
        for key, value in env.items():
            os.environ[key] = value
        from hcpform import create_app

        app = create_app()
        web_pids = children(gunicorn.pid)
        print(f"\nmemory (gunicorn workers {web_pids}, flask worker {worker.pid}):")
        before = snapshot(web_pids, worker.pid, {})
        print(
            f"  at start: web RSS {', '.join(f'{x:.1f}' for x in before['web_rss_mb'])} MB; "
            f"worker parent RSS {before['worker_rss_mb']:.1f} MB"
        )
        out["start"] = before
        out["checkpoints"] = []
        seed = int(time.time()) % 1000 * 10_000_000
        ctx = get_context("spawn")
        with (
            app.app_context(),
            ProcessPoolExecutor(max_workers=args.procs, mp_context=ctx) as pool,
            sampling(lambda: [*web_pids, worker.pid, *children(worker.pid)]) as peaks,
        ):
            made = total_count()
            for k in checkpoints:
                t0 = time.monotonic()
                while made < k:
                    todo = k - made
                    per = [
                        todo // args.procs + (1 if i < todo % args.procs else 0)
                        for i in range(args.procs)
                    ]
                    futures = [
                        pool.submit(
                            load_process,
                            "wizard",
                            url,
                            max(1, args.users // args.procs),
                            3600,
                            n,
                            0,
                            seed + i * 1_000_000 + made,
                        )
                        for i, n in enumerate(per)
                        if n
                    ]
                    errors = sum(len(f.result()["errors"]) for f in futures)
                    made = total_count()
                    if errors:
                        print(f"  ({errors} wizards failed; going on)")
                web_s = time.monotonic() - t0
                deadline = time.monotonic() + 300
                while synced_count() < k and time.monotonic() < deadline:
                    time.sleep(0.5)
                synced = synced_count()
                snap = snapshot(web_pids, worker.pid, peaks)
                snap.update(
                    submissions=made,
                    synced=synced,
                    seconds=time.monotonic() - t0,
                    web_seconds=web_s,
                )
                out["checkpoints"].append(snap)
                print(
                    f"  after {made:,} submissions ({synced:,} synced, {snap['seconds']:.0f} s): "
                    f"web RSS {', '.join(f'{x:.1f}' for x in snap['web_rss_mb'])} MB "
                    f"(peak {', '.join(f'{x:.1f}' for x in snap['web_peak_mb'])}); "
                    "worker parent RSS "
                    f"{snap['worker_rss_mb']:.1f} MB (peak {snap['worker_peak_mb']:.1f}); "
                    f"work-horse peak {snap['horse_peak_mb']:.1f} MB "
                    f"({snap['horses_seen']} horses sampled)",
                    flush=True,
                )
        if worker.poll() is not None:
            print("worker died:\n" + procs.log_tail("worker"))
        from hcpform.extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        cps = out["checkpoints"]
        if len(cps) >= 2:
            a, b = cps[0], cps[-1]
            web_growth = max(b["web_rss_mb"]) - max(a["web_rss_mb"])
            worker_growth = b["worker_rss_mb"] - a["worker_rss_mb"]
            biggest = max(max(b["web_peak_mb"]), b["worker_peak_mb"], b["horse_peak_mb"])
            print(
                f"  => largest peak RSS {biggest:.1f} MB "
                f"(goal <= 100 MB: {'MET' if biggest <= 100 else 'NOT MET'}); "
                f"growth from {a['submissions']:,} to {b['submissions']:,}: "
                f"web {web_growth:+.1f} MB, "
                f"worker {worker_growth:+.1f} MB, "
                f"horse peak {b['horse_peak_mb'] - a['horse_peak_mb']:+.1f} MB"
            )
            out["growth"] = {
                "web_mb": web_growth,
                "worker_mb": worker_growth,
                "biggest_peak_mb": biggest,
            }
    save_results("size", out)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
