"""Stage the bundled real sample data into a fresh embedded home, as the daily bronze layout holds it."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import polars as pl

from ventureos.layout import daily_prefix
from ventureos.settings import Settings

DEMO_DATE = "2015-10-31"
SAMPLES = resources.files("ventureos") / "data" / "samples"
# What a fresh embedded home must not still hold from an earlier run.
EMBEDDED_STATE = ("lake", "warehouse", "catalog.db", "serving.db", "queue.db")
JSON_FILES = 40
"""Reports staged as one JSON file each (the daily feed's shape); the rest go into one CSV."""


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
    broken = day / "truncated-report.json"
    broken.write_text('{"ID": "2015999999", "EventDate": "10/31/2015", "Employer": "Half a rec')
    return [*written, rest, broken, stage_echo(settings)]


def stage_echo(settings: Settings) -> Path:
    """The real ECHO exporter sample as one daily CSV: facilities with a penalty become violations."""
    day = Path(settings.lake) / daily_prefix("epa", "echo", DEMO_DATE)
    day.mkdir(parents=True, exist_ok=True)
    path = day / "echo_exporter_sample.csv"
    path.write_bytes((SAMPLES / "epa_echo" / "echo_exporter_sample.csv").read_bytes())
    return path
