"""``dnc``: the service's command line.

Roles (each its own process, scaled by running more of them):
``dnc ingest``, ``dnc listwriter``, ``dnc gate``, ``dnc api``, ``dnc viewwriter`` (with
``DNC_VIEW__BACKEND=postgres``); ``dnc dev`` runs them all
for local development. Operations: ``dnc status``, ``dnc topics ensure``,
``dnc schemas write|check``, ``dnc keys hash``. The list: ``dnc entries ...`` (a client of
the HTTP API).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from dnc.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics of the contract.")
schemas_app = typer.Typer(
    no_args_is_help=True, help="JSON Schemas generated from the event models."
)
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(keys_app, name="keys")

ROLES = ("listwriter", "ingest", "gate", "viewwriter", "api")


def _settings() -> Settings:
    return Settings()


@app.command()
def ingest() -> None:
    """Opt-out events (inbound messages, URL unsubscribes, journey actions) → list commands."""
    from dnc.ingest.role import Ingest
    from dnc.runtime import run_role

    raise typer.Exit(run_role(Ingest, _settings(), "ingest"))


@app.command()
def listwriter() -> None:
    """List commands → changelog (dnc.changes) and the Redis index."""
    from dnc.listwriter.role import ListWriter
    from dnc.runtime import run_role

    raise typer.Exit(run_role(ListWriter, _settings(), "listwriter"))


@app.command()
def gate() -> None:
    """Outbound messages → allowed / blocked / dead-letter."""
    from dnc.gate.role import Gate
    from dnc.runtime import run_role

    raise typer.Exit(run_role(Gate, _settings(), "gate"))


@app.command()
def api() -> None:
    """The HTTP API and the web page."""
    from dnc.api.server import ApiServer
    from dnc.runtime import run_role

    raise typer.Exit(run_role(ApiServer, _settings(), "api"))


@app.command()
def viewwriter() -> None:
    """The changelog and history → the PostgreSQL list view, for every API instance."""
    from dnc.api.view.writerrole import ViewWriterRole
    from dnc.runtime import run_role

    raise typer.Exit(run_role(ViewWriterRole, _settings(), "viewwriter"))


def default_roles(settings: Settings) -> list[str]:
    """Every role the configuration needs: the view writer only for the PostgreSQL view
    (with SQLite each API instance writes its own)."""
    return [r for r in ROLES if r != "viewwriter" or settings.view.backend == "postgres"]


@app.command()
def dev(roles: list[str] = typer.Argument(None, help="roles to run (default: all)")) -> None:
    """Run every role as its own process (local development); Ctrl-C stops them all."""
    settings = _settings()
    chosen = roles or default_roles(settings)
    log_dir = Path(settings.dev_log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for i, role in enumerate(chosen):
        if role not in ROLES:
            raise typer.BadParameter(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        out = open(log_dir / f"{role}.log", "ab")  # noqa: SIM115 - lives as long as the child
        env = dict(os.environ)
        metrics = ""
        if settings.metrics_port is not None:
            # One machine, one port each: DNC_METRICS_PORT is the first role's.
            port = settings.metrics_port + i
            env["DNC_METRICS_PORT"] = str(port)
            metrics = f" metrics http://127.0.0.1:{port}/metrics"
        procs[role] = subprocess.Popen(
            [sys.executable, "-m", "dnc", role], stdout=out, stderr=out, env=env
        )
        typer.echo(f"  {role:10} pid {procs[role].pid:<7} log {log_dir / (role + '.log')}{metrics}")
    typer.echo(f"  kafka      {settings.kafka_bootstrap}")
    typer.echo(f"  redis      {settings.redis_url}")
    if "api" in procs:
        typer.echo(f"\n  web page  http://{settings.api.host}:{settings.api.port}/")
    typer.echo("\nCtrl-C stops every role (each finishes its batch, commits and closes).")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for role, proc in procs.items():
            if proc.poll() is not None:
                typer.echo(f"{role} exited with {proc.returncode}; see {log_dir / (role + '.log')}")
                stopping, code = True, 1
        time.sleep(0.5)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=settings.shutdown_deadline_s + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
    raise typer.Exit(code)


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="one JSON object, for scripts"),
    max_lag: int = typer.Option(10_000, help="records waiting in a group that need attention"),
    max_index_lag: int = typer.Option(
        100, help="changelog records not in the index yet that count as behind"
    ),
) -> None:
    """Consumer groups and their lag, the index, and whether the gate would forward now.
    Exits 1 when something needs attention."""
    import orjson

    from dnc.status import collect, render

    found = asyncio.run(collect(_settings(), max_lag=max_lag, max_index_lag=max_index_lag))
    if as_json:
        typer.echo(
            orjson.dumps(
                found.as_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
            ).decode()
        )
    else:
        typer.echo(render(found))
    raise typer.Exit(1 if found.attention else 0)


@topics_app.command("ensure")
def topics_ensure(
    allow_under_replicated: bool = typer.Option(
        False,
        "--allow-under-replicated",
        help="Create topics even with a replication factor below min.insync.replicas + 1 "
        "(a one-broker development cluster); refused otherwise.",
    ),
) -> None:
    """Create every contract topic that does not exist yet (idempotent), with the
    replication the cluster allows (up to 3)."""
    from dnc.errors import ConfigurationError
    from dnc.kafka.clients import ensure_topics

    settings = _settings()
    if allow_under_replicated:
        layout = settings.topic_layout.model_copy(update={"allow_under_replicated": True})
        settings = settings.model_copy(update={"topic_layout": layout})
    try:
        created = asyncio.run(ensure_topics(settings))
    except ConfigurationError as e:
        typer.echo(f"dnc topics ensure: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@schemas_app.command("write")
def schemas_write(out: Path = Path("schemas")) -> None:
    """Regenerate schemas/*.json from the event models."""
    from dnc.domain.schemas import write_schemas

    for path in write_schemas(out):
        typer.echo(f"wrote {path}")


@schemas_app.command("check")
def schemas_check(out: Path = Path("schemas")) -> None:
    """Fail when schemas/ differs from the event models."""
    from dnc.domain.schemas import stale_schemas

    stale = stale_schemas(out)
    if stale:
        typer.echo(f"out of date: {', '.join(stale)} (run `dnc schemas write`)", err=True)
        raise typer.Exit(1)
    typer.echo("schemas are up to date")


@keys_app.command("hash")
def keys_hash(
    secret: str = typer.Argument(None, help="the key; a new random one if omitted"),
) -> None:
    """Print an API key and the SHA-256 to configure in DNC_API__KEYS."""
    secret = secret or "dnc_" + secrets.token_urlsafe(32)
    typer.echo(f"key:    {secret}")
    typer.echo(f"sha256: {hashlib.sha256(secret.encode()).hexdigest()}")


def main() -> None:
    from dnc.client.app import entries_app

    app.add_typer(entries_app, name="entries", help="The list, through the HTTP API.")
    app()


if __name__ == "__main__":
    main()
