"""The ``ventureos`` command: one app, one module per command group.

Command modules load only when their command runs: ``ventureos --help`` and a command's own usage errors
import no command module, and only commands that run a flow import Prefect (``flows``/``tasks``).
Errors are one clear line and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Any

import click
import typer
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException


@dataclass(frozen=True)
class LazyCommand:
    """A top-level command imported when it runs: ``module:attribute`` is a ``typer.Typer`` (a group)
    or a command function. ``help`` is the first paragraph ``ventureos --help`` lists, kept equal to the
    real command's (a test compares them)."""

    target: str
    help: str

    def load(self, name: str) -> TyperCommand | TyperGroup:
        module_name, _, attribute = self.target.partition(":")
        obj = getattr(importlib.import_module(module_name), attribute)
        parent = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
        if isinstance(obj, typer.Typer):
            # Through a parent, as ``add_typer`` does: a one-command app stays a group.
            parent.add_typer(obj, name=name)
            group = typer.main.get_command(parent)
            assert isinstance(group, TyperGroup)
            return group.commands[name]
        parent.command(name=name)(obj)
        command = typer.main.get_command(parent)
        assert isinstance(command, TyperCommand)
        return command


LAZY_COMMANDS: dict[str, LazyCommand] = {
    "run": LazyCommand("ventureos.cli.run:app", "Run a flow in-process and print its reconciliation."),
    "feed": LazyCommand("ventureos.cli.feed:app", "The API feed queue (SQS or the local queue)."),
    "quarantine": LazyCommand(
        "ventureos.cli.quarantine:app", "Inspect and replay silver.violations_quarantine."
    ),
    "entity": LazyCommand("ventureos.cli.entity:app", "Company entity resolution."),
    "generate": LazyCommand(
        "ventureos.cli.generate:app", "Write synthetic source files shaped like the real ones."
    ),
    "demo": LazyCommand(
        "ventureos.cli.demo:demo",
        "Stage real OSHA severe-injury reports and EPA ECHO facilities into a fresh embedded home, ingest\n"
        "them, sync gold to the serving store, and show the leaderboards as the API reads them.",
    ),
    "query": LazyCommand("ventureos.cli.query:query", ""),
    "maintain": LazyCommand(
        "ventureos.cli.maintain:maintain",
        "Compact partitions with many small data files, expire snapshots past the retention, remove orphan files.",
    ),
    "serving": LazyCommand(
        "ventureos.cli.serving:app", "The serving store: tables, brand configs, entity reads."
    ),
    "top": LazyCommand("ventureos.cli.serving:top", "Rank bad actors from gold."),
    "serve": LazyCommand(
        "ventureos.cli.serve:serve", "Serve the API at http://HOST:PORT/api/v2 (docs at /api/v2/docs) with uvicorn."
    ),
    "status": LazyCommand(
        "ventureos.cli.status:status",
        "Per dataset: last ingest, last event date, current rows, age vs its cadence, OK/STALE.",
    ),
}


class LazyGroup(TyperGroup):
    """The top-level group: ``LAZY_COMMANDS`` as placeholders until one is resolved to run. Listing
    commands (``--help``) shows the placeholders' help; commands registered on ``app`` directly load
    with the CLI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        eager = dict(self.commands)
        self.commands = {
            name: TyperCommand(name, help=lazy.help) for name, lazy in LAZY_COMMANDS.items()
        } | eager
        self._loaded: set[str] = set()
        self._listing = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self._loaded and not self._listing:
            self.commands[cmd_name] = LAZY_COMMANDS[cmd_name].load(cmd_name)
            self._loaded.add(cmd_name)
        return super().get_command(ctx, cmd_name)


def short_help(command: TyperCommand | TyperGroup) -> str:
    """The first paragraph of a command's help, as ``--help`` lists it."""
    return inspect.cleandoc(command.help or "").split("\n\n")[0].strip()


app = typer.Typer(cls=LazyGroup, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and Prefect's logs on errors."),
) -> None:
    """VentureOS Lakehouse: ingest, normalize and serve US corporate violation records."""
    # ``main`` takes --debug out before parsing (it must act before the command runs); this shows it in help.


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
