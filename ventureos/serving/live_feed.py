"""The live feed (``{prefix}-Violations``): the latest 5 violations per agency under each entity.

Only versions from a live source qualify (``ventureos.layout.is_live_source``: daily files and feed
batches; the gatekeeper is the lineage of the version itself, so a historical load can never leak in,
whoever calls this). "Latest" is by event date, then violation id: exactly the SK order
``AGENCY#{agency}#DATE#{YYYY-MM-DD}#{violation_id}``.

A batch is applied as a small diff per touched entity: the entity's stored items, minus the items of
versions the batch closed (updated or deleted violations), plus the batch's new versions, ranked; the
top 5 per agency stay, the rest are deleted. When a closed item leaves a gap, the entity's older live
violations are read back from current silver, so the feed is always exactly the latest min(5, n).
After a historical load, ``refresh_feed`` takes out the live versions the load replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl
from pyiceberg.table import Table

from ventureos.gold import LEVELS, current_silver_of, entity_rows
from ventureos.historical import Load, versions_before_load
from ventureos.layout import from_live_source
from ventureos.schemas import violations_schema
from ventureos.serving.base import LIVE_FEED, Item, ServingStore, from_wire, to_wire
from ventureos.silver import ENTITY_COLUMNS, Scd2Plan, current_versions

FEED_SIZE = 5
QUERY_THREADS = 8
DESCRIPTION_CHARS = 500
FEED_COLUMNS = (
    "violation_id", "agency", "dataset", "event_date", "company_name", "company_slug", "city", "state",
    "violation_type", "penalty_amount", "description", "meta_source_uri", "is_current",
)  # fmt: skip
ITEM_ATTRIBUTES = (
    "violation_id", "agency", "dataset", "event_date", "company_name", "city", "state", "violation_type",
    "penalty_amount", "description",
)  # fmt: skip

SilverReader = Callable[[list[str], list[str], tuple[str, ...]], pl.DataFrame]
"""(company slugs, states, columns) -> current silver rows of those entities."""


@dataclass
class LiveFeedChange:
    entities: int
    written: int
    deleted: int


def live(rows: pl.DataFrame) -> pl.DataFrame:
    """Current versions from daily files or the feed (tombstones and history never show)."""
    return rows.filter(pl.col("is_current") & from_live_source())


def feed_frame(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per (violation, entity it belongs to): ``PK``, ``SK`` and the item's attributes.

    Rows without an event date cannot be ranked by date and stay out of the feed.
    """
    rows = rows.filter(pl.col("event_date").is_not_null())
    keyed = [entity_rows(rows.select(FEED_COLUMNS), level).rename({"entity_key": "PK"}) for level in LEVELS]
    return (
        pl.concat(keyed)
        .with_columns(
            event_date=pl.col("event_date").dt.to_string("%Y-%m-%d"),
            description=pl.col("description").str.slice(0, DESCRIPTION_CHARS),
        )
        .with_columns(SK=pl.format("AGENCY#{}#DATE#{}#{}", "agency", "event_date", "violation_id"))
        .select("PK", "SK", *ITEM_ATTRIBUTES)
    )


