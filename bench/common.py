"""Shared parts of the benchmarks: the machine header, the processes they start, the wizard walk.

Every process a benchmark starts goes through `Procs`, which ends each one (its whole process
group) on exit, on an exception, on Ctrl-C and on SIGTERM. Only 127.0.0.1 is ever a target.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "hcpform_bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# -- the header every script prints -----------------------------------------------------------


def _version_of(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "missing"
    return out.strip().splitlines()[0] if out.strip() else "?"


def machine() -> dict[str, Any]:
    """Return what a figure depends on: cores, memory, CPU, load, versions, commit."""
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in ("flask", "sqlalchemy", "gunicorn", "rq", "redis", "psycopg", "requests"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "missing"
    versions["python"] = platform.python_version()
    versions["redis-server"] = _version_of(["redis-server", "--version"]).split(" sha=")[0]
    versions["postgres"] = _version_of(["postgres", "--version"])
    commit = _version_of(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "hcpform", "templates", "static"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "loadavg": os.getloadavg(),
        "kernel": platform.release(),
        "commit": commit + (" + uncommitted product changes" if dirty else ""),
        "versions": versions,
    }


def header(title: str) -> dict[str, Any]:
    """Print the command line, the machine and the date; return them for the results file."""
    info = machine()
    info["command"] = shlex.join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    print(f"# {title}")
    print(f"command : {info['command']}")
    print(f"date    : {info['date']}")
    print(f"machine : nproc={info['nproc']}, memory={info['memory_gib']} GiB, cpu={info['cpu']}")
    la = ", ".join(f"{x:.2f}" for x in info["loadavg"])
    print(f"load    : {la} (1, 5, 15 min) at start; the machine is shared")
    print(f"commit  : {info['commit']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(flush=True)
    return info


def save_results(name: str, data: dict[str, Any]) -> Path:
    """Write the figures as JSON under bench/results/ (git-ignored) and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    print(f"\nresults written to {path.relative_to(ROOT)}")
    return path


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Start processes in their own groups; end them all, whatever happens."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="hcpform-bench-"))
        self._logs: list[Any] = []

    def __enter__(self) -> Procs:
        def on_term(signum: int, _frame: Any) -> None:
            raise SystemExit(f"stopped by signal {signum}")

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGHUP, on_term)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        for fh in self._logs:
            fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (closed in __exit__)
        self._logs.append(log)
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=str(cwd or ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.tmp / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen, *, timeout: float = 15) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group (a horse)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(timeout=5)
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def stop_all(self) -> None:
        for _name, proc in reversed(list(self.procs)):
            self.stop(proc, timeout=10)


