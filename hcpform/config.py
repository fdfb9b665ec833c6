"""Configuration: safe defaults, the load order, generated local secrets, and a fail-fast check."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask

HCP_PRODUCTION_URL = "https://api.housecallpro.com"


class DefaultConfig:
    """Secret-free defaults. Every key can be overridden by `HCPFORM_<KEY>` in the environment."""

    # Flask. SECRET_KEY is generated once into instance/ when not given.
    SECRET_KEY: str | None = None
    MAX_CONTENT_LENGTH = 64 * 1024  # the wizard posts a few KB; bigger bodies get a clear 413
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False  # True in production (PRODUCTION=true)
    PRODUCTION = False  # serve over HTTPS: secure cookies, HSTS, required secrets

    # Database: DATABASE_URL, else a SQLite file in instance/.
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}

    # Queue: REDIS_URL, else an embedded in-process queue (fakeredis + a worker thread).
    REDIS_URL: str | None = None
    RQ_QUEUE = "hcp-sync"
    # RQ stops a sync job after SYNC_JOB_TIMEOUT s: at least the HCP time of one attempt
    # (CALLS_PER_ATTEMPT calls x (SYNC_RATE_LIMIT_WAIT_SECONDS + HCP_CONNECT_TIMEOUT +
    # HCP_READ_TIMEOUT) = 10 x 23.05 s by default). The lease outlives the job and one more call
    # in flight when it is stopped. check_config enforces both.
    SYNC_JOB_TIMEOUT = 240
    SYNC_LEASE_SECONDS = 300
    SYNC_RATE_LIMIT_WAIT_SECONDS = 5.0  # the longest a sync call waits for a shared HCP slot
    SYNC_RETRY_BASE_SECONDS = 5.0  # first backoff step; doubles each attempt (full jitter)
    SYNC_RETRY_CAP_SECONDS = 3600.0  # longest wait between two attempts
    SYNC_RETRY_AFTER_MAX_SECONDS = 3600.0  # the longest Retry-After we honour as given
    SYNC_RETRY_WINDOW_HOURS = 24.0  # transient errors retry for this long, then `failed`
    SWEEP_INTERVAL_SECONDS = 30  # how often workers re-enqueue stuck submissions
    SWEEP_PENDING_GRACE_SECONDS = 60  # a pending row not enqueued for this long is re-enqueued

    # Housecall Pro. HCP_API_BASE_URL=sandbox means the built-in sandbox at HCP_SANDBOX_URL.
    HCP_API_BASE_URL = HCP_PRODUCTION_URL
    HCP_SANDBOX_URL = "http://127.0.0.1:8025"
    HCP_SANDBOX_KEY = "sandbox-key"  # the sandbox's valid API key
    HCP_API_KEY: str | None = None  # overrides the key stored (encrypted) through the admin
    HCP_CONNECT_TIMEOUT = 3.05
    HCP_READ_TIMEOUT = 15.0
    HCP_RATE_LIMIT_PER_SECOND = 5.0  # across all workers; HCP publishes no number, stay polite
    HCP_CACHE_TTL = 300  # job types, employees, lead sources, company
    HCP_LOOKUP_TIMEOUT = 2.0  # the wizard's returning-customer lookup must be quick
    HCP_WEB_URL = "https://pro.housecallpro.com/app"  # links from the admin to HCP records

    # HCP's webhooks (hcpform/webhooks/, POST /hooks/hcp). HCP_WEBHOOK_SECRET overrides the
    # signing secret stored (encrypted) through the admin, as HCP_API_KEY does for the key.
    HCP_WEBHOOK_SECRET: str | None = None
    WEBHOOK_TOLERANCE_SECONDS = 300  # Api-Timestamp may be this far from our clock, either way
    WEBHOOK_MAX_BYTES = 256 * 1024  # a delivery is one full record; bigger bodies get a 413
    WEBHOOK_PREVIOUS_SECRET_HOURS = 24  # after a rotation the old secret is accepted this long
    WEBHOOK_KEEP_DAYS = 30  # stored events (those for records we did not create too) are dropped
    WEBHOOK_HOUSEKEEPING_SECONDS = 60  # purge, re-enqueue and reconcile this often
    RECONCILE_INTERVAL_MINUTES = 30  # without webhooks, ask HCP about an open record this often
    RECONCILE_STOP_DAYS = 60  # … and no more this long after the work was completed
    RECONCILE_BATCH = 20  # records reconciled per housekeeping run (2 calls each)

    # Encryption of stored secrets: HCPFORM_ENCRYPTION_KEY (comma-separated, newest first),
    # else a key generated once into instance/encryption.key.
    ENCRYPTION_KEY: str | None = None

    # HCP connection health: the workers check GET /company this often; this many failed
    # checks in a row (or one refused key) show a banner on every admin page.
    HCP_HEALTH_CHECK_MINUTES = 10.0
    HCP_HEALTH_FAILURES = 3

    # Email (hcpform/mail.py, hcpform/outbox.py): HCPFORM_MAIL_URL (smtp://user:pass@host:587
    # with STARTTLS, or smtps://…:465) and HCPFORM_MAIL_FROM; without MAIL_URL no email is
    # queued and the admin says mail is off. MAIL_OFFICE: office addresses for new forms.
    MAIL_URL: str | None = None
    MAIL_FROM = ""
    MAIL_OFFICE = ""
    MAIL_TIMEOUT = 20.0  # seconds per SMTP operation
    MAIL_LEASE_SECONDS = 120  # a claimed message is taken over after this (a worker died)
    MAIL_RETRY_BASE_SECONDS = 30.0  # first wait after a failed send; doubles each attempt
    MAIL_RETRY_CAP_SECONDS = 3600.0
    MAIL_MAX_ATTEMPTS = 8  # then the message is failed, with the last reason shown
    MAIL_REFUSED_ATTEMPTS = 3  # … sooner when the server refuses it (5xx)
    MAIL_SWEEP_SECONDS = 30  # how often workers pick up due or stuck messages
    MAIL_DEV_PORT = 8026  # `flask dev` without MAIL_URL: a local sink that prints each email

    # Wizard.
    DRAFT_TTL_DAYS = 7
    # Abandoned requests (hcpform/abandoned.py): the idle time for new forms (each form has
    # its own), how long an abandoned draft and its resume link live after its last change
    # (then its personal answers are erased), and how often the workers look for them.
    ABANDONED_AFTER_MINUTES = 60
    ABANDONED_KEEP_DAYS = 30
    ABANDONED_SWEEP_SECONDS = 60
    ABANDONED_LEAD_TAG = "web-abandoned"
    ABANDONED_BATCH = 20  # leads sent per sweep
    # The site's public address (https://forms.example.com), for the resume link in a lead's
    # note written by a worker; without it the note carries the link's path only.
    PUBLIC_URL = ""
    SPAM_MIN_SECONDS = 3.0  # minimum time from first step to submit
    TRUSTED_PROXIES = 0  # X-Forwarded-For hops to trust

    # Photos of the problem on the description step (hcpform/photos.py, docs/photos.md).
    PHOTO_MAX_COUNT = 5  # per request
    PHOTO_MAX_BYTES = 10 * 1024 * 1024  # per file as sent; the upload routes' body limit follows
    PHOTO_MAX_SIDE = 2560  # longest side kept, in pixels
    PHOTO_MAX_PIXELS = 60_000_000  # more is refused as a decompression bomb (48 MP phones pass)
    PHOTO_STORAGE_DIR: str | None = None  # where the files live; default instance/photos
    PHOTO_ATTACH_MAX_ATTEMPTS = 8  # tries to attach one photo to the HCP job, then `failed`

    # Rate limits (hcpform/ratelimits.py), each a moving window in the `limits` library's
    # notation ("10/hour;3/minute"); RATELIMIT_ENABLED=false switches them off.
    # RATELIMIT_STORAGE_URI defaults to REDIS_URL (process memory in the embedded mode).
    RATELIMIT_ENABLED = True
    RATELIMIT_SUBMIT_PER_IP = "10/hour;3/minute"  # final submits per client IP
    RATELIMIT_LOOKUP_PER_IP = "20/hour"
    # Per client IP (an IPv6 client by its /64), generous enough that no household meets them:
    RATELIMIT_DRAFTS_PER_IP = "30/hour;10/minute"  # new drafts (a valid first step)
    RATELIMIT_OUT_OF_AREA_PER_IP = "20/hour"  # "tell me when you serve my area" posts
    RATELIMIT_PAGE_VIEWS_PER_IP = "300/minute"  # wizard pages (GETs), against scraping/floods
    RATELIMIT_PHOTOS_PER_IP = "60/hour;20/minute"  # photo uploads through wizard.js
    RATELIMIT_LOGIN = "5/15 minutes"
    RATELIMIT_WEBHOOK_PER_IP = "600/minute"  # POST /hooks/hcp, per sending address
    # Sign-in throttling (hcpform/admin/throttle.py); RATELIMIT_LOGIN above is per client IP.
    LOGIN_FREE_FAILURES = 3  # per (account, IP): failures before each next try must wait
    LOGIN_FIRST_DELAY_SECONDS = 2.0  # then each further try of that pair waits twice as long
    LOGIN_MAX_DELAY_SECONDS = 900.0  # the longest wait between two tries of one (account, IP)
    LOGIN_FAILURE_MEMORY_HOURS = 24.0  # a pair's failures are forgotten this long after its first

    # Admin sessions.
    ADMIN_IDLE_MINUTES = 30
    ADMIN_ABSOLUTE_HOURS = 12


# Environment names without the HCPFORM_ prefix that product.md fixes.
PLAIN_ENV = {
    "SECRET_KEY": "SECRET_KEY",
    "DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
    "REDIS_URL": "REDIS_URL",
    "HCP_API_BASE_URL": "HCP_API_BASE_URL",
    "HCP_API_KEY": "HCP_API_KEY",
    "HCP_WEBHOOK_SECRET": "HCP_WEBHOOK_SECRET",
    "HCPFORM_ENCRYPTION_KEY": "ENCRYPTION_KEY",
}


def load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Load defaults, then instance/config.py and the environment, or the test config alone."""
    app.config.from_object(DefaultConfig)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        for env_name, key in PLAIN_ENV.items():
            if os.environ.get(env_name):
                app.config[key] = os.environ[env_name]
        app.config.from_prefixed_env("HCPFORM")
    else:
        app.config.update(test_config)
    if app.config.get("DATABASE_URL"):  # HCPFORM_DATABASE_URL or a test config
        app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    finish_config(app)


