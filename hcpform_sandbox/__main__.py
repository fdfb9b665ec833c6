"""`python -m hcpform_sandbox --port 8025`: the sandbox without the product app."""

from hcpform_sandbox.cli import sandbox_command

sandbox_command()
