"""``ventureos generate DATASET``: synthetic source files for tests and scale runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ventureos.cli.output import console

app = typer.Typer(no_args_is_help=True, help="Write synthetic source files shaped like the real ones.")


@app.command("osha-enforcement")
def osha_enforcement(
    rows: Annotated[int, typer.Option(help="Violations to generate (inspections: about rows / 2.6).")],
    out: Annotated[Path, typer.Option(help="Folder for the CSV files (created if missing).")],
    files: Annotated[int, typer.Option(help="Split into this many inspection/violation file pairs.")] = 1,
    seed: Annotated[int, typer.Option(help="Same seed, same files.")] = 42,
) -> None:
    """osha_inspection*.csv + osha_violation*.csv like the DOL enforcement catalog."""
    from ventureos.generate import generate_osha_enforcement

    generated = generate_osha_enforcement(rows, out, files=files, seed=seed)
    console.print(
        f"{generated.violations} violations ({generated.deleted} with delete_flag D) in "
        f"{len(generated.violation_files)} file(s), inspections in {len(generated.inspection_files)}, "
        f"under {out}"
    )
