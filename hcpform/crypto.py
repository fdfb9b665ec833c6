"""Secrets at rest: MultiFernet with keys from HCPFORM_ENCRYPTION_KEY or instance/encryption.key."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

from .config import instance_secret


class SecretError(ValueError):
    """A stored secret could not be decrypted (wrong key, or bound to another record)."""


def _keys() -> list[str]:
    configured = current_app.config.get("ENCRYPTION_KEY")
    if configured:
        return [k.strip() for k in str(configured).split(",") if k.strip()]
    path = Path(current_app.instance_path) / "encryption.key"
    return [instance_secret(path, lambda: Fernet.generate_key().decode())]


def fernet() -> MultiFernet:
    """Return a MultiFernet that encrypts with the first key and decrypts with any."""
    return MultiFernet([Fernet(k.encode()) for k in _keys()])


def encrypt(value: str, *, bound_to: str) -> str:
    """Encrypt a secret, bound to the record it belongs to (Fernet has no associated data)."""
    payload = json.dumps({"for": bound_to, "value": value}).encode()
    return fernet().encrypt(payload).decode()


def decrypt(token: str, *, bound_to: str) -> str:
    """Decrypt a secret made by `encrypt` for the same record.

    Raises:
        SecretError: when no key opens it or it belongs to another record.
    """
    try:
        data = json.loads(fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError) as exc:
        raise SecretError("the stored secret cannot be decrypted with the current keys") from exc
    if data.get("for") != bound_to:
        raise SecretError("the stored secret belongs to another record")
    value: str = data["value"]
    return value


def rotate(token: str) -> str:
    """Re-encrypt a token under the newest key."""
    return fernet().rotate(token.encode()).decode()
