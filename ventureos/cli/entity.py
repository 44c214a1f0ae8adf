"""``ventureos entity explain NAME``: how a company name becomes its entity slug, step by step."""

from __future__ import annotations

from typing import Annotated

import typer

from ventureos.cli.output import console, print_json
from ventureos.entities import explain as explain_name

app = typer.Typer(no_args_is_help=True, help="Company entity resolution.")


@app.command("explain")
def explain(
    name: Annotated[str, typer.Argument(help="Company name as a source spells it.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object (slug, parent, confidence, steps).")
    ] = False,
) -> None:
    """Print the canonicalization steps, the match to a known parent and the resulting slug."""
    result = explain_name(name)
    if as_json:
        print_json(result)
        return
    console.print(f"name: {name!r}")
    for number, step in enumerate(result["steps"], start=1):
        console.print(f"  {number:>2}. {step['step']}: {step['value']!r}", markup=False)
    console.print(f"canonical: {result['canonical']!r}  key: {result['key']!r}", markup=False)
    if result["individual"]:
        console.print("individual (LAST, FIRST): no company slug, never ranked as a company")
        return
    if result["parent"] is None:
        console.print(f"match: none ({result['method']}); slug from the canonical name", markup=False)
    else:
        console.print(
            f"match: {result['method']} on {result['matched']!r} -> parent {result['parent']!r} "
            f"(confidence {result['confidence']})",
            markup=False,
        )
    console.print(f"slug: {result['slug']}", markup=False)
