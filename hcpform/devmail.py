"""A local SMTP sink for `flask dev` (scripts/run) when HCPFORM_MAIL_URL is not set.

It accepts every message on 127.0.0.1 and prints it (sender, recipients, subject and the plain
text part) to the console, so a newcomer sees the confirmations and office alerts the app
sends without any mail account. Nothing leaves the machine. Needs aiosmtpd (the `embedded`
extra, which scripts/run installs).
"""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import click

DEV_SENDER = "requests@localhost"


class PrintingHandler:
    """An aiosmtpd handler that prints each message it accepts."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Print one message and accept it."""
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else "(no plain text part)"
        click.echo(
            "\n".join(
                [
                    "----- email (local sink, not sent) -----",
                    f"From: {message['From']}",
                    f"To: {', '.join(envelope.rcpt_tos)}",
                    f"Subject: {message['Subject']}",
                    "",
                    text.rstrip(),
                    "----------------------------------------",
                ]
            )
        )
        return "250 OK"


def start_sink(port: int) -> Any:
    """Start the sink on 127.0.0.1:port and return its controller (call .stop() to end it)."""
    from aiosmtpd.controller import Controller

    controller = Controller(PrintingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller
