"""Command-line interface: `flask --app hcpform init-db | worker | sweep | dev | form | …`."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .worker import worker_command


def register_cli(app: Flask) -> None:
    """Attach every command to the app's CLI."""
    app.cli.add_command(init_db_command)
    app.cli.add_command(sweep_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(dev_command)
    from .admin.cli import (
        create_admin_command,
        delete_admin_command,
        form_group,
        rotate_encryption_key_command,
    )

    app.cli.add_command(create_admin_command)
    app.cli.add_command(delete_admin_command)
    app.cli.add_command(rotate_encryption_key_command)
    app.cli.add_command(form_group)
    app.cli.add_command(sandbox_command)


@click.command(
    "hcp-sandbox",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,  # --help goes to the sandbox's own command with its options
)
@click.pass_context
def sandbox_command(ctx: click.Context) -> None:
    """Run the built-in HCP sandbox (--port, --latency-ms, fault rates…; see --help)."""
    # Imported here, so that web and worker processes never load the sandbox's code.
    from hcpform_sandbox.cli import sandbox_command as command

    from .formdefs import TEMPLATE_SERVICE_TYPES

    # Seeded job types named like the template's service types: a fresh setup maps by name.
    defaults = {"job_types": TEMPLATE_SERVICE_TYPES}
    command.main(
        args=ctx.args, prog_name="flask hcp-sandbox", standalone_mode=True, default_map=defaults
    )


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Bring the database up to date and create the default form (safe to run twice)."""
    from .database import upgrade_and_seed

    created = upgrade_and_seed()
    click.echo("Database is up to date." + (" Created form 'service-request'." if created else ""))


@click.command("sweep")
@with_appcontext
def sweep_command() -> None:
    """Re-enqueue submissions left pending or held by a dead worker past their lease."""
    from .jobs import sweep

    click.echo(f"Re-enqueued {sweep()} submissions.")


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def dev_command(host: str, port: int) -> None:
    """Run the web app, a worker and (with HCP_API_BASE_URL=sandbox) the HCP sandbox together."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    from .extensions import is_embedded
    from .worker import ensure_embedded_worker

    sandbox = None
    if app.config["HCP_API_BASE_URL"] == "sandbox":
        from hcpform_sandbox import SandboxServer

        from .formdefs import TEMPLATE_SERVICE_TYPES

        parsed = urlparse(app.config["HCP_SANDBOX_URL"])
        sandbox = SandboxServer(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 8025,
            job_types=TEMPLATE_SERVICE_TYPES,
        )
        sandbox.start()
        click.echo(f" * HCP sandbox at {sandbox.url} (API key: {app.config['HCP_SANDBOX_KEY']})")
        _send_sandbox_webhooks_here(sandbox.url, f"http://127.0.0.1:{port}/hooks/hcp")
    sink = None
    if not app.config.get("MAIL_URL"):  # a local sink that prints the app's emails
        from .devmail import DEV_SENDER, start_sink

        mail_port = int(app.config["MAIL_DEV_PORT"])
        try:
            sink = start_sink(mail_port)
        except (ImportError, OSError, RuntimeError) as exc:  # aiosmtpd missing, or port taken
            click.echo(f" * No local mail sink ({type(exc).__name__}): mail is off")
        else:
            mail_url = f"smtp://127.0.0.1:{mail_port}"
            app.config["MAIL_URL"] = os.environ["HCPFORM_MAIL_URL"] = mail_url
            app.config["MAIL_FROM"] = app.config.get("MAIL_FROM") or DEV_SENDER
            os.environ.setdefault("HCPFORM_MAIL_FROM", app.config["MAIL_FROM"])
            click.echo(f" * Local mail sink on 127.0.0.1:{mail_port}: emails are printed here")
    worker = None
    if is_embedded(app):
        ensure_embedded_worker(app)
        click.echo(" * Embedded queue and worker (set REDIS_URL to use Redis and RQ workers)")
    else:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "hcpform", "worker"], env=dict(os.environ)
        )
        click.echo(f" * RQ worker started (pid {worker.pid}) on {app.config['REDIS_URL']}")
    click.echo(
        f" * Open http://{host}:{port}/ for the wizard, http://{host}:{port}/admin/ for the admin"
    )
    # A SIGTERM (e.g. from a service manager) unwinds through `finally`, stopping the worker too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        if sandbox is not None:
            sandbox.stop()
        if sink is not None:
            sink.stop()
        time.sleep(0)


def _send_sandbox_webhooks_here(sandbox_url: str, hook_url: str) -> None:
    """Have the built-in sandbox sign and send its webhooks to this app, so the loop (booked,
    completed, paid) shows with no HCP account. Without a signing secret in force, one is made
    and stored as the admin page would; the sandbox is registered once the app answers its
    handshake (in a thread: the web server starts after this returns)."""
    import requests

    from .connection import connection_row
    from .extensions import db
    from .timeutil import utcnow
    from .webhooks import secret

    conn = connection_row()
    in_force = secret.in_force(conn, now=utcnow())
    if not in_force:
        in_force = [secrets.token_urlsafe(32)]
        secret.save(conn, in_force[0], now=utcnow())
        db.session.commit()
    body = {"url": hook_url, "secret": in_force[0]}

    def register() -> None:
        for _ in range(150):
            try:
                answer = requests.post(f"{sandbox_url}/_sandbox/webhooks", json=body, timeout=5)
            except requests.RequestException:
                answer = None
            if answer is not None and answer.status_code < 300:
                click.echo(f" * The sandbox sends its webhooks to {hook_url}")
                return
            time.sleep(0.2)
        click.echo(" * The sandbox could not reach /hooks/hcp: its webhooks are off")

    threading.Thread(target=register, name="sandbox-webhooks", daemon=True).start()
