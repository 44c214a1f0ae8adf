"""``ventureos serving ...`` (create tables, load brand configs, read an entity) and ``ventureos top``."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import polars as pl
import typer

from normalizers import REGISTRY
from ventureos.cli.output import console, print_frame, print_json
from ventureos.gold import ALL, top_entities
from ventureos.lakehouse import current_lakehouse
from ventureos.serving import ENTITIES, LIVE_FEED, ServingStore, open_store
from ventureos.serving.projects import load_projects

app = typer.Typer(no_args_is_help=True, help="The serving store: tables, brand configs, entity reads.")


class Entity(StrEnum):
    company = "company"
    city = "city"
    state = "state"


class Ranking(StrEnum):
    count = "count"
    penalty = "penalty"


def store() -> ServingStore:
    return open_store(current_lakehouse().settings)


@app.command("init")
def init() -> None:
    """Create the Entities, Violations and Projects tables (DynamoDB on-demand); idempotent."""
    serving = store()
    created = serving.create_tables()
    for table in ("Entities", "Violations", "Projects"):
        name = serving.table_name(table)
        console.print(f"{name}: {'created' if name in created else 'exists'}")


@app.command("load-projects")
def load_projects_command() -> None:
    """Write the brand configs of ventureos/data/projects/*.json to the Projects table."""
    serving = store()
    serving.create_tables()
    for key in load_projects(serving):
        console.print(f"loaded {key}")


ENTITY_LEVELS = ("COMPANY", "CITY", "STATE")


def entity_key_of(text: str) -> str:
    """``company#Walmart`` -> ``COMPANY#walmart``: keys are an upper-case level and a lower-case slug."""
    level, _, slug = (text[len("ENTITY#") :] if text.upper().startswith("ENTITY#") else text).partition("#")
    if level.upper() not in ENTITY_LEVELS or not slug:
        raise typer.BadParameter(
            f"{text!r} is not an entity key: COMPANY#<slug>, CITY#<city>-<state> or STATE#<code>,"
            " e.g. COMPANY#walmart, CITY#austin-tx, STATE#tx",
            param_hint="ENTITY_KEY",
        )
    return f"{level.upper()}#{slug.lower()}"


def entity_items(serving: ServingStore, key: str) -> list[dict[str, Any]]:
    """Every stored item of an entity: its Entities items, then its live feed (newest first)."""
    return serving.query(ENTITIES, key) + serving.query(LIVE_FEED, key)[::-1]


def jsonable(value: Any) -> Any:
    """Exact decimals as JSON numbers (the store returns whole numbers as int already)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


@app.command("get")
def get(
    entity_key: Annotated[
        str, typer.Argument(help="Entity key, e.g. COMPANY#walmart, CITY#austin-tx, STATE#tx.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object with every item.")] = False,
) -> None:
    """Metadata, stats and the recent feed of one entity, as the API reads them."""
    entity_key = entity_key_of(entity_key)
    items = entity_items(store(), entity_key)
    if as_json:
        print_json({"entity_key": entity_key, "items": [jsonable(i) for i in items]})
        return
    if not items:
        raise typer.BadParameter(
            f"no serving items for {entity_key} (a company that has violations? then run gold-sync)",
            param_hint="ENTITY_KEY",
        )
    metadata = next((i for i in items if i["SK"] == "METADATA"), {})
    console.print(
        f"[bold]{metadata.get('name', entity_key)}[/bold]  {entity_key}  ({metadata.get('entity_type', '?')})"
    )
    stats = [i for i in items if i["SK"].startswith("STATS#")]
    if stats:
        print_frame(
            pl.DataFrame(
                [
                    {
                        "agency": i["agency"],
                        "violations": i["total_violations"],
                        "penalties": str(i["total_penalties"]),
                        "first": i.get("first_violation_date"),
                        "last": i.get("last_violation_date"),
                    }
                    for i in stats
                ]
            ),
            title="Stats",
        )
    feed = [i for i in items if i["SK"].startswith("AGENCY#")]
    if feed:
        print_frame(
            pl.DataFrame(
                [
                    {
                        "date": i["event_date"],
                        "agency": i["agency"],
                        "company": i.get("company_name"),
                        "type": i.get("violation_type"),
                        "penalty": str(i.get("penalty_amount", "")),
                        "violation_id": i["violation_id"],
                    }
                    for i in feed
                ]
            ),
            title="Recent violations",
        )


def serving_top(level: str, agency: str = ALL, by: str = "count", limit: int = 10) -> pl.DataFrame:
    """The ranking's entities as the serving store holds them (name from METADATA, stats from STATS#)."""
    serving = store()
    rows = []
    for key in top_entities(current_lakehouse().catalog, level, agency, by, limit)["entity_key"]:
        stats = serving.get_item(ENTITIES, key, f"STATS#{agency}") or {}
        metadata = serving.get_item(ENTITIES, key, "METADATA") or {}
        rows.append(
            {
                "entity_key": key,
                "name": metadata.get("name"),
                "violations": stats.get("total_violations"),
                "penalties": str(stats.get("total_penalties", "")),
                "last_violation": stats.get("last_violation_date"),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "entity_key": pl.String,
            "name": pl.String,
            "violations": pl.Int64,
            "penalties": pl.String,
            "last_violation": pl.String,
        },
    )


def top(
    agency: Annotated[str, typer.Option(help="One agency (osha, faa, epa) or all.")] = ALL,
    by: Annotated[Ranking, typer.Option(help="Rank by violation count or penalty total.")] = Ranking.count,
    entity: Annotated[Entity, typer.Option(help="Rank companies, cities or states.")] = Entity.company,
    limit: Annotated[int, typer.Option(min=1, help="How many to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Rows as a JSON list.")] = False,
) -> None:
    """Rank bad actors from gold."""
    agencies = sorted({d.agency for d in REGISTRY.values()})
    if agency.lower() not in (ALL, *agencies):
        raise typer.BadParameter(f"unknown agency {agency!r}; one of {', '.join(agencies)} or {ALL}")
    ranked = top_entities(current_lakehouse().catalog, entity.value, agency.lower(), by.value, limit)
    if as_json:
        print_json([jsonable(row) for row in ranked.to_dicts()])
    elif ranked.is_empty():
        console.print(f"no {entity.value} stats for agency {agency!r}")
    else:
        print_frame(ranked, title=f"Top {ranked.height} {entity.value} by {by.value} ({agency})")
