"""Entity keys: companies, cities and states as the serving layer names them.

``company_slug`` is the deterministic canonical form of a company name (the entity-resolution
issue extends it with parent matching).
"""

from __future__ import annotations

import polars as pl

LEGAL_SUFFIXES = (
    "INCORPORATED", "INC", "CORPORATION", "CORP", "COMPANY", "CO", "LLC", "L L C", "LTD", "LP", "LLP",
    "PLLC", "PC", "THE",
)  # fmt: skip
_SUFFIX_PATTERN = r"(?:\s+(?:" + "|".join(s.replace(" ", r"\s") for s in LEGAL_SUFFIXES) + r"))+$"


def slugify(value: pl.Expr) -> pl.Expr:
    """Lowercase words joined by ``-`` (``Austin`` -> ``austin``, ``St. Louis`` -> ``st-louis``)."""
    return (
        value.str.to_lowercase()
        .str.replace_all(r"&", " and ")
        .str.replace_all(r"[^a-z0-9]+", "-")
        .str.strip_chars("-")
    )


def company_slug(name: pl.Expr) -> pl.Expr:
    """Canonical company key: case, punctuation and legal suffixes removed; null for no name."""
    words = (
        name.str.to_uppercase()
        .str.replace_all(r"\(THE\)|^THE\s+", " ")
        .str.replace_all(r"[.,'\"]", "")
        .str.replace_all(r"[^A-Z0-9&]+", " ")
        .str.strip_chars()
        .str.replace(_SUFFIX_PATTERN, "")
    )
    slug = slugify(words)
    return pl.when(slug != "").then(slug)


def company_key(slug: pl.Expr) -> pl.Expr:
    return pl.lit("COMPANY#") + slug


def city_key(city: pl.Expr, state: pl.Expr) -> pl.Expr:
    return pl.lit("CITY#") + slugify(city) + pl.lit("-") + state.str.to_lowercase()


def state_key(state: pl.Expr) -> pl.Expr:
    return pl.lit("STATE#") + state.str.to_lowercase()
