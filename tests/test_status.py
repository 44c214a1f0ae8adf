"""A missing or stale dataset is visible: daily-ingest's state, exit code and artifact, and `ventureos status`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.daily_ingest import daily_ingest
from flows.status import ARTIFACT_KEY, status
from ventureos.lakehouse import current_lakehouse
from ventureos.settings import SettingsError, load_settings
from ventureos.status import cadences, expected_daily

from .conftest import BUNDLED_SAMPLES, run_cli

DAY = "2024-03-05"
ONLY_SEVERE_INJURY_DAILY = (
    "osha/severe_injury=1,osha/enforcement=0,faa/enforcement=0,epa/echo=0,epa/icis_fec=0"
)


def stage_severe_injury(day: str, rows: int = 10) -> None:
    reports = pl.read_csv(
        BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False
    )
    key = f"bronze/daily/osha/severe_injury/{day}/reports.csv"
    current_lakehouse().storage.write_bytes(key, reports.head(rows).write_csv().encode())


def artifacts_of(flow_run_id: Any) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def test_default_cadences_expect_osha_enforcement_daily(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert cadences(settings) == {
        "osha/severe_injury": 31,
        "osha/enforcement": 1,
        "faa/enforcement": 7,
        "epa/echo": 7,
        "epa/icis_fec": 7,
    }
    assert expected_daily(settings) == ["osha/enforcement"]
    assert expected_daily(settings, "osha", "severe_injury") == []
    assert expected_daily(settings, "epa") == []
    monkeypatch.setenv("VENTUREOS_DATASET_CADENCE_DAYS", "faa/enforcement=1, osha/enforcement=0")
    overridden = load_settings()
    assert cadences(overridden)["osha/enforcement"] is None
    assert expected_daily(overridden) == ["faa/enforcement"]
    monkeypatch.setenv("VENTUREOS_DATASET_CADENCE_DAYS", "faa/enforcment=1")
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) faa/enforcment"):
        cadences(load_settings())
    monkeypatch.setenv("VENTUREOS_DATASET_CADENCE_DAYS", "faa/enforcement=daily")
    with pytest.raises(SettingsError, match="VENTUREOS_DATASET_CADENCE_DAYS"):
        load_settings()


@pytest.mark.usefixtures("prefect_harness")
def test_a_day_missing_an_expected_dataset_is_incomplete(home: Path) -> None:
    stage_severe_injury(DAY)
    state = daily_ingest(DAY, return_state=True)
    assert (state.type.value, state.name) == ("COMPLETED", "Incomplete")
    assert state.message == f"expected dataset(s) missing for {DAY}: osha/enforcement"
    report = state.result()
    assert report["totals"]["inserted"] == 10  # what arrived is loaded
    assert report["missing_datasets"] == ["osha/enforcement"]
    warning = f"expected dataset osha/enforcement missing: no files under bronze/daily/osha/enforcement/{DAY}"
    assert report["warnings"] == [warning]
    markdown = artifacts_of(state.state_details.flow_run_id)["daily-ingest-all-all-report"].data
    assert f"## Warnings\n\n- {warning}" in markdown

    # A day with nothing at all says both.
    empty = daily_ingest("2024-03-06", return_state=True)
    assert empty.name == "Incomplete"
    assert empty.result()["warnings"] == [
        "no bronze files under bronze/daily/*/*/2024-03-06",
        "expected dataset osha/enforcement missing: no files under bronze/daily/osha/enforcement/2024-03-06",
    ]


@pytest.mark.usefixtures("prefect_harness")
def test_a_day_with_every_expected_dataset_is_a_plain_success(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENTUREOS_DATASET_CADENCE_DAYS", ONLY_SEVERE_INJURY_DAILY)
    stage_severe_injury(DAY)
    state = daily_ingest(DAY, return_state=True)
    assert (state.type.value, state.name) == ("COMPLETED", "Completed")
    assert "missing_datasets" not in state.result()
    markdown = artifacts_of(state.state_details.flow_run_id)["daily-ingest-all-all-report"].data
    assert "Warnings" not in markdown
    # A selection that leaves the expected dataset out expects nothing of it.
    assert daily_ingest(DAY, agency="epa", return_state=True).name == "Completed"


@pytest.mark.usefixtures("prefect_harness")
def test_cli_exits_3_and_says_which_dataset_is_missing(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stage_severe_injury(DAY)
    assert run_cli("run", "daily-ingest", "--date", DAY) == 3
    out = capsys.readouterr().out
    assert (
        f"expected dataset osha/enforcement missing: no files under bronze/daily/osha/enforcement/{DAY}"
        in (out.replace("\n", ""))
    )
    assert run_cli("run", "daily-ingest", "--date", DAY, "--json") == 3
    assert json.loads(capsys.readouterr().out)["missing_datasets"] == ["osha/enforcement"]
    monkeypatch.setenv("VENTUREOS_DATASET_CADENCE_DAYS", ONLY_SEVERE_INJURY_DAILY)
    assert run_cli("run", "daily-ingest", "--date", DAY, "--json") == 0


def status_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code = run_cli("status", "--json", *args)
    out = json.loads(capsys.readouterr().out)
    return code, {f"{d['agency']}/{d['dataset']}": d for d in out["datasets"]}


@pytest.mark.usefixtures("prefect_harness")
def test_status_is_stale_past_cadence_plus_grace(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VENTUREOS_DATASET_CADENCE_DAYS", ONLY_SEVERE_INJURY_DAILY)
    code, before = status_json(capsys)
    assert code == 3  # never ingested
    assert (
        before["osha/severe_injury"] | {"status": "STALE", "last_ingest": None, "current_rows": 0}
        == (before["osha/severe_injury"])
    )
    assert before["epa/echo"]["status"] == "UNTRACKED"

    stage_severe_injury(DAY, rows=10)
    daily_ingest(DAY)
    ingested = datetime.fromisoformat(status_json(capsys)[1]["osha/severe_injury"]["last_ingest"])

    # Cadence 1 day + 6 h grace: fresh at 29 h, stale at 31 h.
    code, fresh = status_json(capsys, "--at", (ingested + timedelta(hours=29)).isoformat())
    assert code == 0
    assert fresh["osha/severe_injury"] == {
        "agency": "osha",
        "dataset": "severe_injury",
        "cadence_days": 1,
        "last_ingest": ingested.isoformat(),
        "last_event_date": "2015-01-02",
        "current_rows": 10,
        "last_delivery": DAY,
        "age_hours": 29.0,
        "status": "OK",
    }
    code, late = status_json(capsys, "--at", (ingested + timedelta(hours=31)).isoformat())
    assert code == 3
    assert (late["osha/severe_injury"]["status"], late["osha/severe_injury"]["age_hours"]) == ("STALE", 31.0)

    # The table form names what is stale.
    assert run_cli("status", "--at", (ingested + timedelta(hours=31)).isoformat()) == 3
    assert "stale: osha/severe_injury (last ingest 31 h ago; expected every 1 d)" in capsys.readouterr().out

    # The status flow: a Failed run while stale (so automations alert), Completed when fresh.
    failed = status(at=(ingested + timedelta(hours=31)).isoformat(), return_state=True)
    assert failed.type.value == "FAILED"
    assert failed.message.endswith("stale: osha/severe_injury (last ingest 31 h ago; expected every 1 d)")
    artifact = artifacts_of(failed.state_details.flow_run_id)[ARTIFACT_KEY].data
    assert "| osha/severe_injury | STALE | 1 |" in artifact
    ok = status(at=(ingested + timedelta(hours=2)).isoformat(), return_state=True)
    assert ok.type.value == "COMPLETED"
    assert {d["dataset"]: d["status"] for d in ok.result()}["severe_injury"] == "OK"
