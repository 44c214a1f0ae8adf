"""Stage the bundled real sample data into a fresh embedded home, as the daily bronze layout holds it,
and say in words what the demo loaded, what it set aside and why (the text ``ventureos demo`` prints)."""

from __future__ import annotations

import json
import shutil
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from ventureos.layout import daily_prefix
from ventureos.money import format_money
from ventureos.settings import Settings

DEMO_DATE = "2015-10-31"
SAMPLES = resources.files("ventureos") / "data" / "samples"
# What a fresh embedded home must not still hold from an earlier run.
EMBEDDED_STATE = ("lake", "warehouse", "catalog.db", "serving.db", "queue.db")
JSON_FILES = 40
"""Reports staged as one JSON file each (the daily feed's shape); the rest go into one CSV."""


BROKEN_FILE = "truncated-report.json"
"""A report cut mid-record, staged on purpose: the demo shows a broken file quarantined, the rest loaded."""

DEMO_MARK = ".ventureos-demo"
"""Left in a home the demo created: only such a home (or one without lakehouse state) is reset."""


def reset_home(settings: Settings) -> None:
    """Remove only the embedded state this project creates, never anything else in the folder.

    A home holding a lakehouse the demo did not create is refused: the demo must not wipe real data
    because VENTUREOS_HOME pointed at it.
    """
    found = [name for name in EMBEDDED_STATE if (settings.home / name).exists()]
    if found and not (settings.home / DEMO_MARK).exists():
        raise ValueError(
            f"{settings.home} holds a lakehouse the demo did not create ({', '.join(found)}); the demo "
            "starts from an empty home: point VENTUREOS_HOME at another folder, or remove them yourself"
        )
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / DEMO_MARK).touch()
    for name in EMBEDDED_STATE:
        path = settings.home / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def stage_demo(settings: Settings) -> list[Path]:
    """Write the demo's bronze files; returns them."""
    if settings.is_s3:
        raise ValueError("the demo runs on the embedded shape; unset VENTUREOS_LAKE_URI")
    reset_home(settings)
    day = Path(settings.lake) / daily_prefix("osha", "severe_injury", DEMO_DATE)
    day.mkdir(parents=True, exist_ok=True)
    source = SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv"
    reports = pl.read_csv(source.read_bytes(), infer_schema=False)
    written = []
    for record in reports.head(JSON_FILES).to_dicts():
        path = day / f"{record['ID']}.json"
        path.write_text(json.dumps(record, ensure_ascii=False))
        written.append(path)
    rest = day / "severeinjury-rest.csv"
    reports.slice(JSON_FILES).write_csv(rest)
    broken = day / BROKEN_FILE
    broken.write_text('{"ID": "2015999999", "EventDate": "10/31/2015", "Employer": "Half a rec')
    return [*written, rest, broken, stage_echo(settings)]


def stage_echo(settings: Settings) -> Path:
    """The real ECHO exporter sample as one daily CSV: facilities with a penalty become violations."""
    day = Path(settings.lake) / daily_prefix("epa", "echo", DEMO_DATE)
    day.mkdir(parents=True, exist_ok=True)
    path = day / "echo_exporter_sample.csv"
    path.write_bytes((SAMPLES / "epa_echo" / "echo_exporter_sample.csv").read_bytes())
    return path


# What the demo prints --------------------------------------------------------------------------------

WIDTH = 80
"""Every line the demo prints fits an 80-column terminal."""
DATASET_WORDS = {
    "osha/severe_injury": ("OSHA severe injury report", "OSHA severe injury reports"),
    "osha/enforcement": ("OSHA enforcement violation", "OSHA enforcement violations"),
    "faa/enforcement": ("FAA enforcement action", "FAA enforcement actions"),
    "epa/echo": ("EPA ECHO facility", "EPA ECHO facilities"),
    "epa/icis_fec": ("EPA ICIS case conclusion", "EPA ICIS case conclusions"),
}
REASON_WORDS = {
    "no penalty: not a violation": (
        "with no penalty are not violations (ECHO lists every facility it tracks; a penalty makes one"
        " a violation)"
    ),
}
NEXT_COMMANDS = (
    ("ventureos top --by penalty --entity state", "states ranked by penalties"),
    ("ventureos top --agency osha --limit 5", "OSHA's most reported companies"),
    ("ventureos serving get COMPANY#walmart", "one company as the API serves it"),
    ('ventureos entity explain "WAL-MART STORES #3093"', "how a name becomes a company"),
    ('ventureos query "select * from silver_violations_quarantine limit 5"', "the set-aside rows"),
)


def plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def _words(agency: str, dataset: str) -> tuple[str, str]:
    key = f"{agency}/{dataset}"
    return DATASET_WORDS.get(key, (f"{key} record", f"{key} records"))


def dataset_words(agency: str, dataset: str, count: int) -> str:
    """``655 OSHA severe injury reports``, ``1 EPA ECHO facility``."""
    return plural(count, *_words(agency, dataset))


def wrapped(text: str, indent: int = 0) -> list[str]:
    """``text`` as lines of at most ``WIDTH`` characters, continuation lines indented 4 more."""
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 4),
        break_long_words=True,
        break_on_hyphens=False,
    )


def loaded_lines(datasets: list[dict[str, Any]]) -> list[str]:
    """Per dataset of a run report: what was read and how much became violations."""
    lines = []
    for d in sorted(datasets, key=lambda d: (d["agency"], d["dataset"])):
        read = dataset_words(d["agency"], d["dataset"], d["read"])
        lines += wrapped(f"{read}: {d['inserted']:,} loaded as violations", indent=2)
    return lines


def set_aside_lines(quarantine: pl.DataFrame, read: int) -> list[str]:
    """Why rows were set aside, with counts, from quarantine rows ``agency, dataset, reason, source_uri``."""
    if quarantine.is_empty():
        return [f"All {read:,} records became violations; nothing was set aside."]
    lines = wrapped(
        f"Set aside {quarantine.height:,} of {read:,} records (table silver_violations_quarantine):"
    )
    groups = (
        quarantine.with_columns(staged=pl.col("source_uri").str.ends_with(f"/{BROKEN_FILE}"))
        .group_by("agency", "dataset", "reason", "staged")
        .len()
        .sort("len", "agency", "dataset", "reason", descending=[True, False, False, False])
    )
    for agency, dataset, reason, staged, count in groups.iter_rows():
        why = REASON_WORDS.get(reason) or f"quarantined: {reason}"
        if staged:
            why += " (a file the demo truncates on purpose)"
        lines += wrapped(f"{dataset_words(agency, dataset, count)} {why}", indent=2)
    return lines


def penalty_lines(penalized: pl.DataFrame, datasets: list[dict[str, Any]]) -> list[str]:
    """Where the penalties come from (``agency, dataset, n, total`` of violations with a penalty) and
    which loaded datasets carry none."""
    sources = [
        f"{format_money(total)} over {dataset_words(agency, dataset, n)}"
        for agency, dataset, n, total in penalized.iter_rows()
    ]
    with_penalty = set(penalized.select("agency", "dataset").iter_rows())
    without = [
        _words(d["agency"], d["dataset"])[1]
        for d in sorted(datasets, key=lambda d: (d["agency"], d["dataset"]))
        if d["inserted"] and (d["agency"], d["dataset"]) not in with_penalty
    ]
    text = f"Penalties: {'; '.join(sources)}." if sources else "Penalties: none in this sample."
    if without:
        text += f" {' and '.join(without)} carry no penalties."
    return wrapped(text)


LEVEL_WORDS = {"company": ("company", "companies"), "city": ("city", "cities"), "state": ("state", "states")}


def serving_lines(entities: dict[str, int], written: int) -> list[str]:
    """What gold-sync put in the serving store, counted in entities as well as raw items."""
    counted = ", ".join(plural(entities.get(level, 0), *words) for level, words in LEVEL_WORDS.items())
    return wrapped(
        f"Serving store: {counted} ({written:,} items: each entity's profile, stats, yearly series"
        " and top companies per agency and over all agencies, the search index and the leaderboards)."
    )


_COMMAND_COLUMN = 44


def next_lines() -> list[str]:
    """The commands to try next, each with what it shows."""
    lines = ["Next, on this lakehouse:"]
    for command, what in NEXT_COMMANDS:
        if len(command) <= _COMMAND_COLUMN:
            lines += wrapped(f"{command:<{_COMMAND_COLUMN}}  {what}", indent=2)
        else:
            lines += [*wrapped(command, indent=2), *wrapped(what, indent=6)]
    return lines
