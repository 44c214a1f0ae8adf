"""Benchmark (not a test): historical-load vs the floor vs DuckDB on the same generated input.

    python -m bench.historical_load --rows 2000000      (``make bench ROWS=...``)

Steps, each in its own process so each has its own peak RSS:
(a) pipeline: ``historical-load`` (mode replace) into a fresh embedded lakehouse, end to end (silver,
    buffer files, quarantine, gold rebuild). Prefect's ephemeral API is started before the clock.
(b) floor: Polars ``scan_csv -> sink_parquet`` of the same violation CSV, no transformation.
(c) duckdb: the same normalization in DuckDB SQL (join, dates with fallback, codes, money, ZIP, state,
    details JSON of the non-null fields, quality flags, company slug, md5 record hash) into Parquet.
The last line printed is one JSON object with the throughputs and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ("pipeline", "floor", "duckdb")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_pipeline(source: Path, work: Path) -> float:
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)  # a fresh lakehouse: a finished load would be skipped
    os.environ["VENTUREOS_HOME"] = str(home)
    from prefect import flow

    from flows.historical_load import historical_load

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        """Starts Prefect's ephemeral API outside the timed part."""

    warm_up()
    started = time.perf_counter()
    report = historical_load("osha", "enforcement", str(source), "replace")
    elapsed = time.perf_counter() - started
    if not report["reconciled"] or report["skipped_batches"]:
        raise SystemExit(f"pipeline did not load every batch and reconcile: {report['totals']}")
    return elapsed


def run_floor(source: Path, work: Path) -> float:
    import polars as pl

    started = time.perf_counter()
    pl.scan_csv(source / "osha_violation.csv", infer_schema=False).sink_parquet(work / "floor.parquet")
    return time.perf_counter() - started


DUCKDB_SQL = """
COPY (
  WITH v AS (SELECT * FROM read_csv('{violations}', all_varchar = true)),
  i AS (
    SELECT * FROM read_csv('{inspections}', all_varchar = true)
    QUALIFY row_number() OVER (PARTITION BY activity_nr) = 1
  ),
  j AS (
    SELECT v.*, i.estab_name, i.site_address, i.site_city, i.site_state, i.site_zip,
           i.naics_code, i.open_date, i.insp_type, i.insp_scope, i.owner_type, i.sic_code, i.reporting_id,
           i.activity_nr IS NOT NULL AS found,
           coalesce(try_strptime(v.issuance_date, '%Y%m%d'), try_strptime(v.issuance_date, '%Y-%m-%d'))::DATE
             AS issued,
           coalesce(try_strptime(i.open_date, '%Y%m%d'), try_strptime(i.open_date, '%Y-%m-%d'))::DATE AS opened
    FROM v LEFT JOIN i USING (activity_nr)
  ),
  n AS (
    SELECT
      'osha:enforcement:' || activity_nr || '-' || citation_id AS violation_id,
      activity_nr || '-' || citation_id AS source_id,
      coalesce(issued, opened) AS event_date,
      trim(estab_name) AS company_name,
      trim(site_address) AS address,
      upper(trim(site_city)) AS city,
      CASE WHEN length(trim(site_state)) = 2 THEN upper(trim(site_state)) END AS state,
      lpad(regexp_extract(trim(site_zip), '^(\\d{{3,5}})', 1), 5, '0') AS zip,
      regexp_replace(naics_code, '\\.0+$', '') AS naics_code,
      CASE upper(viol_type) WHEN 'S' THEN 'serious' WHEN 'W' THEN 'willful' WHEN 'R' THEN 'repeat'
        WHEN 'O' THEN 'other' END AS violation_type,
      round(try_cast(regexp_replace(current_penalty, '[$,\\s]', '', 'g') AS DOUBLE), 2)::DECIMAL(18, 2)
        AS penalty_amount,
      round(try_cast(regexp_replace(initial_penalty, '[$,\\s]', '', 'g') AS DOUBLE), 2)::DECIMAL(18, 2)
        AS initial_penalty,
      standard AS description,
      {details} AS violation_details,
      list_filter([
        CASE WHEN issued IS NULL AND opened IS NOT NULL THEN 'event_date_fallback' END,
        CASE WHEN NOT found THEN 'missing_inspection' END,
        CASE WHEN estab_name IS NULL THEN 'missing_company' END,
        CASE WHEN site_state IS NULL THEN 'unknown_state' END,
        'missing_coordinates',
        CASE WHEN site_zip IS NULL THEN 'invalid_zip' END,
        CASE WHEN site_city IS NULL THEN 'missing_city' END,
        CASE WHEN naics_code IS NULL THEN 'missing_naics' END], lambda x: x IS NOT NULL) AS quality_issues,
      regexp_replace(regexp_replace(lower(regexp_replace(upper(trim(estab_name)),
        '(\\s+(INC|CORP|CORPORATION|CO|LLC|LTD|LP|COMPANY|THE))+$', '')), '[^a-z0-9]+', '-', 'g'),
        '^-+|-+$', '', 'g') AS company_slug,
      upper(coalesce(delete_flag, '')) = 'D' AS is_deleted
    FROM j
    WHERE activity_nr IS NOT NULL AND citation_id IS NOT NULL AND coalesce(issued, opened) IS NOT NULL
  )
  SELECT *, md5(concat_ws(chr(31), source_id, coalesce(event_date::VARCHAR, chr(0)),
    coalesce(company_name, chr(0)), coalesce(address, chr(0)), coalesce(city, chr(0)),
    coalesce(state, chr(0)), coalesce(zip, chr(0)), coalesce(naics_code, chr(0)),
    coalesce(violation_type, chr(0)), coalesce(penalty_amount::VARCHAR, chr(0)),
    coalesce(initial_penalty::VARCHAR, chr(0)), coalesce(description, chr(0)), violation_details,
    is_deleted::VARCHAR)) AS record_hash
  FROM n WHERE NOT is_deleted
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
"""


