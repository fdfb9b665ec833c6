#!/usr/bin/env python3
"""The homeowner's languages: extract, add a language, update and compile the catalogues.

    python scripts/translations.py extract      # templates + code + the template form -> .pot
    python scripts/translations.py init fr      # a new language: hcpform/translations/fr/...
    python scripts/translations.py update       # merge the .pot into every .po
    python scripts/translations.py compile      # every .po -> .mo (committed; the app reads it)

tests/test_translations.py runs extract and fails when a string escapes the catalogues.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "hcpform" / "translations"
POT = TRANSLATIONS / "messages.pot"
FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "lazy_gettext": None,
    "_l": None,
    "N_": None,
}


def template_form_texts() -> list[str]:
    """Return the texts of the built-in template form, which translate while left unchanged."""
    sys.path.insert(0, str(ROOT))
    from hcpform import formdefs

    return formdefs.template_texts()


def extract() -> Catalog:
    """Return a catalogue of every marked string, plus the template form's texts."""
    method_map, options_map = parse_mapping_cfg((ROOT / "babel.cfg").open())
    catalog = Catalog(project="hcpform", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    for text in template_form_texts():
        catalog.add(text, None, [("hcpform/formdefs.py", 0)])
    return catalog


def po_path(lang: str) -> Path:
    """Return the .po file of a language."""
    return TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"


def languages() -> list[str]:
    """Return the languages that have a catalogue."""
    return sorted(p.parent.parent.name for p in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))


def read(path: Path, lang: str | None = None) -> Catalog:
    """Read a .po/.pot file."""
    with path.open("rb") as handle:
        return read_po(handle, locale=lang)


def write(catalog: Catalog, path: Path) -> None:
    """Write a .po/.pot file (no dates, so an unchanged catalogue is an unchanged file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = BytesIO()
    write_po(buffer, catalog, width=100, omit_header=False, sort_output=True)
    text = b"\n".join(
        line
        for line in buffer.getvalue().split(b"\n")
        if not line.startswith((b'"POT-Creation-Date', b'"PO-Revision-Date'))
    )
    path.write_bytes(text)


def compiled(lang: str) -> bytes:
    """Return the .mo bytes of a language's .po."""
    buffer = BytesIO()
    catalog = read(po_path(lang), lang)
    # The .po carries no dates (see write); a fixed one keeps the .mo the same for the same .po.
    catalog.creation_date = catalog.revision_date = FIXED_DATE
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    """Run one command."""
    command = argv[0] if argv else ""
    if command == "extract":
        write(extract(), POT)
    elif command == "init" and len(argv) == 2:
        catalog = read(POT, argv[1])
        catalog.locale = argv[1]  # type: ignore[assignment]
        write(catalog, po_path(argv[1]))
    elif command == "update":
        template = read(POT)
        for lang in languages():
            catalog = read(po_path(lang), lang)
            catalog.update(template, no_fuzzy_matching=True)
            write(catalog, po_path(lang))
    elif command == "compile":
        for lang in languages():
            po_path(lang).with_suffix(".mo").write_bytes(compiled(lang))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
