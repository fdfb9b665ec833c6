"""A local stand-in for Housecall Pro's API (same paths, shapes, errors) with fault injection.

Its own package: hcpform imports it only to run it (`flask --app hcpform hcp-sandbox`, or `dev`
with HCP_API_BASE_URL=sandbox), and it imports nothing of hcpform. Modules: `contract`
(housecall.v1.yaml through openapi-core, plus HCP's quirks), `state` (the store), one module
per resource (`customers`, `jobs`, `estimates`, `leads`, `reference`, `schedule`, `staff`),
`faults` (injection and the WSGI layer), `control` (the /_sandbox/ endpoints), `app` (the
Flask app and server), `cli`.
"""

from __future__ import annotations

from .app import SandboxServer, create_sandbox_app, get_state, serve
from .state import SandboxState
from .util import DEFAULT_API_KEY

__all__ = [
    "DEFAULT_API_KEY",
    "SandboxServer",
    "SandboxState",
    "create_sandbox_app",
    "get_state",
    "serve",
]
