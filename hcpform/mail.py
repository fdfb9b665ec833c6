"""Sending one email over SMTP: the HCPFORM_MAIL_URL setting, and what a failure means.

`smtp://user:password@host:587` speaks STARTTLS when the server offers it (and refuses to send
credentials over a connection that isn't encrypted); `smtps://…:465` is TLS from the start.
The password never appears in a message or a log line: `describe` masks it, and errors are
passed through `redact`.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from .redact import redact

SCHEMES = {"smtp": 587, "smtps": 465}


class MailError(Exception):
    """A send that failed; `refused` when the server answered 5xx (it will likely refuse again)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class MailServer:
    """Where and how to send: parsed from HCPFORM_MAIL_URL."""

    scheme: str
    host: str
    port: int
    username: str
    password: str


def parse_url(url: str) -> MailServer:
    """Return the server a mail URL names.

    Raises:
        ValueError: with a message that never contains the password.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(
            "HCPFORM_MAIL_URL is not a valid URL (smtp://user:pass@host:587)"
        ) from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError("HCPFORM_MAIL_URL must look like smtp://user:pass@host:587 or smtps://…")
    return MailServer(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or SCHEMES[parts.scheme],
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def describe(url: str) -> str:
    """Return the mail URL with its password masked, for the admin and the logs."""
    try:
        server = parse_url(url)
    except ValueError as exc:
        return str(exc)
    user = f"{server.username}:***@" if server.username else ""
    return f"{server.scheme}://{user}{server.host}:{server.port}"


def send(server: MailServer, message: EmailMessage, *, timeout: float) -> None:
    """Send one message; return when the server accepted it (its 250 after DATA).

    Raises:
        MailError: refused=True for a 5xx answer, else a failure worth retrying soon
            (4xx, connection refused, dropped or timed out, TLS problems).
    """
    try:
        if server.scheme == "smtps":
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if server.scheme == "smtp" and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            elif server.scheme == "smtp" and server.username:
                raise MailError("The mail server offers no STARTTLS: credentials not sent")
            if server.username:
                smtp.login(server.username, server.password)
            smtp.send_message(message)
    except MailError:
        raise
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        text = "; ".join(f"{c} {m.decode(errors='replace')}" for c, m in exc.recipients.values())
        raise MailError(_clean(f"recipient refused: {text}"), refused=min(codes) >= 500) from None
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error
        message_text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        raise MailError(
            _clean(f"{exc.smtp_code} {message_text}"), refused=exc.smtp_code >= 500
        ) from None
    except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailError(_clean(f"{type(exc).__name__}: {exc}")) from None


def _clean(text: str) -> str:
    """Return an error text fit to store and show: redacted, one line, at most 500 characters."""
    return redact(" ".join(text.split()))[:500]
