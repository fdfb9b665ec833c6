"""Where photo files live: a small store interface, and its filesystem implementation.

Files are kept outside the web root (by default `instance/photos/`, or PHOTO_STORAGE_DIR) and are
only ever read through the app: the admin's photo route and the draft owner's thumbnails. Another
backend (an S3-compatible bucket, say) needs only the three methods of PhotoStore and a branch in
`get_store`; nothing else in the app knows where the bytes are.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from flask import Flask, current_app

NAME_RE = re.compile(r"^[a-f0-9]{32}(?:-thumb)?\.jpg$")  # what photos.py names files


class PhotoStore(Protocol):
    """Store, read and delete photo files by name."""

    def put(self, name: str, data: bytes) -> None:
        """Store the bytes under this name (replacing any)."""

    def get(self, name: str) -> bytes:
        """Return the bytes stored under this name (FileNotFoundError when there are none)."""

    def delete(self, name: str) -> None:
        """Delete the file of this name; a missing one is not an error."""


class FileStore:
    """Photos as files in one directory, written atomically (temporary file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        if not NAME_RE.match(name):  # never a path from outside: only names we made
            raise ValueError("not a photo file name")
        return self.root / name

    def put(self, name: str, data: bytes) -> None:
        """Store the bytes under this name (mode 0600), replacing any."""
        path = self._path(name)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> bytes:
        """Return the bytes stored under this name.

        Raises:
            FileNotFoundError: when there is no such file.
        """
        return self._path(name).read_bytes()

    def delete(self, name: str) -> None:
        """Delete the file of this name; a missing one is not an error."""
        self._path(name).unlink(missing_ok=True)


def get_store(app: Flask | None = None) -> PhotoStore:
    """Return the app's photo store (PHOTO_STORAGE_DIR, else instance/photos)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    root = app.config.get("PHOTO_STORAGE_DIR") or os.path.join(app.instance_path, "photos")
    return FileStore(Path(root))