def wait_http(url: str, *, timeout: float = 30, proc: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers (any status); fail early when `proc` has died."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            requests.get(url, timeout=2, allow_redirects=False)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def start_redis(procs: Procs) -> str:
    """Start a throwaway redis-server on a free port; return its URL."""
    import redis

    binary = shutil.which("redis-server")
    if not binary:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    procs.start(
        "redis",
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(procs.tmp),
            "--maxmemory-policy",
            "noeviction",
        ],
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            return url
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start_sandbox(procs: Procs, *, latency_ms: int = 0) -> str:
    """Start the HCP sandbox (its own process, threaded server); return its URL."""
    from hcpform.formdefs import TEMPLATE_SERVICE_TYPES  # job types the template maps by name

    job_types = [arg for name in TEMPLATE_SERVICE_TYPES for arg in ("--job-type", name)]
    port = free_port()
    proc = procs.start(
        "sandbox",
        [PY, "-m", "hcpform_sandbox", "--port", str(port), "--latency-ms", str(latency_ms)]
        + job_types,
        env=base_env(),
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/_sandbox/faults", proc=proc)
    import requests

    # No online booking windows: step 6 offers the form's own windows as preferences, which
    # the scripted walk (`person`) answers; thousands of walkers would use up real windows.
    requests.post(f"{url}/_sandbox/schedule", json={"booking_windows": False}, timeout=10)
    return url


def base_env() -> dict[str, str]:
    """The environment without any hcpform setting the caller's shell may carry."""
    drop = {"DATABASE_URL", "REDIS_URL", "HCP_API_BASE_URL", "HCP_API_KEY", "SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCPFORM_") and k not in drop}
    env["PYTHONPATH"] = str(ROOT)
    return env


def app_env(database_url: str, redis_url: str, hcp_url: str, **settings: Any) -> dict[str, str]:
    """Return the environment of a production-like web or worker process."""
    from cryptography.fernet import Fernet

    env = base_env()
    env.update(
        SECRET_KEY="bench-secret-" + "x" * 32,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        HCP_API_BASE_URL=hcp_url,
        HCP_API_KEY="sandbox-key",
        HCPFORM_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    for key, value in settings.items():
        env[f"HCPFORM_{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def flask_cmd(*args: str) -> list[str]:
    return [PY, "-m", "flask", "--app", "hcpform", *args]


def init_db(env: dict[str, str]) -> None:
    """Run `flask --app hcpform init-db` against the bench database."""
    result = subprocess.run(
        flask_cmd("init-db"), env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"init-db failed:\n{result.stdout}\n{result.stderr}")


def start_gunicorn(
    procs: Procs,
    app_spec: str,
    env: dict[str, str],
    *,
    workers: int = 2,
    name: str = "gunicorn",
    cwd: Path | None = None,
) -> tuple[str, subprocess.Popen]:
    """Start gunicorn (sync workers, as deployed) on a free port; return its URL and process."""
    port = free_port()
    proc = procs.start(
        name,
        [
            PY,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--backlog",
            "2048",
            app_spec,
        ],
        env=env,
        cwd=cwd,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/", proc=proc, timeout=60)
    # Wait for every worker to be up, so the first measured requests do not pay for a boot.
    deadline = time.monotonic() + 30
    while len(children(proc.pid)) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    return url, proc


# -- PostgreSQL -------------------------------------------------------------------------------


def postgres_url(dbname: str = PG_BENCH_DB) -> tuple[str | None, str]:
    """Return (URL of a fresh, empty bench database, "") or (None, why it is skipped)."""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"PostgreSQL not reachable at 127.0.0.1:5432 as postgres ({first})"
    url = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url, ""


def sqlite_url(procs: Procs) -> str:
    return f"sqlite:///{procs.tmp / 'bench.db'}"


# -- /proc ------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Return the direct children of a process."""
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found.extend(int(x) for x in fh.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds a process has used (0 when gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM (peak RSS) of a process in KiB ({} when gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


# -- figures ----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (nearest rank) of values, or NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(p / 100 * len(ordered) + 0.5))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# -- the wizard, as a browser walks it ---------------------------------------------------------

TOKEN_RE = re.compile(
    r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"'
)
ACTION_RE = re.compile(r'<form[^>]*action="([^"]+)"')
HIDDEN_RE = re.compile(r'<input[^>]*type="hidden"[^>]*>')
NAME_RE = re.compile(r'name="([^"]*)"')
VALUE_RE = re.compile(r'value="([^"]*)"')
REFERENCE_RE = re.compile(r'data-reference="(HCP-[0-9A-Z]{5})"')
STEPS = ("location", "service", "description", "contact", "classification", "schedule")
SERVICES = ("Plumbing repair", "Drain cleaning", "Water heater", "HVAC repair", "Electrical")


def next_open_day(days_ahead: int = 3) -> str:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    day = datetime.now(ZoneInfo("America/Chicago")).date() + timedelta(days=days_ahead)
    while day.weekday() == 6:  # the template form is closed on Sunday
        day += timedelta(days=1)
    return day.isoformat()


def phone_for(n: int) -> str:
    """Return a distinct, valid US number for person n (Chicago exchanges 2xx-9xx)."""
    exchange = 200 + (n // 10000) % 700
    return f"(312) {exchange:03d}-{n % 10000:04d}"


def person(n: int, *, run: str = "") -> dict[str, dict[str, str]]:
    """Return a complete set of answers for person n: a new customer unless n repeats."""
    return {
        "location": {"zip": "60614"},
        "service": {"booking_type": SERVICES[n % len(SERVICES)], "urgency": "soon"},
        "description": {
            "booking_reason": f"Kitchen sink drains slowly ({n}).",
            "special_instructions": "",
        },
        "contact": {
            "customer_phone": phone_for(n),
            "customer_fname": "Bench",
            "customer_lname": f"Person{n}",
            "customer_email": f"bench{run}.{n}@example.com",
            "street": f"{100 + n % 9000} N Clark St",
            "street_line_2": "",
            "city": "Chicago",
            "state": "IL",
            "zip": "60614",
            "country": "US",
        },
        "classification": {
            "isFirstTimeClient": "true",
            "customerType": "residential",
            "company": "",
        },
        "schedule": {"booking_date": next_open_day(), "booking_time": "08-11", "terms": "y"},
    }


def page_form(page: str) -> tuple[str, dict[str, str]]:
    """Return the form's action and what a browser would post besides the answers."""
    action = ACTION_RE.search(page)
    if not action:
        raise AssertionError("no form in the page: " + page[:300])
    fields: dict[str, str] = {}
    for tag in HIDDEN_RE.findall(page):
        name = NAME_RE.search(tag)
        value = VALUE_RE.search(tag)
        if name:
            fields[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
    token = TOKEN_RE.search(page)
    if token:
        fields["csrf_token"] = html.unescape(token.group(1) or token.group(2))
    return html.unescape(action.group(1)), fields


class Walk:
    """One simulated person walking the whole wizard with a requests.Session, timing each request.

    `pace` is called before every request (it may sleep, to hold an offered load); `record`
    gets (label, seconds, status) for every request. Redirects are followed by hand so that each
    GET and POST is one timed request, as a browser makes them.
    """

    def __init__(self, base: str, session: Any, record: Any, pace: Any = None) -> None:
        self.base = base.rstrip("/")
        self.session = session
        self.record = record
        self.pace = pace or (lambda: None)

    def _send(self, label: str, method: str, url: str, data: dict[str, str] | None = None) -> Any:
        self.pace()
        if url.startswith("/"):
            url = self.base + url
        started = time.perf_counter()
        response = self.session.request(method, url, data=data, allow_redirects=False, timeout=30)
        self.record(label, time.perf_counter() - started, response.status_code)
        return response

    def _get_following(self, label: str, url: str) -> Any:
        response = self._send(label, "GET", url)
        hops = 0
        while response.status_code in (301, 302, 303) and hops < 5:
            response = self._send(label, "GET", response.headers["Location"])
            hops += 1
        return response

    def run(self, answers: dict[str, dict[str, str]], *, path: str = "/f/service-request/") -> str:
        """Walk every step's GET and POST, the review and the submit; return the reference."""
        response = self._get_following("GET location", path)
        for step in STEPS:
            if response.status_code != 200:
                raise AssertionError(f"GET {step}: {response.status_code}")
            action, fields = page_form(response.text)
            posted = self._send(f"POST {step}", "POST", action, {**fields, **answers[step]})
            if posted.status_code != 303 and posted.status_code != 302:
                raise AssertionError(f"POST {step}: {posted.status_code} {posted.text[:500]}")
            nxt = STEPS[STEPS.index(step) + 1] if step != STEPS[-1] else "review"
            response = self._get_following(f"GET {nxt}", posted.headers["Location"])
        if "Check your answers" not in response.text:
            raise AssertionError("no review page")
        action, fields = page_form(response.text)
        posted = self._send("POST review (submit)", "POST", action, fields)
        if posted.status_code not in (302, 303):
            raise AssertionError(f"submit: {posted.status_code}")
        done = self._get_following("GET done", posted.headers["Location"])
        ref = REFERENCE_RE.search(done.text)
        if not ref:
            raise AssertionError("no reference on the done page")
        return ref.group(1)


@contextmanager
def sampling(pids_of: Any, interval: float = 0.05) -> Iterator[dict[int, dict[str, int]]]:
    """Sample VmRSS/VmHWM of the processes `pids_of()` names, keeping each one's maximum."""
    peaks: dict[int, dict[str, int]] = {}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for pid in pids_of():
                mem = memory_kb(pid)
                if mem:
                    seen = peaks.setdefault(pid, {"VmRSS": 0, "VmHWM": 0})
                    seen["VmRSS"] = max(seen["VmRSS"], mem.get("VmRSS", 0))
                    seen["VmHWM"] = max(seen["VmHWM"], mem.get("VmHWM", 0))
            stop.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join(timeout=5)


def draft_of(url: str) -> str | None:
    return (parse_qs(urlparse(url).query).get("d") or [None])[0]


def choose_db_url(kind: str, procs: Any) -> tuple[str, str | None]:
    """Return (database URL, why PostgreSQL was skipped or None) for --db postgresql|sqlite."""
    if kind == "postgresql":
        db_url, why = postgres_url()
        if db_url is not None:
            return db_url, None
        print(f"PostgreSQL skipped: {why}; using SQLite")
        return sqlite_url(procs), why
    return sqlite_url(procs), None


def start_services(
    procs: Procs, *, db: str, latency_ms: int, out: dict[str, Any]
) -> tuple[str, str, str]:
    """Start the database (noting a fallback in `out`), redis-server and the sandbox.

    Returns:
        The database URL, the Redis URL and the sandbox's URL.
    """
    db_url, why = choose_db_url(db, procs)
    if why:
        out["db_fallback"] = why
    return db_url, start_redis(procs), start_sandbox(procs, latency_ms=latency_ms)