# The violation's unmapped fields, then the inspection's: what the pipeline keeps in violation_details.
DETAILS_FIELDS = (
    "abate_date", "abate_complete", "contest_date", "final_order_date", "nr_instances", "nr_exposed", "rec",
    "gravity", "emphasis", "hazcat", "fta_insp_nr", "fta_issuance_date", "fta_penalty", "fta_contest_date",
    "fta_final_order_date", "hazsub1", "load_dt", "open_date", "insp_type", "insp_scope", "owner_type",
    "sic_code", "reporting_id",
)  # fmt: skip


def details_sql() -> str:
    """JSON object of the non-null fields: DuckDB's fastest way measured here (to_json of a struct
    keeps nulls; a filtered map or json_merge_patch were 2-5x slower)."""
    members = ", ".join(
        f"CASE WHEN {f} IS NOT NULL THEN '\"{f}\":' || to_json({f}) END" for f in DETAILS_FIELDS
    )
    return f"'{{' || concat_ws(',', {members}) || '}}'"


def run_duckdb(source: Path, work: Path) -> float:
    import duckdb

    sql = DUCKDB_SQL.format(
        violations=source / "osha_violation.csv",
        inspections=source / "osha_inspection.csv",
        out=work / "duckdb.parquet",
        details=details_sql(),
    )
    started = time.perf_counter()
    duckdb.connect().execute(sql)
    return time.perf_counter() - started


def child(step: str, source: Path, work: Path) -> None:
    """One step in this process: prints its seconds and peak RSS as JSON."""
    seconds = {"pipeline": run_pipeline, "floor": run_floor, "duckdb": run_duckdb}[step](source, work)
    print(json.dumps({"step": step, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def measure(step: str, source: Path, work: Path) -> dict[str, float]:
    env = os.environ | {"PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    out = subprocess.run(
        [sys.executable, "-m", "bench.historical_load", "--step", step, "--source", str(source),
         "--work", str(work)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--work", type=Path, help="Scratch folder (default: a new temporary one).")
    parser.add_argument(
        "--batch-rows", type=int, help="VENTUREOS_BATCH_ROWS for the pipeline (default: the setting's)."
    )
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        child(args.step, args.source, args.work)
        return

    from ventureos.generate import generate_osha_enforcement

    if args.batch_rows:
        os.environ["VENTUREOS_BATCH_ROWS"] = str(args.batch_rows)
    from ventureos.settings import load_settings

    batch_rows = load_settings().batch_rows
    work = args.work or Path(tempfile.mkdtemp(prefix="ventureos-bench-"))
    source = work / f"input-{args.rows}"
    if not (source / "osha_violation.csv").exists():
        print(f"generating {args.rows} violations under {source} ...", flush=True)
        generate_osha_enforcement(args.rows, source)
    results = {}
    for step in STEPS:
        step_work = work / step
        step_work.mkdir(parents=True, exist_ok=True)
        print(f"running {step} ...", flush=True)
        results[step] = measure(step, source, step_work)
    rate = {step: args.rows / r["seconds"] for step, r in results.items()}
    print(f"\nrows {args.rows:,}, pipeline batch_rows {batch_rows:,}, {os.cpu_count()} CPUs")
    print(f"{'step':<10}{'seconds':>10}{'rows/s':>14}{'peak RSS MB':>14}")
    for step, r in results.items():
        print(f"{step:<10}{r['seconds']:>10.2f}{rate[step]:>14,.0f}{r['peak_rss_mb']:>14,.0f}")
    print(
        json.dumps(
            {
                "rows": args.rows,
                "batch_rows": batch_rows,
                "pipeline_rows_per_s": round(rate["pipeline"]),
                "floor_rows_per_s": round(rate["floor"]),
                "duckdb_rows_per_s": round(rate["duckdb"]),
                "pipeline_peak_rss_mb": round(results["pipeline"]["peak_rss_mb"]),
                "ratio_vs_floor": round(rate["pipeline"] / rate["floor"], 3),
                "ratio_vs_duckdb": round(rate["pipeline"] / rate["duckdb"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
