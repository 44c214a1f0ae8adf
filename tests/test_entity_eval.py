"""Evaluation of company entity resolution on a labeled set of real name variants.

``tests/data/entity_labels.csv`` holds names as the samples spell them (OSHA convenience-store
inspections, severe-injury employers, ECHO facilities, Violation Tracker parents, the FAA README) with
the company each belongs to. Scores are pairwise: a pair of names is predicted "same" when the two
slugs are equal and is truly "same" when the labels are; precision guards against merging different
companies, recall against splitting one.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ventureos.entities import resolve_names

LABELS = Path(__file__).parent / "data" / "entity_labels.csv"


def pairwise_scores(labeled: pl.DataFrame) -> dict[str, float]:
    """Precision and recall of ``slug`` against ``entity`` over all pairs of distinct names."""
    pairs = (
        labeled.with_row_index("i")
        .join(labeled.with_row_index("j"), how="cross")
        .filter(pl.col("i") < pl.col("j"))
        .select(
            same=pl.col("entity") == pl.col("entity_right"),
            predicted=pl.col("slug") == pl.col("slug_right"),
        )
    )
    true_positive = pairs.filter(pl.col("same") & pl.col("predicted")).height
    predicted = pairs["predicted"].sum()
    same = pairs["same"].sum()
    return {
        "precision": true_positive / predicted,
        "recall": true_positive / same,
        "pairs": pairs.height,
        "same_pairs": same,
    }


def test_resolver_precision_and_recall_on_real_variants():
    labels = pl.read_csv(LABELS, infer_schema=False)
    resolved = resolve_names(labels["name"]).select(
        pl.col("company_name").alias("name"), pl.col("company_slug").alias("slug")
    )
    labeled = labels.join(resolved, on="name", how="left")
    assert labeled["slug"].null_count() == 0
    scores = pairwise_scores(labeled)
    print(f"entity resolution on {labels.height} names, {labels['entity'].n_unique()} companies: {scores}")
    assert scores["precision"] >= 0.98
    assert scores["recall"] >= 0.9


def test_no_two_labeled_companies_share_a_slug():
    labels = pl.read_csv(LABELS, infer_schema=False)
    resolved = resolve_names(labels["name"]).select(
        pl.col("company_name").alias("name"), pl.col("company_slug").alias("slug")
    )
    merged = (
        labels.join(resolved, on="name")
        .group_by("slug")
        .agg(pl.col("entity").unique().sort())
        .filter(pl.col("entity").list.len() > 1)
    )
    assert merged.is_empty(), merged.to_dicts()


def test_pairwise_scores_count_merges_and_splits():
    labeled = pl.DataFrame(
        {"entity": ["a", "a", "a", "b"], "slug": ["x", "x", "y", "x"]},
    )
    scores = pairwise_scores(labeled)
    # pairs predicted same: (0,1), (0,3), (1,3) -> one of them truly same; truly same pairs: 3.
    assert scores["precision"] == 1 / 3
    assert scores["recall"] == 1 / 3
