"""Fixtures shared by the admin tests; each tests/test_admin_*.py loads them with
`pytest_plugins = ["tests.admin_fixtures"]`.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin_helpers import make_admin, sign_in


@pytest.fixture
def admin_user(app: Any) -> Any:
    """An admin in the database (detached: id and email can be read outside a context)."""
    with app.app_context():
        admin = make_admin()
        admin_id, email, password_hash = admin.id, admin.email, admin.password_hash
    from hcpform.models import AdminUser

    return AdminUser(id=admin_id, email=email, password_hash=password_hash)


@pytest.fixture
def admin_client(app: Any, admin_user: Any) -> Any:
    """A test client signed in as an admin; CSRF is off (one test proves it with CSRF on)."""
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    sign_in(client, admin_user)
    return client