def finish_config(app: Flask) -> None:
    """Fill in derived and generated values."""
    cfg = app.config
    instance = Path(app.instance_path)
    if not cfg.get("SQLALCHEMY_DATABASE_URI"):
        instance.mkdir(parents=True, exist_ok=True)
        cfg["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'hcpform.db'}"
    cfg["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(cfg["SQLALCHEMY_DATABASE_URI"])
    if cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # Wait for a lock instead of failing at once ("database is locked").
        opts = dict(cfg["SQLALCHEMY_ENGINE_OPTIONS"])
        opts.setdefault("connect_args", {"timeout": 15})
        cfg["SQLALCHEMY_ENGINE_OPTIONS"] = opts
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = instance_secret(instance / "secret_key", lambda: secrets.token_hex(32))
    if cfg.get("PRODUCTION"):
        cfg["SESSION_COOKIE_SECURE"] = True
        cfg["PREFERRED_URL_SCHEME"] = "https"
    # The rate-limit counters live beside the queue, so every web process shares them.
    cfg.setdefault("RATELIMIT_STORAGE_URI", cfg.get("REDIS_URL") or "memory://")
    for key in ("SECRET_KEY", "HCP_API_KEY", "HCP_WEBHOOK_SECRET", "ENCRYPTION_KEY", "MAIL_URL"):
        if cfg.get(key) is not None:
            cfg[key] = str(cfg[key])  # from_prefixed_env may have parsed digits as an int


def normalise_database_url(url: str) -> str:
    """Point plain postgres URLs at psycopg 3, the driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def instance_secret(path: Path, make: Callable[[], str]) -> str:
    """Return the secret stored at `path`, generating it once (mode 0600) when missing."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
    return value


# The most HCP calls one attempt makes, every list on one page: job types, lead sources, two
# customer searches, the customer, the customer's addresses, the address, the customer's jobs
# (after a lost answer), the job, and one spare. check_config sizes the job timeout with it.
CALLS_PER_ATTEMPT = 10


def call_seconds(config: Mapping[str, Any]) -> float:
    """Return the longest one HCP call of a sync can take: rate-limit wait, connect and read."""
    seconds = (
        float(config["SYNC_RATE_LIMIT_WAIT_SECONDS"])
        + float(config["HCP_CONNECT_TIMEOUT"])
        + float(config["HCP_READ_TIMEOUT"])
    )
    return round(seconds, 3)  # 0.2 + 0.2 + 1.0 is 1.4, not 1.4000000000000001


def attempt_seconds(config: Mapping[str, Any]) -> float:
    """Return the longest one sync attempt's HCP calls can take (the client never retries)."""
    return round(CALLS_PER_ATTEMPT * call_seconds(config), 3)


def check_config(app: Flask) -> None:
    """Fail fast on settings that are present but wrong, or secrets missing in production.

    Raises:
        RuntimeError: naming the setting to fix.
    """
    cfg = app.config
    base = cfg.get("HCP_API_BASE_URL") or ""
    if base != "sandbox" and not base.startswith(("http://", "https://")):
        raise RuntimeError(f"HCP_API_BASE_URL must be an http(s) URL or 'sandbox', not {base!r}")
    if cfg.get("REDIS_URL") and not str(cfg["REDIS_URL"]).startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise RuntimeError("REDIS_URL must start with redis://, rediss:// or unix://")
    # The sync's timing: RQ stops a job at SYNC_JOB_TIMEOUT, which must cover one attempt's HCP
    # calls; the lease must outlive the job and a call still in flight when it is stopped.
    try:
        per_call, per_attempt = call_seconds(cfg), attempt_seconds(cfg)
        job, lease = float(cfg["SYNC_JOB_TIMEOUT"]), float(cfg["SYNC_LEASE_SECONDS"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RuntimeError(f"The sync timing settings must be numbers: {exc}") from None
    if job < per_attempt:
        raise RuntimeError(
            f"SYNC_JOB_TIMEOUT ({job:g} s) is shorter than one sync attempt can take: "
            f"{CALLS_PER_ATTEMPT} HCP calls x {per_call:g} s (SYNC_RATE_LIMIT_WAIT_SECONDS + "
            f"HCP_CONNECT_TIMEOUT + HCP_READ_TIMEOUT) = {per_attempt:g} s. Raise it, or lower "
            "those timeouts."
        )
    if lease <= job + per_call:
        raise RuntimeError(
            f"SYNC_LEASE_SECONDS ({lease:g} s) must be longer than SYNC_JOB_TIMEOUT ({job:g} s) "
            f"plus one HCP call ({per_call:g} s), so that no second run takes a submission over "
            f"while the first can still write: make it more than {job + per_call:g} s."
        )
    if cfg.get("MAIL_URL"):
        from .mail import parse_url  # a leaf, like this module

        try:
            parse_url(str(cfg["MAIL_URL"]))
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        if "@" not in str(cfg.get("MAIL_FROM") or ""):
            raise RuntimeError("HCPFORM_MAIL_FROM must be an email address when mail is on")
        if float(cfg["MAIL_LEASE_SECONDS"]) <= 4 * float(cfg["MAIL_TIMEOUT"]):
            raise RuntimeError("MAIL_LEASE_SECONDS must be more than 4 x MAIL_TIMEOUT")
    if cfg.get("PRODUCTION"):
        for env_name in ("SECRET_KEY", "HCPFORM_ENCRYPTION_KEY"):
            if not os.environ.get(env_name):
                raise RuntimeError(f"{env_name} must be set in production")
