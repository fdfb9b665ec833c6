"""The `hcp-sandbox` command (also `python -m hcpform_sandbox`)."""

from __future__ import annotations

import click

from .app import serve
from .util import DEFAULT_API_KEY

DEFAULT_PORT = 8025


@click.command("hcp-sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port to bind.")
@click.option("--latency-ms", default=0.0, type=float, help="Delay added to every request.")
@click.option("--error-rate", default=0.0, type=float, help="Share answered 500/502/503.")
@click.option("--rate-limit-rate", default=0.0, type=float, help="Share answered 429.")
@click.option("--retry-after", default="1", show_default=True, help="Retry-After for 429s.")
@click.option("--timeout-rate", default=0.0, type=float, help="Share answered too late.")
@click.option(
    "--timeout-seconds", default=30.0, show_default=True, type=float, help="How late that is."
)
@click.option(
    "--commit-then-fail-rate",
    default=0.0,
    type=float,
    help="Share of creates that are saved, then answered 500 or dropped.",
)
@click.option("--seed", "rng_seed", default=None, type=int, help="Seed for the random faults.")
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help=f"A valid API key (repeatable; default {DEFAULT_API_KEY}).",
)
@click.option(
    "--job-type", "job_types", multiple=True, help="A seeded job type's name (repeatable)."
)
@click.option("--time-zone", default="America/Chicago", show_default=True)
@click.option("--no-seed-data", is_flag=True, help="Start without company data and job types.")
def sandbox_command(
    host: str,
    port: int,
    latency_ms: float,
    error_rate: float,
    rate_limit_rate: float,
    retry_after: str,
    timeout_rate: float,
    timeout_seconds: float,
    commit_then_fail_rate: float,
    rng_seed: int | None,
    api_keys: tuple[str, ...],
    job_types: tuple[str, ...],
    time_zone: str,
    no_seed_data: bool,
) -> None:
    """Run a local Housecall Pro API sandbox (see docs/sandbox.md)."""
    faults = {
        "latency_ms": latency_ms,
        "error_rate": error_rate,
        "rate_limit_rate": rate_limit_rate,
        "retry_after": retry_after,
        "timeout_rate": timeout_rate,
        "timeout_seconds": timeout_seconds,
        "commit_then_fail_rate": commit_then_fail_rate,
    }
    try:
        serve(
            host,
            port,
            api_keys=api_keys or (DEFAULT_API_KEY,),
            seed=not no_seed_data,
            job_types=job_types,
            time_zone=time_zone,
            faults=faults,
            rng_seed=rng_seed,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
