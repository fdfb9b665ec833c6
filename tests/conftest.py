"""Fixtures on real parts: a redis-server, SQLite or PostgreSQL, the HCP sandbox over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
ENCRYPTION_KEY = Fernet.generate_key().decode()
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server on a free port (or the one REDIS_URL names), stoppable for outages."""

    def __init__(self) -> None:
        self.external = os.environ.get("REDIS_URL")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hcpform-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.external or f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.external:
            return
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Start a real redis-server for the session (or use REDIS_URL)."""
    if not os.environ.get("REDIS_URL") and not shutil.which("redis-server"):
        pytest.fail(
            "redis-server is not installed: scripts/test installs it (apt-get install redis-server)"
        )
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def hcp_sandbox() -> Iterator[Any]:
    """The HCP sandbox served over real HTTP on a free localhost port."""
    from hcpform.formdefs import TEMPLATE_SERVICE_TYPES
    from hcpform_sandbox import SandboxServer

    server = SandboxServer(port=free_port(), job_types=TEMPLATE_SERVICE_TYPES)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(hcp_sandbox: Any) -> Iterator[Any]:
    """The sandbox, reset to its seed data with no faults, for one test.

    Afterwards every request our code sent must have matched HCP's OpenAPI definition: the
    sandbox checks each one against housecall.v1.yaml and logs what violated it.
    """
    requests.post(f"{hcp_sandbox.url}/_sandbox/reset", timeout=5)
    requests.delete(f"{hcp_sandbox.url}/_sandbox/faults", timeout=5)
    requests.delete(f"{hcp_sandbox.url}/_sandbox/requests", timeout=5)
    requests.post(f"{hcp_sandbox.url}/_sandbox/keys", json={"valid": ["sandbox-key"]}, timeout=5)
    yield hcp_sandbox
    bad = requests.get(f"{hcp_sandbox.url}/_sandbox/requests?violations=1", timeout=5).json()
    assert bad["count"] == 0, f"requests that violate housecall.v1.yaml: {bad['requests'][:3]}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Return a PostgreSQL database for this test run, or skip saying why.

    TEST_DATABASE_URL is used as given; otherwise a database of this run's own is made on the
    local server (so two runs at once don't share one) and dropped at the end.
    """
    import psycopg

    given = os.environ.get("TEST_DATABASE_URL")
    url = given or f"{PG_SERVER}/hcpform_test_{os.getpid()}"
    server, name = url.rsplit("/", 1)
    try:
        with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=3) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            exists = conn.execute(query, (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(
            f"PostgreSQL not reachable at {server.split('@')[-1]} ({exc.__class__.__name__}); "
            "set TEST_DATABASE_URL to run the PostgreSQL tests"
        )
    yield url
    if not given:
        with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests marked both_dbs once on SQLite and once on PostgreSQL."""
    if "db_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_dbs"):
        metafunc.parametrize("db_backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    """Which database the test's app uses (sqlite unless marked both_dbs)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for one test."""
    if db_backend == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url = request.getfixturevalue("postgres_url")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


@pytest.fixture
def settings(
    database_url: str, redis_server: RedisServer, tmp_path: Path, sandbox: Any
) -> dict[str, Any]:
    """The settings of one test's app; worker subprocesses get the same through the environment."""
    return {
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "HCP_API_BASE_URL": "sandbox",
        "HCP_SANDBOX_URL": sandbox.url,
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "SPAM_MIN_SECONDS": 0,
        "RATELIMIT_ENABLED": False,
        "SYNC_RETRY_BASE_SECONDS": 0.2,
        "SYNC_RETRY_CAP_SECONDS": 2,
        "SWEEP_INTERVAL_SECONDS": 2,
        "SWEEP_PENDING_GRACE_SECONDS": 2,
        "HCP_RATE_LIMIT_PER_SECOND": 50,
        "HCP_READ_TIMEOUT": 2.0,
        "HCP_CONNECT_TIMEOUT": 0.5,
        "SYNC_RATE_LIMIT_WAIT_SECONDS": 0.5,
        "SYNC_JOB_TIMEOUT": 30,  # check_config: 10 calls x (0.5 + 0.5 + 2.0) s
        "SYNC_LEASE_SECONDS": 35,  # and more than the job timeout plus one call
    }


@pytest.fixture
def app(settings: dict[str, Any], tmp_path: Path, redis_server: RedisServer) -> Iterator[Any]:
    """A fresh app on a fresh database with the default form, and an empty Redis."""
    from hcpform import create_app
    from hcpform.database import ensure_default_form
    from hcpform.extensions import db

    redis.Redis.from_url(redis_server.url).flushdb()
    app = create_app({"TESTING": True, **settings}, instance_path=str(tmp_path / "instance"))
    with app.app_context():
        db.create_all()
        ensure_default_form()
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def app_ctx(app: Any) -> Iterator[Any]:
    """An app context for tests that use the database directly."""
    with app.app_context():
        yield app


def worker_env(settings: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Return the environment that gives a `flask worker` subprocess the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCPFORM_")}
    env["SECRET_KEY"] = settings["SECRET_KEY"]
    env["DATABASE_URL"] = settings["DATABASE_URL"]
    env["REDIS_URL"] = settings["REDIS_URL"]
    env["HCP_API_BASE_URL"] = settings["HCP_API_BASE_URL"]
    env["HCPFORM_ENCRYPTION_KEY"] = settings["ENCRYPTION_KEY"]
    for key, value in settings.items():
        if key not in (
            "SECRET_KEY",
            "DATABASE_URL",
            "REDIS_URL",
            "HCP_API_BASE_URL",
            "ENCRYPTION_KEY",
        ):
            env[f"HCPFORM_{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def start_worker(settings: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    """Start real `flask --app hcpform worker` subprocesses; all are killed after the test."""
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "hcpform", "worker", *args],
            env=worker_env(settings, tmp_path),
            cwd=str(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a test can kill parent and horse
        )
        procs.append(proc)
        return proc

    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115
    yield start
    for proc in procs:
        if proc.poll() is None:
            kill_tree(proc)
        proc.wait(timeout=10)
    log.close()


def process_tree(root: int) -> list[int]:
    """Return `root` and every process below it (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def kill_tree(proc: subprocess.Popen) -> int:
    """SIGKILL a `flask worker`, its work-horse and its scheduler; return how many died.

    Killing the worker's process group is not enough: RQ puts each work-horse in a group of its
    own (os.setpgrp in fork_work_horse), so the horse would live on, finish its job and hide
    what a real crash (machine loss, the OOM killer on the cgroup) does.
    """
    try:
        os.kill(proc.pid, signal.SIGSTOP)  # no new horse is forked while we look
    except ProcessLookupError:
        return 0
    doomed = process_tree(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(doomed)


@pytest.fixture(autouse=True)
def no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any HTTP request to a host other than this machine."""
    from urllib.parse import urlparse

    from requests.adapters import HTTPAdapter

    original = HTTPAdapter.send

    def guarded(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        host = urlparse(request.url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"test tried to reach {host}")
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(HTTPAdapter, "send", guarded)


# --- CI cannot pass by skipping ------------------------------------------------------------

SKIPPED: list[tuple[str, str]] = []  # (test id, reason) of every test skipped in this run


def running_on_ci() -> bool:
    """Return True under CI (CI=true), where every part the suite needs is installable."""
    return os.environ.get("CI") == "true"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember each skipped test (an expected failure is not a skip) for the check below."""
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        kind = "browser" if "browser" in report.keywords else ""
        if "postgres" in report.nodeid.lower() or "PostgreSQL" in reason:
            kind = "PostgreSQL"
        SKIPPED.append((report.nodeid, f"{kind + ' test: ' if kind else ''}{reason}"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true a skipped test fails the run: PostgreSQL, Chromium and axe-core are there."""
    if running_on_ci() and SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which skips failed a CI run, and why each was skipped."""
    if running_on_ci() and SKIPPED:
        terminalreporter.section("CI=true: skipped tests fail the run", red=True, bold=True)
        for nodeid, reason in SKIPPED:
            terminalreporter.line(f"{nodeid}: {reason}")
