"""Tests for hcpform.redact: PII masking, control-character escaping and the logging filter."""

from __future__ import annotations

import logging

import pytest

from hcpform.redact import RedactingFilter, install_redaction, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("john.smith@example.com", "j***@example.com"),
        ("mail Jane_Doe+hvac@mail.example.co.uk now", "mail J***@mail.example.co.uk now"),
        ("q=john%40example.com&page=1", "q=j***%40example.com&page=1"),
        ("<a@b.co>", "<a***@b.co>"),
    ],
)
def test_redact_masks_emails(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5551234567", "••••••••67"),
        ("555-123-4567", "••••••••67"),
        ("555.123.4567", "••••••••67"),
        ("555 123 4567", "••••••••67"),
        ("(555) 123-4567", "••••••••67"),
        ("(555)123-4567", "••••••••67"),
        ("1-555-123-4567", "•••••••••67"),
        ("1 (555) 123-4567", "•••••••••67"),
        ("+1 (555) 123-4567", "•••••••••67"),
        ("+1 555-123-4567", "•••••••••67"),
        ("+15551234567", "•••••••••67"),
        ("+44 20 7946 0958", "••••••••••58"),
        ("+442079460958", "••••••••••58"),
        ("q=%2B15551234567", "q=•••••••••67"),
        ("q=555%20123%204567", "q=••••••••67"),
        ("call me at 555-123-4567.", "call me at ••••••••67."),
    ],
)
def test_redact_masks_phones_keeping_last_two_digits(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123 Main St", "[street]"),
        ("lives at 123 N Main St. Apt 4", "lives at [street] Apt 4"),
        ("4500 old mill road, Austin TX", "[street], Austin TX"),
        ("12B Elm Ct", "[street]"),
        ("1600 Pennsylvania Avenue NW", "[street] NW"),
        ("77 Sunset Blvd", "[street]"),
        ("9 Rue Way", "[street]"),
        ("221 Baker Pl", "[street]"),
        ("31 Spooner Street", "[street]"),
        ("8 Willow Creek Ln", "[street]"),
        ("350 5th Ave", "[street]"),
        ("10 Downing Dr", "[street]"),
        ("742 Evergreen Terrace", "[street]"),
    ],
)
def test_redact_masks_street_addresses(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "✅ HousecallPro API response received: 201 POST /customers (123 ms)",
        "❌ HousecallPro API call failed: 422 POST /jobs (45 ms): HTTP 404 (non-JSON body)",
        "GET /customers/cus_5551234567abcdef5551234567abcdef/addresses",
        "company 550e8400-e29b-41d4-a716-446655440000",
        "at 2026-07-24T15:30:00Z, epoch 1732740000, 1732740000123 ms",
        "retry 3 of 8 in 30 s; page 2 of 3; 200 items",
        "version 1.2.3, HTTP/1.1 503, ip 10.0.0.255",
        "",
    ],
)
def test_redact_leaves_non_pii_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '127.0.0.1 - - "GET /f/service-request/contact?d=Ab_9-xYz HTTP/1.1" 200 -',
            '127.0.0.1 - - "GET /f/service-request/contact?d=[redacted] HTTP/1.1" 200 -',
        ),
        (
            "GET /admin/submissions?status=failed&q=Zo%C3%AB+Quill&page=2",
            "GET /admin/submissions?status=failed&q=[redacted]&page=2",
        ),
        (
            '"https://x.example/f/a/?zip=60614&D=tok#top"',
            '"https://x.example/f/a/?zip=60614&D=[redacted]#top"',
        ),
        (
            "/admin/x?email=a%40b.co&phone=%2B13125550100",
            "/admin/x?email=[redacted]&phone=[redacted]",
        ),
        ("href=/f/a/?d=tok&amp;x=1", "href=/f/a/?d=[redacted]&amp;x=1"),
        ("/f/a/?d=&q=", "/f/a/?d=&q="),  # nothing to hide
        ("/f/a/?dd=1&qq=2&d2=3", "/f/a/?dd=1&qq=2&d2=3"),  # other names are left alone
    ],
)
def test_redact_hides_draft_tokens_and_searches_in_urls(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


def test_redact_escapes_control_characters() -> None:
    forged = "name\nINFO fake line\r\x1b[31mred\u2028x\ttab\x00"
    out = redact(forged)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out and "\u2028" not in out
    assert out == "name\\nINFO fake line\\r\\x1b[31mred\\u2028x\\ttab\\x00"


def test_redact_is_idempotent() -> None:
    text = "j.doe@example.com, (555) 123-4567, 12 Elm St\nnext"
    once = redact(text)
    assert redact(once) == once
    assert once == "j***@example.com, ••••••••67, [street]\\nnext"


def test_redact_can_keep_newlines_for_tracebacks() -> None:
    assert redact("a@b.com\nline", escape_control=False) == "a***@b.com\nline"


def _record(msg: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args or None, exc_info)


def test_filter_renders_redacts_and_clears_args() -> None:
    record = _record("lead %s phone %s at %s", "ann@example.com", "555-123-4567", "1 Oak Rd")
    assert RedactingFilter().filter(record) is True
    assert record.args is None
    assert record.getMessage() == "lead a***@example.com phone ••••••••67 at [street]"


def test_filter_survives_bad_format_args() -> None:
    record = _record("%d items for %s", "not-a-number")
    assert RedactingFilter().filter(record) is True
    assert "unformattable" in record.getMessage()


def test_filter_redacts_exception_text() -> None:
    try:
        raise ValueError("bad email bob@example.com")
    except ValueError:
        import sys

        record = _record("failed", exc_info=sys.exc_info())
    RedactingFilter().filter(record)
    assert record.exc_text is not None
    assert "bob@example.com" not in record.exc_text
    assert "b***@example.com" in record.exc_text
    assert "\n" in record.exc_text  # tracebacks keep their lines
    formatted = logging.Formatter().format(record)
    assert "bob@example.com" not in formatted


def test_install_redaction_is_idempotent_and_covers_root_handlers() -> None:
    root = logging.getLogger()
    handler = logging.Handler()
    root.addHandler(handler)
    named = logging.getLogger("hcpform.test_redact")
    try:
        install_redaction(named)
        install_redaction(["hcpform.test_redact"])
        install_redaction()
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        assert sum(isinstance(f, RedactingFilter) for f in named.filters) == 1
    finally:
        root.removeHandler(handler)
        for f in list(named.filters):
            named.removeFilter(f)


def test_installed_filter_redacts_what_caplog_sees(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hcpform.test_redact2")
    install_redaction()  # caplog's handler sits on the root logger
    try:
        logging.getLogger("hcpform.test_redact2").info(
            "new request from %s, %s", "zoe@example.org", "+1 555 123 4567"
        )
        assert "zoe@example.org" not in caplog.text
        assert "555 123 4567" not in caplog.text
        assert "z***@example.org" in caplog.text and "•••••••••67" in caplog.text
    finally:
        for handler in logging.getLogger().handlers:
            for f in list(handler.filters):
                if isinstance(f, RedactingFilter):
                    handler.removeFilter(f)
