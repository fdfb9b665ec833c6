"""The pinned dependencies: workers exit, RQ internals we lean on, the lock, and CI's skip rule.

redis-py 8.2 made RQ's worker hang after "done, quitting" (its PubSubWorkerThread.stop() joins
the thread RQ leaves waiting 60 s for a subscription); these tests fail if an upgrade brings
that back, if constraints.txt drifts from pyproject.toml, or if a skip could pass CI.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import re
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest
import redis
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT
from tests.helpers import wait_for

BURST_EXIT_SECONDS = 15  # a burst worker on an empty queue exits in ~1.5 s; the hang lasts 60 s


def project() -> dict[str, Any]:
    """pyproject.toml's [project] table."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[Requirement]:
    """Every requirement of the project: its dependencies and all its extras."""
    meta = project()
    lines = meta["dependencies"] + [r for rs in meta["optional-dependencies"].values() for r in rs]
    return [Requirement(line) for line in lines]


def pins() -> dict[str, str]:
    """constraints.txt as {canonical name: exact version}."""
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            found[canonicalize_name(name)] = version.strip()
    return found


# --- worker shutdown -------------------------------------------------------------------------


def test_burst_worker_exits_after_draining_the_queue(app, start_worker, tmp_path):
    """`flask worker --burst` exits on its own, every time (the hang was a race: ~1 run in 6)."""
    for run in range(4):
        proc = start_worker("--burst")
        try:
            assert proc.wait(timeout=BURST_EXIT_SECONDS) == 0
        except subprocess.TimeoutExpired:
            log = (tmp_path / "worker.log").read_text(errors="replace")[-1500:]
            pytest.fail(f"burst worker {run} still running after {BURST_EXIT_SECONDS} s:\n{log}")


def test_rq_worker_unsubscribe_returns_when_its_thread_already_saw_the_unsubscribe(
    redis_server,
):
    """The losing side of that race, forced: RQ's teardown must not wait on its pubsub thread."""
    from rq import Queue, Worker

    conn = redis.Redis.from_url(redis_server.url)
    worker = Worker([Queue("hcpform-teardown-check", connection=conn)], connection=conn)
    worker.subscribe()
    wait_for(lambda: worker.pubsub_thread.is_alive(), timeout=10)
    worker.pubsub.unsubscribe()  # the thread reads the reply and waits for a new subscription
    wait_for(lambda: not worker.pubsub.subscribed, timeout=10)
    teardown = threading.Thread(target=worker.unsubscribe, daemon=True)
    teardown.start()
    teardown.join(timeout=5)
    assert not teardown.is_alive(), "RQ's Worker.unsubscribe() blocks on its pubsub thread"


# --- RQ internals -----------------------------------------------------------------------------


def rq_subclasses() -> list[type]:
    """hcpform's subclasses of RQ's workers, queues and jobs (every hcpform module imported)."""
    from rq import Queue
    from rq.job import Job
    from rq.worker import BaseWorker

    import hcpform

    for info in pkgutil.walk_packages(hcpform.__path__, "hcpform."):
        importlib.import_module(info.name)
    found, stack = [], [BaseWorker, Queue, Job]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("hcpform"):
                found.append(sub)
    return found


def test_rq_private_methods_that_hcpform_overrides_are_still_called_by_rq():
    """An RQ upgrade that renames or stops calling a private hook we override fails here."""
    import rq

    rq_source = "\n".join(
        Path(path).read_text() for path in Path(rq.__file__).parent.rglob("*.py")
    )  # fmt: skip
    private = []
    for cls in rq_subclasses():
        for name in vars(cls):
            if name.startswith("_") and not name.startswith("__"):
                private.append(f"{cls.__module__}.{cls.__name__}.{name}")
                rq_bases = [b for b in cls.__mro__[1:] if b.__module__.startswith("rq.")]
                assert any(name in vars(b) for b in rq_bases), f"RQ no longer defines {name}"
                assert re.search(rf"self\.{name}\(", rq_source), f"RQ no longer calls {name}"
    if private:  # an RQ release may change private code at will: pin the version we checked
        (rq_requirement,) = [r for r in requirements() if r.name == "rq"]
        assert str(rq_requirement.specifier).startswith("=="), (
            f"pin RQ exactly in pyproject.toml while hcpform overrides {private}"
        )


# --- the lock ----------------------------------------------------------------------------------


def test_every_requirement_has_an_upper_bound_and_a_pin_inside_its_range():
    """pyproject.toml's ranges are capped, and constraints.txt (scripts/lock) satisfies them."""
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
            f"{req} has no upper bound"
        )
        assert name in pinned, f"constraints.txt does not pin {req.name}: run scripts/lock"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pinned[name]}, outside {req}: run scripts/lock"
        )
    assert "psycopg-binary" in pinned  # what psycopg[binary] installs


def test_the_installed_packages_are_the_pinned_ones():
    """This environment was installed from constraints.txt (scripts/_setup.sh does it)."""
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert importlib.metadata.version(name) == pinned[name], (
            f"{req.name} {importlib.metadata.version(name)} is installed, the lock says "
            f"{pinned[name]}: run scripts/test (or pip install -c constraints.txt -e '.[test]')"
        )


def test_embedded_queue_without_fakeredis_says_what_to_install(settings, tmp_path, monkeypatch):
    """Production installs leave out fakeredis: with no REDIS_URL either, say what to do."""
    from hcpform import create_app

    monkeypatch.setitem(sys.modules, "fakeredis", None)  # as without the `embedded` extra
    config = dict(settings, REDIS_URL=None, DATABASE_URL=f"sqlite:///{tmp_path / 'e.db'}")
    with pytest.raises(RuntimeError, match=r"REDIS_URL.*hcpform\[embedded\]"):
        create_app({"TESTING": True, **config}, instance_path=str(tmp_path / "inst"))


# --- CI cannot pass by skipping ---------------------------------------------------------------

SKIPPING_TESTS = """
import pytest

@pytest.mark.browser
def test_in_chromium():
    pytest.skip("/usr/bin/chromium is missing")

def test_plain():
    pass
"""


@pytest.mark.parametrize(("ci", "code"), [("true", 1), ("", 0)])
def test_a_skipped_test_fails_the_run_only_under_ci(tmp_path, ci, code):
    (tmp_path / "test_skipping.py").write_text(SKIPPING_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-W", "ignore::pytest.PytestUnknownMarkWarning",
         str(tmp_path / "test_skipping.py")],
        cwd=ROOT, env={**_clean_env(), "CI": ci, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
    assert "1 passed, 1 skipped" in result.stdout
    listed = "test_skipping.py::test_in_chromium: browser test: /usr/bin/chromium is missing"
    assert (listed in result.stdout) == (ci == "true"), result.stdout[-2000:]


def _clean_env() -> dict[str, str]:
    """This process's environment without CI or pytest's own variables."""
    return {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("PYTEST_")}
