"""The catalogues: nothing the homeowner reads escapes them, and Spanish is complete and compiled.

Extraction runs babel over the code and templates (scripts/translations.py, babel.cfg) and
compares with the committed .pot and .po; the .mo the app reads must be the .po compiled.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("translations", ROOT / "scripts" / "translations.py")
assert SPEC and SPEC.loader
translations = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(translations)

# The homeowner's pages (the admin stays English for now).
PAGES = [
    ROOT / "templates" / "base.html",
    ROOT / "templates" / "embed" / "base.html",
    *sorted((ROOT / "templates" / "wizard").glob("*.html")),
    *sorted((ROOT / "templates" / "errors").glob("*.html")),
    # The homeowner's emails (the office's alerts stay English).
    *[
        ROOT / "templates" / "mail" / name
        for name in (
            "_layout.html",
            "confirmation.html",
            "confirmation.txt",
            "job_update.html",
            "job_update.txt",
        )
    ],
]
# Modules whose messages reach the homeowner: every Invalid/ValidationError goes through gettext.
MESSAGE_MODULES = [
    ROOT / "hcpform" / "validation.py",
    ROOT / "hcpform" / "errors.py",
    *sorted((ROOT / "hcpform" / "wizard").glob("*.py")),
]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def ids(catalog) -> set[str]:
    return {m.id for m in catalog if m.id}


def test_the_committed_pot_is_what_extraction_finds():
    extracted = ids(translations.extract())
    committed = ids(translations.read(translations.POT))
    assert extracted - committed == set(), "run: python scripts/translations.py extract && update"
    assert committed - extracted == set(), "stale entries: run extract && update"


@pytest.mark.parametrize("lang", ["es"])
def test_every_message_has_a_translation_with_the_same_placeholders(lang):
    extracted = ids(translations.extract())
    catalog = translations.read(translations.po_path(lang), lang)
    by_id = {m.id: m for m in catalog if m.id}
    missing = sorted(extracted - set(by_id))
    assert missing == [], f"not in {lang}.po: {missing[:5]}"
    empty = sorted(m.id for m in by_id.values() if not m.string or m.fuzzy)
    assert empty == [], f"untranslated in {lang}.po: {empty[:5]}"
    for message in by_id.values():
        assert set(PLACEHOLDER.findall(message.id)) == set(PLACEHOLDER.findall(message.string)), (
            message.id
        )


@pytest.mark.parametrize("lang", ["es"])
def test_the_committed_mo_is_the_po_compiled(lang):
    mo = translations.po_path(lang).with_suffix(".mo")
    assert mo.read_bytes() == translations.compiled(lang), "run: scripts/translations.py compile"


def visible_text(source: str) -> str:
    """Return a template's own words outside gettext/trans: what would escape the catalogue."""
    source = re.sub(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", " ", source, flags=re.S)
    # Blocks that fill the <body> tag's attributes, not text.
    source = re.sub(
        r"{% block (?:page_data|frame_data|body_class) %}.*?{% endblock %}", " ", source
    )
    source = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", "\x00", source, flags=re.S)
    source = re.sub(r"<[^>]*>", " ", source, flags=re.S)
    return re.sub(r"[\s\x00]+", " ", source).strip()


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_text_escapes_the_catalogue(path):
    words = [w for w in visible_text(path.read_text()).split(" ") if re.search(r"[A-Za-z]", w)]
    assert words == [], f"{path.name}: wrap in gettext() or {{% trans %}}: {' '.join(words)[:200]}"


def test_the_text_check_catches_a_bare_string():
    assert visible_text('<p class="x">Call us now</p>') == "Call us now"
    assert visible_text("<p>{{ gettext('Call us now') }}</p>") == ""
    assert visible_text("<p>{% trans %}Call <b>us</b>{% endtrans %}</p>") == ""


def bare_messages(path: Path) -> list[str]:
    """Return the lines raising Invalid/ValidationError with a literal (untranslated) text."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("Invalid", "ValidationError") and isinstance(
                node.args[0], ast.Constant | ast.JoinedStr
            ):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_validation_message_escapes_the_catalogue():
    found = [line for path in MESSAGE_MODULES for line in bare_messages(path)]
    assert found == []
    probe = ROOT / "hcpform" / "validation.py"
    assert bare_messages(probe) == []
    assert "Invalid(gettext(" in probe.read_text()  # the check looks at the real calls
