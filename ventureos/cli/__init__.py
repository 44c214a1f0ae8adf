"""The ``ventureos`` command: one app, one module per command group.

Errors are one clear line and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import click
import typer

from ventureos.cli import demo, entity, feed, generate, maintain, query, run, serving

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(run.app, name="run")
app.add_typer(feed.app, name="feed")
app.add_typer(entity.app, name="entity")
app.add_typer(generate.app, name="generate")
app.command(name="demo")(demo.demo)
app.command(name="query")(query.query)
app.command(name="maintain")(maintain.maintain)
app.add_typer(serving.app, name="serving")
app.command(name="top")(serving.top)


def _environment_defaults(debug: bool) -> None:
    """In-process runs need no Prefect server and no network. The command prints its own report, so
    Prefect's logs (tracebacks included) show only with ``--debug``."""
    os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if debug else "CRITICAL")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    _environment_defaults(debug)
    try:
        app(args=args, prog_name="ventureos", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
