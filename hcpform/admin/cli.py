"""Admin commands: `create-admin`, `delete-admin`, `rotate-encryption-key`, `form export|import`."""

from __future__ import annotations

from typing import IO

import click
from cryptography.fernet import InvalidToken
from flask.cli import with_appcontext
from sqlalchemy import func, select

from .. import crypto
from ..extensions import db
from ..models import AdminUser, HcpConnection
from ..webhooks import secret as webhook_secret
from .audit import record
from .auth import AdminError, normalise_email, set_admin


@click.command("create-admin")
@click.argument("email")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The password (asked for when omitted; use this option in scripts only).",
)
@with_appcontext
def create_admin_command(email: str, password: str) -> None:
    """Create an admin who can sign in at /admin/ (or set a new password for one)."""
    try:
        admin, created = set_admin(email, password)
    except AdminError as exc:
        raise click.UsageError(str(exc)) from exc
    record(
        "admin created" if created else "admin password set", target=admin.email, admin_email="cli"
    )
    db.session.commit()
    if created:
        click.echo(f"Admin {admin.email} created. Sign in at /admin/login.")
    else:
        click.echo(f"Admin {admin.email} exists: its password is changed, its sessions ended.")


@click.command("delete-admin")
@click.argument("email")
@with_appcontext
def delete_admin_command(email: str) -> None:
    """Remove an admin; their open sessions end at their next click."""
    admin = db.session.scalar(
        select(AdminUser).where(func.lower(AdminUser.email) == normalise_email(email))
    )
    if admin is None:
        raise click.UsageError(f"No admin {email}.")
    db.session.delete(admin)
    record("admin deleted", target=admin.email, admin_email="cli")
    db.session.commit()
    click.echo(f"Admin {admin.email} deleted.")


@click.command("rotate-encryption-key")
@with_appcontext
def rotate_encryption_key_command() -> None:
    """Re-encrypt every stored secret under the newest HCPFORM_ENCRYPTION_KEY key.

    Put the new key first and keep the old one after it ("new,old"), run this, then remove
    the old key.
    """
    rows = db.session.scalars(
        select(HcpConnection).where(HcpConnection.api_key_encrypted.is_not(None))
    ).all()
    failed = []
    for conn in rows:
        bound = f"hcp_connection:{conn.id}"
        try:
            rotated = crypto.rotate(conn.api_key_encrypted or "")
            crypto.decrypt(rotated, bound_to=bound)  # proves the new token opens, for this row
        except (crypto.SecretError, InvalidToken):
            failed.append(conn.id)
            continue
        conn.api_key_encrypted = rotated
    done = len(rows) - len(failed)
    for conn in db.session.scalars(select(HcpConnection)):  # webhook signing secrets
        try:
            done += webhook_secret.reencrypt(conn)
        except (crypto.SecretError, InvalidToken):
            failed.append(conn.id)
    record("encryption key rotated", detail=f"{done} secrets", admin_email="cli")
    db.session.commit()
    click.echo(f"Re-encrypted {done} stored secrets under the newest key.")
    if failed:
        raise click.ClickException(
            f"{len(failed)} secrets could not be decrypted with any configured key "
            f"(hcp_connection ids {', '.join(map(str, failed))}): enter those API keys "
            "(or webhook signing secrets) again."
        )


@click.group("form")
def form_group() -> None:
    """Export a form as JSON, or create or update one from such a file (docs/forms.md)."""


@form_group.command("export")
@click.argument("slug")
@with_appcontext
def form_export_command(slug: str) -> None:
    """Print the form SLUG's definition and settings as JSON."""
    from ..models import Form
    from . import formio

    form = db.session.scalar(select(Form).where(Form.slug == slug))
    if form is None:
        raise click.ClickException(f"There is no form with the slug {slug}.")
    click.echo(formio.dumps(form), nl=False)


@form_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--publish", is_flag=True, help="Publish it when every required key is mapped.")
@with_appcontext
def form_import_command(file: IO[bytes], publish: bool) -> None:
    """Create or update a form from a JSON FILE (- reads standard input); all or nothing."""
    from . import formio

    try:
        result = formio.import_form(formio.loads(file.read()), publish=publish)
    except formio.ImportRefused as exc:
        for message in exc.errors:
            click.echo(f"Error: {message}", err=True)
        raise click.ClickException("Nothing was changed.") from exc
    db.session.commit()
    verb = "Created" if result.created else "Updated"
    click.echo(f"{verb} form '{result.form.slug}': {', '.join(result.changes) or 'no change'}.")
    state = "published" if result.form.published else "not published"
    note = f" ({result.unpublished_because})" if result.unpublished_because else ""
    click.echo(f"The form is {state}{note}.")
