"""The ``ventureos`` command: one app, one module per command group.

Errors are one clear line and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import click
import typer
from typer.exceptions import TyperException

from ventureos.cli import demo, entity, feed, generate, maintain, quarantine, query, run, serving, status

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and Prefect's logs on errors."),
) -> None:
    """VentureOS Lakehouse: ingest, normalize and serve US corporate violation records."""
    # ``main`` takes --debug out before parsing (it must act before the command runs); this shows it in help.


app.add_typer(run.app, name="run")
app.add_typer(feed.app, name="feed")
app.add_typer(quarantine.app, name="quarantine")
app.add_typer(entity.app, name="entity")
app.add_typer(generate.app, name="generate")
app.command(name="demo")(demo.demo)
app.command(name="query")(query.query)
app.command(name="maintain")(maintain.maintain)
app.add_typer(serving.app, name="serving")
app.command(name="top")(serving.top)
app.command(name="status")(status.status)


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
        # Without standalone mode a command's ``typer.Exit(code)`` comes back as the return value.
        code = app(args=args, prog_name="ventureos", standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort):
        sys.exit(130)
    except (click.exceptions.ClickException, TyperException) as exc:
        # Typer raises its own copy of click's exceptions (usage errors name the option).
        exc.show() if hasattr(exc, "show") else print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
