"""The partial aggregates gold rolls up from: moved by silver's net change, exact, caught up after lost runs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from ventureos.gold import GOLD_TABLES, LEVELS, Partials, advance_partials, update_gold_tables
from ventureos.gold_state import silver_changes, state_table, stored_state
from ventureos.invariants import check_gold_at_scale, partials_are_current_silver, read_silver
from ventureos.lakehouse import current_lakehouse
from ventureos.maintenance import compact_table
from ventureos.silver import Scd2Plan, commit_scd2, current_versions, encode_versions, plan_scd2

from .test_gold import T1, T2, T3, apply, assert_gold_equals_current_silver, commits, edit, real_rows


def commit_silver(incoming: pl.DataFrame, now: datetime) -> Scd2Plan:
    """A run whose silver commit landed and whose gold step never ran (crashed, or still to come)."""
    table = current_lakehouse().violations()
    plan = plan_scd2(incoming, current_versions(table, incoming["violation_id"].to_list()), now, "run")
    commit_scd2(table, plan, encode_versions(table, plan))
    return plan


def state_commits() -> int:
    return len(state_table(current_lakehouse().catalog).snapshots())


def assert_partials_are_current_silver() -> None:
    lakehouse = current_lakehouse()
    assert stored_state(lakehouse.catalog)[1] == lakehouse.violations().current_snapshot().snapshot_id
    assert check_gold_at_scale(lakehouse) == []


def test_partials_move_by_silvers_net_change_across_commits_gold_never_saw(home: Path) -> None:
    base = real_rows(40)
    ids = base["source_id"].to_list()
    acme = {"company_slug": "acme", "company_name": "Acme", "state": "TX", "city": "AUSTIN"}
    base = edit(base, ids[1], **acme, event_date=date(2015, 1, 5), penalty_amount=Decimal("1000.00"))
    base = edit(base, ids[2], **acme, event_date=date(2015, 2, 10), penalty_amount=Decimal("2500.50"))
    base = edit(base, ids[3], **acme, event_date=date(2015, 3, 15), penalty_amount=Decimal("10.00"))
    apply(base, T1)  # no stored partials yet: computed from a scan of silver
    assert_partials_are_current_silver()
    lakehouse = current_lakehouse()

    # Two runs commit silver and neither reaches its gold step: the earliest and the latest Acme
    # violations withdrawn (the group's first and last dates held by removed rows), a penalty
    # reduced, and a new company.
    second = edit(base, ids[2], penalty_amount=Decimal("500.00")).with_columns(
        is_deleted=pl.col("source_id").is_in([ids[1], ids[3]])
    )
    commit_silver(second, T2)
    third = edit(
        base.filter(pl.col("source_id") == ids[20]), ids[20], company_slug="initech", company_name="Initech"
    )
    third_plan = commit_silver(third, T2)

    partials, changed = advance_partials(lakehouse.catalog, lakehouse.violations())
    assert changed is not None and not partials.stored
    moved_from = f"COMPANY#{base.filter(pl.col('source_id') == ids[20])['company_slug'].item()}"
    assert changed["company"] == {"COMPANY#acme", "COMPANY#initech", moved_from}
    acme = partials.frames[GOLD_TABLES["company"]].filter(pl.col("entity_key") == "COMPANY#acme")
    assert acme.select("agency", "violation_count", "penalty_total").rows() == [
        ("osha", 1, Decimal("500.00"))
    ]
    # Its first and last dates were held by withdrawn rows: recomputed from the company's rows.
    assert acme.select("first_event_date", "last_event_date").row(0) == (date(2015, 2, 10), date(2015, 2, 10))

    # The gold step of the last run brings gold and the partials to silver, the lost run included.
    assert any(problem.startswith("gold.company_stats") for problem in check_gold_at_scale(lakehouse))
    update_gold_tables(lakehouse.catalog, lakehouse.violations(), third_plan, T3)
    assert_partials_are_current_silver()
    assert_gold_equals_current_silver()

    # A retry finds the partials stored for this snapshot: nothing to apply, no commit.
    commits = state_commits()
    again, unchanged = advance_partials(lakehouse.catalog, current_lakehouse().violations())
    assert again.stored and unchanged == {level: set() for level in LEVELS}
    update_gold_tables(
        lakehouse.catalog, lakehouse.violations(), third_plan, datetime(2024, 1, 4, tzinfo=UTC)
    )
    assert state_commits() == commits


def test_partials_stored_for_a_snapshot_silver_no_longer_holds_are_rescanned(home: Path) -> None:
    rows = real_rows(20)
    apply(rows, T1)
    lakehouse = current_lakehouse()
    stored, _ = advance_partials(lakehouse.catalog, lakehouse.violations())
    # E.g. the snapshot was expired, or a historical load swapped silver: the marker leads nowhere.
    empty = {name: frame.clear() for name, frame in stored.frames.items()}
    Partials(empty, snapshot_id=123, stored=False).store(lakehouse.catalog)
    current = read_silver(lakehouse).filter("is_current")
    assert partials_are_current_silver(lakehouse, current) == []  # not this snapshot's: not checked

    plan = commit_silver(edit(rows, rows["source_id"][0], penalty_amount=Decimal("42.00")), T2)
    rescanned, changed = advance_partials(lakehouse.catalog, lakehouse.violations())
    # Compared with the stored partials (none here): every company changed.
    assert changed is not None
    assert changed["company"] == {f"COMPANY#{slug}" for slug in current["company_slug"].drop_nulls()}
    assert rescanned.frames[GOLD_TABLES["state"]].height > 0
    update_gold_tables(lakehouse.catalog, lakehouse.violations(), plan, T3)
    assert_partials_are_current_silver()
    assert_gold_equals_current_silver()


def test_a_compaction_changes_no_partial_and_no_gold_row(home: Path) -> None:
    rows = real_rows(30)
    for day, part in enumerate((rows.head(10), rows.slice(10, 10), rows.slice(20)), start=1):
        apply(part, datetime(2024, 1, day, tzinfo=UTC))
    lakehouse = current_lakehouse()
    marker = stored_state(lakehouse.catalog)[1]
    assert compact_table(lakehouse.violations(), small_file_bytes=1 << 30, min_files=2) > 0
    # Not one file read: the compaction's snapshot is no change (after maintain it would be all of them).
    assert silver_changes(lakehouse.violations(), marker) == ([], [])
    partials, changed = advance_partials(lakehouse.catalog, lakehouse.violations())
    assert changed == {level: set() for level in LEVELS} and not partials.stored
    before = {level: commits(level) for level in LEVELS}
    plan = commit_silver(edit(rows, rows["source_id"][0], penalty_amount=Decimal("7.00")), T3)
    update_gold_tables(lakehouse.catalog, lakehouse.violations(), plan, T3)
    assert_partials_are_current_silver()
    assert_gold_equals_current_silver()
    assert {level: commits(level) - before[level] for level in LEVELS} == dict.fromkeys(LEVELS, 1)


def test_a_compaction_of_files_added_since_the_partials_is_read_as_a_change(home: Path) -> None:
    """Rows committed after the stored partials (their gold step never ran), compacted, then a row of
    the compacted file edited: the compaction is read, or those rows would be added twice (from their
    own file and the compacted one) and cancel against one removal."""
    rows = real_rows(30)
    apply(rows.head(10), T1)
    commit_silver(rows.slice(10, 20), T2)
    lakehouse = current_lakehouse()
    assert compact_table(lakehouse.violations(), small_file_bytes=1 << 30, min_files=2) > 0
    plan = commit_silver(edit(rows, rows["source_id"][12], penalty_amount=Decimal("7.00")), T3)
    update_gold_tables(lakehouse.catalog, lakehouse.violations(), plan, T3)
    assert_partials_are_current_silver()
    assert_gold_equals_current_silver()


def test_partials_that_cannot_hold_the_removed_rows_are_rescanned(home: Path) -> None:
    """E.g. a deploy changed how spellings are derived: the stored partials name a spelling the rows a
    change removes no longer map to. Subtracting would lose them; the partials are scanned again."""
    rows = real_rows(20)
    apply(rows, T1)
    lakehouse = current_lakehouse()
    stored, _ = advance_partials(lakehouse.catalog, lakehouse.violations())
    company = GOLD_TABLES["company"]
    renamed = stored.frames[company].with_columns(_spelling=pl.lit("AN OLD SPELLING"))
    frames = {**stored.frames, company: renamed}
    Partials(frames, stored.snapshot_id, stored=False).store(lakehouse.catalog)

    first = rows["source_id"][0]
    plan = commit_silver(edit(rows, first, penalty_amount=Decimal("3.00")), T2)
    rescanned, changed = advance_partials(lakehouse.catalog, lakehouse.violations())
    assert "AN OLD SPELLING" not in rescanned.frames[company]["_spelling"].to_list()
    # Every company's partials differed from the stored ones.
    assert changed is not None
    assert changed["company"] == set(stored.frames[company]["entity_key"].to_list())
    update_gold_tables(lakehouse.catalog, lakehouse.violations(), plan, T3)
    assert_partials_are_current_silver()
    assert_gold_equals_current_silver()
