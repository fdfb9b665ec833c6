"""Multipart/form-data requests (job attachments): parse the parts, check them by name.

openapi-core checks JSON bodies against the definition; a multipart body is checked here against
the same operation's `multipart/form-data` schema, part by part.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.formparser import parse_form_data

from .contract import Checked, Contract, Violation, _deref, _properties


def is_multipart(content_type: str | None) -> bool:
    """Return True for a multipart/form-data body."""
    return (content_type or "").split(";")[0].strip().lower() == "multipart/form-data"


def parse_multipart(environ: dict[str, Any], raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse a multipart body: (a summary for the request log, the parts for the routes).

    The parts are kept as bytes, so the route reads them without parsing the body again.
    """
    copy = dict(environ, **{"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))})
    _stream, form, files = parse_form_data(copy)
    parts: dict[str, Any] = {"fields": form.to_dict(), "files": {}}
    summary: dict[str, Any] = {"fields": form.to_dict(), "files": {}}
    for name, upload in files.items(multi=True):
        data = upload.read()
        meta = {"filename": upload.filename or "", "content_type": upload.mimetype}
        parts["files"][name] = dict(meta, data=data)
        summary["files"][name] = dict(meta, size=len(data))
    environ["wsgi.input"] = io.BytesIO(raw)
    return summary, parts


def check_multipart(
    contract: Contract,
    method: str,
    path: str,
    query: Any,
    fields: Iterable[str],
    files: Mapping[str, int],
) -> Checked:
    """Check a multipart/form-data request: its query, and its parts by name.

    `fields` are the names of plain parts, `files` maps each file part's name to its size.
    The operation must take multipart/form-data; every required property must be sent;
    a `format: binary` property must be a non-empty file, any other a plain part; names the
    schema does not list are violations (HCP would ignore them).
    """
    checked = contract.check_request(method, path, query, None)
    if checked.template is None:
        return checked
    # The JSON body check does not apply (it sees no body): the parts are checked below.
    out = [v for v in checked.violations if v.where != "body"]
    op = contract.operations[(method.upper(), checked.template)]
    media = ((op.get("requestBody") or {}).get("content") or {}).get("multipart/form-data")
    if media is None:
        message = f"{method} {checked.template} takes no multipart/form-data body"
        return Checked(checked.template, [*out, Violation("body", "", message)])
    schema = _deref(contract.doc, media.get("schema") or {})
    props = _properties(contract.doc, schema)
    sent = set(fields) | set(files)
    for name in schema.get("required") or []:
        if name not in sent:
            out.append(Violation("body", name, "is missing"))
    for name in sorted(sent):
        prop = props.get(name)
        if prop is None:
            listed = ", ".join(sorted(props)) or "none"
            out.append(Violation("body", name, f"unknown part (allowed: {listed})"))
        elif prop.get("format") == "binary" and name not in files:
            out.append(Violation("body", name, "must be a file part"))
        elif prop.get("format") == "binary" and files[name] == 0:
            out.append(Violation("body", name, "is an empty file"))
        elif prop.get("format") != "binary" and name in files:
            out.append(Violation("body", name, "must be a plain part, not a file"))
    return Checked(checked.template, list(dict.fromkeys(out)))