def apply_to_feed(
    store: ServingStore,
    added: pl.DataFrame,
    records: pl.DataFrame,
    read_silver: SilverReader,
    present: pl.DataFrame,
) -> LiveFeedChange:
    """Bring the feed of every entity a batch touched to the latest ``FEED_SIZE`` live violations.

    ``added``: the versions the batch wrote; ``records``: ``ENTITY_COLUMNS`` of every record the batch
    touched (``Scd2Plan.touched``); ``present``: the current versions (``FEED_COLUMNS``) of the records
    it left unchanged. Their items are written only when missing or different, and a stored item of any
    of the records that is not its current item goes: so the re-run of a batch whose run crashed before
    this step repairs the feed, and a plain re-run writes nothing.
    """
    new = feed_frame(live(added))
    kept_as_is = feed_frame(live(present))
    touched = pl.concat([entity_rows(records, level).select("entity_key") for level in LEVELS])
    entities = sorted(set(touched["entity_key"]))
    if not entities:
        return LiveFeedChange(0, 0, 0)
    # One query per touched entity, a few in flight at once (boto3 clients are thread-safe; the SQLite
    # store opens a connection per call).
    with ThreadPoolExecutor(max_workers=QUERY_THREADS) as pool:
        partitions = list(pool.map(lambda pk: store.query(LIVE_FEED, pk), entities))
    stored_items = {(i["PK"], i["SK"]): i for items in partitions for i in items}
    stored = pl.DataFrame(
        [{"PK": pk, "SK": sk, "agency": i.get("agency")} for (pk, sk), i in stored_items.items()],
        schema={"PK": pl.String, "SK": pl.String, "agency": pl.String},
    ).with_columns(violation_id=pl.col("SK").str.extract(r"^AGENCY#[^#]*#DATE#[^#]*#(.*)$"))
    keys = ["PK", "SK"]
    # A stored item of one of the batch's records that is not that record's current item is stale
    # (an updated or deleted violation, or a new event date).
    current_items = pl.concat([new, kept_as_is]).select(keys)
    stale = stored.filter(pl.col("violation_id").is_in(records["violation_id"].implode())).join(
        current_items, on=keys, how="anti"
    )
    kept = stored.join(stale, on=keys, how="anti")
    # Where a stored item leaves, the entity's older live violations come back from current silver.
    refill = new.clear()
    if not stale.is_empty():
        gap_rows = records.filter(pl.col("violation_id").is_in(stale["violation_id"].implode()))
        silver = read_silver(
            gap_rows["company_slug"].drop_nulls().unique().to_list(),
            gap_rows["state"].drop_nulls().unique().to_list(),
            FEED_COLUMNS,
        )
        refill = feed_frame(live(silver)).join(
            stale.select("PK", "agency").unique(), on=["PK", "agency"], how="semi"
        )
    # The batch's current items win over what is stored (an update may change attributes, and a crashed
    # run may have left an old item under the same key), stored items over refills.
    candidates = pl.concat(
        [
            new.select(*keys, "agency", origin=pl.lit("new"), priority=pl.lit(0)),
            kept_as_is.select(*keys, "agency", origin=pl.lit("present"), priority=pl.lit(1)),
            kept.select(*keys, "agency", origin=pl.lit("stored"), priority=pl.lit(2)),
            refill.select(*keys, "agency", origin=pl.lit("refill"), priority=pl.lit(3)),
        ]
    )
    wanted = (
        candidates.sort("priority")
        .unique(subset=keys, keep="first")
        .filter(pl.col("SK").rank("ordinal", descending=True).over("PK", "agency") <= FEED_SIZE)
    )
    to_write = pl.concat([new, kept_as_is, refill]).unique(subset=keys, keep="first", maintain_order=True)
    to_write = to_write.join(wanted.filter(pl.col("origin") != "stored"), on=keys, how="semi")
    # An item already stored is rewritten only when its attributes differ.
    items = [
        item
        for item in map(_item, to_write.to_dicts())
        if from_wire(to_wire(item)) != stored_items.get((item["PK"], item["SK"]))
    ]
    to_delete = stored.join(wanted, on=keys, how="anti")
    written = store.put_items(LIVE_FEED, items)
    deleted = store.delete_items(LIVE_FEED, list(to_delete.select(keys).iter_rows()))
    return LiveFeedChange(len(entities), written, deleted)


def refresh_feed(store: ServingStore, gone: pl.DataFrame, read_silver: SilverReader) -> LiveFeedChange:
    """After a bulk change of silver: items of the live versions in ``gone`` (``ENTITY_COLUMNS`` of
    versions that are no longer current) leave the feed, and older live violations of their entities
    fill the gaps."""
    no_versions = pl.DataFrame(schema=violations_schema(FEED_COLUMNS))
    return apply_to_feed(store, no_versions, gone, read_silver, present=no_versions)


def _item(row: dict[str, object]) -> Item:
    return {k: v for k, v in row.items() if v is not None}


def silver_reader(violations: Table) -> SilverReader:
    return lambda slugs, states, columns: current_silver_of(violations, slugs, states, columns)


def update_after_batch(store: ServingStore, violations: Table, plan: Scd2Plan) -> LiveFeedChange:
    """The live feed after a committed daily or feed batch (``plan`` of ``ventureos.ingest``)."""
    if plan.touched.is_empty():
        return LiveFeedChange(0, 0, 0)
    present = current_versions(violations, plan.unchanged["violation_id"].to_list(), FEED_COLUMNS)
    return apply_to_feed(store, plan.added, plan.touched, silver_reader(violations), present)


def refresh_after_load(store: ServingStore, violations: Table, load: Load) -> LiveFeedChange:
    """After a historical load: live violations it updated or removed leave the feed, and older live
    violations of their entities take their places (historical versions never enter it).

    Compared with silver as it was before this run of the load first committed, so a re-run repairs it.
    Only a replace can: an append never replaces a live version (a historical record is older than
    every version with an as-of, ``silver.plan_scd2``), so it reads nothing.
    """
    if load.mode == "append":
        return LiveFeedChange(0, 0, 0)
    before = versions_before_load(violations, load, (*ENTITY_COLUMNS, "valid_from", "meta_source_uri"))
    live_before = before.filter(from_live_source())
    still = current_versions(
        violations, live_before["violation_id"].to_list(), ("violation_id", "valid_from")
    )
    gone = live_before.join(still, on=["violation_id", "valid_from"], how="anti")
    if gone.is_empty():
        return LiveFeedChange(0, 0, 0)
    return refresh_feed(store, gone.select(ENTITY_COLUMNS), silver_reader(violations))
