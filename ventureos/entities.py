"""Entity keys (companies, cities, states) and company entity resolution.

A company name becomes an entity in three deterministic stages, all evaluated on the UNIQUE names of a
frame and joined back, so multi-million-row loads pay per distinct name, not per row:

1. canonicalization (pure Polars string expressions, ``CANONICAL_STEPS``): case, accents, ``(THE)``,
   ``DBA`` names, location prefixes and tails (``0423-``, ``- GOLDEN VALLEY``), store numbers
   (``#343``, ``STORE 12``, ``KROGER 381``), punctuation, ``&``/``AND`` and legal suffixes;
2. matching to known parents from the curated files in ``ventureos/data/entities/`` (``parents.csv``
   from Violation Tracker, ``aliases.csv`` hand-curated): an exact join on the spacing-free key, then
   the longest known prefix of whole words (``WAL MART PUERTO RICO`` -> Walmart), then fuzzy matching
   (rapidfuzz, cached) of the names still unresolved, guarded so that different companies that share
   words (``AMERICAN AIRLINES`` vs ``AMERICAN EAGLE AIRLINES``) never merge;
3. the slug: the parent's slug when matched, else the slug of the canonical name. Individuals
   (``LEPPING, KURT M``) get no company slug, so they never rank as companies.

The evidence (canonical name, method, matched key, parent, confidence) goes into
``violation_details`` under ``"entity"``; ``explain`` shows every step for one name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import polars as pl
from rapidfuzz import fuzz, process
from slugify import slugify as ascii_words

DATA = resources.files("ventureos") / "data" / "entities"

LEGAL_SUFFIXES = (
    "INCORPORATED", "INC", "CORPORATION", "CORP", "COMPANY", "COMPANIES", "CO", "LLC", "L L C", "LTD",
    "LIMITED PARTNERSHIP", "LIMITED", "LP", "L P", "LLP", "PLLC", "PC", "PLC", "HOLDINGS", "HOLDING", "THE",
    "USA", "U S A",
)  # fmt: skip
# Words after which a name goes on with a division or site ("TREND TECHNOLOGIES INC COLORADO DIV").
_ENTITY_ENDS = ("INCORPORATED", "INC", "CORPORATION", "CORP", "LLC", "LTD", "LIMITED")
_SUFFIX_PATTERN = r"(?:\s+(?:" + "|".join(s.replace(" ", r"\s") for s in LEGAL_SUFFIXES) + r"))+$"
_TRUNCATE_PATTERN = r"^(.+?\s(?:" + "|".join(_ENTITY_ENDS) + r"))\s.*$"
# Words that make "X, Y" an organization, not a person ("GREENVILLE, CITY OF").
NON_PERSON_WORDS = (
    "DBA", "AND", "OF", "CITY", "COUNTY", "TOWN", "TOWNSHIP", "VILLAGE", "STATE", "DEPT", "SCHOOL", "DISTRICT",
    "UNIVERSITY", "BOARD", "AUTHORITY", "US", "UNITED", "AVIATION", "AIR", "AIRLINES", "SERVICES", "SERVICE",
    # Regional and group tails of companies ("SCAPA, NA" is Scapa North America).
    "NA", "AMERICA", "AMERICAS", "GROUP", "INTERNATIONAL", "INTL",
)  # fmt: skip
_BUSINESS_WORDS = (
    r"\b(?:" + "|".join(s.replace(" ", r"\s") for s in (*LEGAL_SUFFIXES, *NON_PERSON_WORDS)) + r")\b"
)
# "LAST, FIRST M" (optionally Jr/Sr/II): how agencies list people among companies.
_PERSON_PATTERN = (
    r"^[A-Z][A-Z'\-]*(?:\s[A-Z][A-Z'\-]*)?(?:\s(?:JR|SR|II|III|IV))?\.?,\s*[A-Z][A-Z'\-]*"
    r"(?:\s[A-Z][A-Z'\-]*)?(?:\s[A-Z]\.?)?(?:,?\s(?:JR|SR|II|III|IV)\.?)?$"
)
# Generic outlet words after a brand (KROGER STORES, STOP AND SHOP SUPERMARKET).
_OUTLET_PATTERN = r"(?:\s+(?:STORES?|SUPER\s?MARKETS?|GROCERY))+$"
# Words after a known company's name that make the whole another organization (a prefix match refuses).
OTHER_ORGANIZATION_WORDS = (
    "COLLEGE", "UNIVERSITY", "SCHOOL", "ACADEMY", "INSTITUTE", "INSURANCE", "ASSURANCE", "CREDIT", "BANK",
    "BANCORP", "FOUNDATION", "CHURCH", "MINISTRIES", "ASSOCIATION", "CLUB", "MUSEUM", "TRUST",
    "FABRICATORS", "FABRICATING", "FAMILY CENTER",
)  # fmt: skip
_OTHER_ORGANIZATION = r"\b(?:" + "|".join(OTHER_ORGANIZATION_WORDS) + r")\b"
# Spelled-out words and their usual abbreviations, one form kept.
ABBREVIATIONS = {"BROTHERS": "BROS", "INTERNATIONAL": "INTL", "MANUFACTURING": "MFG", "DEPARTMENT": "DEPT"}


def _abbreviate(e: pl.Expr) -> pl.Expr:
    for word, short in ABBREVIATIONS.items():
        e = e.str.replace_all(rf"\b{word}\b", short)
    return e


MAX_PREFIX_WORDS = 6
FUZZY_THRESHOLD = 93.0
FUZZY_MIN_LENGTH = 8
PREFIX_CONFIDENCE = 0.95


def _strip_suffixes(e: pl.Expr) -> pl.Expr:
    """Trailing legal suffixes, and an ``AND`` they leave behind (``BECTON DICKINSON & CO``)."""
    return e.str.replace(_SUFFIX_PATTERN, "").str.replace(r"\s+AND$", "")


CANONICAL_STEPS: tuple[tuple[str, Callable[[pl.Expr], pl.Expr]], ...] = (
    (
        "upper-case, accents and surrounding spaces removed",
        lambda e: (
            e.str.normalize("NFKD").str.replace_all(r"[^\x00-\x7F]", "").str.to_uppercase().str.strip_chars()
        ),
    ),
    (
        "drop (THE) and a leading or trailing THE",
        lambda e: e.str.replace_all(r"\(THE\)|^THE\s+|,\s*THE$", " "),
    ),
    (
        "keep the legal name before DBA / D/B/A / AKA (a leading DBA names the business itself)",
        lambda e: e.str.replace(
            r"\s+(?:D\s?/\s?B\s?/\s?A|D\.B\.A\.?|DBA|DOING BUSINESS AS|AKA|A/K/A)[\s:].*$", ""
        ).str.replace(r"^(?:D\s?/\s?B\s?/\s?A|D\.B\.A\.?|DBA)[\s:]+", ""),
    ),
    (
        "drop an owner tail (VONS, A SAFEWAY COMPANY)",
        lambda e: e.str.replace(r",\s*(?:A|AN)\s+.*\b(?:COMPANY|CORPORATION|SUBSIDIARY|DIVISION)$", ""),
    ),
    ("drop a numeric location prefix (0423-WAL-MART)", lambda e: e.str.replace(r"^\d{3,}\s*-\s*", "")),
    (
        "drop a site tail after ' - ', ' / ' or '/#' (RALPHS GROCERY COMPANY/#31-SHERMAN OAKS)",
        lambda e: e.str.replace(r"\s+[-/]\s+.*$|\s*/\s*#.*$", ""),
    ),
    (
        "drop store numbers (#343, STORE 12, NO. 5)",
        lambda e: e.str.replace_all(
            r"#\s*[A-Z0-9-]*|\b(?:STORE NUMBER|STORE NO|STORE|NO|UNIT|LOCATION)\.?\s*#?\s*\d+\b", " "
        ),
    ),
    (
        "& as AND, dots and apostrophes dropped, other punctuation as space",
        lambda e: (
            e.str.replace_all("&", " AND ")
            .str.replace_all(r"[.'`\"]", "")
            .str.replace_all(r"[^A-Z0-9]+", " ")
            .str.strip_chars()
        ),
    ),
    ("abbreviate BROTHERS, INTERNATIONAL, MANUFACTURING, DEPARTMENT", _abbreviate),
    (
        "cut a division or site after a mid-name INC/LLC/CORP",
        lambda e: e.str.replace(_TRUNCATE_PATTERN, "$1"),
    ),
    ("drop legal suffixes (INC, LLC, CORP, CO, LTD, LP, ...)", _strip_suffixes),
    (
        "drop a trailing store number (KROGER 381, TARGET T1752, TARGET T-1752)",
        lambda e: e.str.replace(r"(?:\s+(?:[A-Z]\s?)?\d{3,})+$", ""),
    ),
    ("drop legal suffixes left before the number", _strip_suffixes),
    ("drop a trailing STORE(S) or SUPERMARKET(S)", lambda e: e.str.replace(_OUTLET_PATTERN, "")),
)


# The canonical steps keep ASCII only: a name without a Latin letter or digit (北京建设, شركة النور,
# or only punctuation) is transliterated first, else it would have no slug and never rank.
LATIN_OR_DIGIT = r"[\p{Latin}0-9]"


def unreadable_name(name: pl.Expr) -> pl.Expr:
    """True for a name with no Latin letter or digit: another script, or only punctuation."""
    return ~name.str.contains(LATIN_OR_DIGIT)


def transliterated(name: str) -> str:
    """The name's words in Latin letters (``北京建设`` -> ``Bei Jing Jian She``); empty for punctuation."""
    return ascii_words(name, separator=" ", lowercase=False)


def canonical_name(name: pl.Expr) -> pl.Expr:
    """Canonical company name (upper-case words), null when nothing is left."""
    for _, step in CANONICAL_STEPS:
        name = step(name)
    return pl.when(name != "").then(name)


def match_key(canonical: pl.Expr) -> pl.Expr:
    """Spacing-free key, so ``WAL MART`` and ``WALMART`` meet."""
    return canonical.str.replace_all(" ", "")


def is_individual(name: pl.Expr) -> pl.Expr:
    """True for a person listed as ``LAST, FIRST M`` (no business words)."""
    upper = name.str.strip_chars().str.to_uppercase()
    return upper.str.contains(_PERSON_PATTERN) & ~upper.str.contains(_BUSINESS_WORDS)


def slugify(value: pl.Expr) -> pl.Expr:
    """Lowercase words joined by ``-`` (``Austin`` -> ``austin``, ``St. Louis`` -> ``st-louis``)."""
    return (
        value.str.to_lowercase()
        .str.replace_all(r"&", " and ")
        .str.replace_all(r"[^a-z0-9]+", "-")
        .str.strip_chars("-")
    )


def company_slug(name: pl.Expr) -> pl.Expr:
    """Entity slug of company names, exactly as the pipeline assigns it (parent roll-up included);
    null for no name or a person. Resolution runs once per batch over its unique names."""
    return name.map_batches(_slugs_of, return_dtype=pl.String)


def _slugs_of(names: pl.Series) -> pl.Series:
    resolved = resolve_names(names)
    return names.cast(pl.String).replace_strict(
        resolved["company_name"], resolved["company_slug"], default=None, return_dtype=pl.String
    )


@cache
def known_entities() -> tuple[pl.DataFrame, pl.DataFrame]:
    """(exact, prefix) tables ``key -> parent_slug, parent``, from the curated files.

    Every parent name is an exact key; names of two or more words are also prefixes (``HOME DEPOT
    USA``). Curated aliases win over parent names when both claim a key.
    """
    parents = pl.read_csv(DATA.joinpath("parents.csv").read_bytes(), infer_schema=False)
    aliases = pl.read_csv(DATA.joinpath("aliases.csv").read_bytes(), infer_schema=False)
    unknown = aliases.join(parents, left_on="parent_slug", right_on="slug", how="anti")
    if not unknown.is_empty():
        raise ValueError(f"aliases.csv names unknown parents: {sorted(unknown['parent_slug'].unique())}")
    names = parents.select(pl.col("name").alias("alias"), pl.col("slug").alias("parent_slug"))
    canonical = canonical_name(pl.col("alias"))
    # Two parents whose names differ only in legal suffixes (Heico Companies, Heico Corporation) are
    # ambiguous: neither claims the shared key, so no name is rolled up to the wrong one.
    from_parents = names.filter(
        pl.col("parent_slug").n_unique().over(match_key(canonical)) == 1
    ).with_columns(pl.lit(1).alias("priority"), pl.lit("exact").alias("match"))
    keyed = (
        pl.concat(
            [
                from_parents,
                from_parents.filter(canonical.str.contains(" ")).with_columns(
                    pl.lit("prefix").alias("match")
                ),
                aliases.select("alias", "parent_slug", pl.lit(0).alias("priority"), "match"),
            ],
            how="vertical_relaxed",
        )
        .with_columns(match_key(canonical).alias("key"))
        .filter(pl.col("key").is_not_null())
        .sort("priority", "parent_slug")
        .unique(["match", "key"], keep="first", maintain_order=True)
        .join(
            parents.select(pl.col("slug").alias("parent_slug"), pl.col("name").alias("parent")),
            on="parent_slug",
        )
        .select("match", "key", "parent_slug", "parent", "alias")
    )
    exact = keyed.filter(pl.col("match") == "exact").drop("match")
    prefix = keyed.filter(pl.col("match") == "prefix").drop("match")
    return exact, prefix


def _digits(key: str) -> str:
    return re.sub(r"\D", "", key)


@cache
def _fuzzy_choices() -> dict[tuple[str, str], tuple[list[str], list[tuple[str, str]]]]:
    """Known keys grouped by first three characters and digits: a fuzzy match must share both."""
    known = pl.concat(known_entities()).unique("key", keep="first", maintain_order=True)
    groups: dict[tuple[str, str], tuple[list[str], list[tuple[str, str]]]] = {}
    for key, slug, parent in known.select("key", "parent_slug", "parent").iter_rows():
        keys, found = groups.setdefault((key[:3], _digits(key)), ([], []))
        keys.append(key)
        found.append((slug, parent))
    return groups


@lru_cache(maxsize=1 << 18)
def fuzzy_match(key: str) -> tuple[str, str, str, float] | None:
    """Best known key scoring at least ``FUZZY_THRESHOLD`` (same first letters and digits), or None."""
    if len(key) < FUZZY_MIN_LENGTH:
        return None
    group = _fuzzy_choices().get((key[:3], _digits(key)))
    if group is None:
        return None
    best = process.extractOne(key, group[0], scorer=fuzz.ratio, score_cutoff=FUZZY_THRESHOLD)
    if best is None:
        return None
    choice, score, index = best
    return (choice, *group[1][index], score)


def _prefix_matches(names: pl.DataFrame, prefix: pl.DataFrame) -> pl.DataFrame:
    """Longest known whole-word prefix of each canonical name: ``canonical, key, parent_slug, parent``.

    A rest that names another kind of organization (``SAFEWAY INSURANCE``, ``ALBERTSON COLLEGE``)
    is another company, not a site of the known one.
    """
    candidates = pl.concat(
        names.select(
            "canonical",
            pl.lit(words).alias("words"),
            match_key(pl.col("canonical").str.extract(r"^((?:\S+\s){" + str(words) + r"}\S+)(?:\s|$)")).alias(
                "key"
            ),
            pl.col("canonical").str.replace(r"^(?:\S+(?:\s|$)){" + str(words + 1) + "}", "").alias("rest"),
        )
        for words in range(MAX_PREFIX_WORDS)
    ).filter(pl.col("key").is_not_null() & ~pl.col("rest").str.contains(_OTHER_ORGANIZATION))
    return (
        candidates.join(prefix, on="key")
        .sort("words", descending=True)
        .unique("canonical", keep="first")
        .select("canonical", "key", "parent_slug", "parent")
    )


ENTITY_FIELDS = ("canonical", "method", "matched", "parent", "parent_slug", "confidence")


def resolve_names(names: pl.Series) -> pl.DataFrame:
    """Resolve distinct company names: ``company_name, company_slug, individual`` and the evidence.

    Evidence columns: ``canonical``, ``method`` (alias, prefix, fuzzy, canonical, individual),
    ``matched`` (the known key), ``parent``, ``parent_slug``, ``confidence``.
    """
    exact, prefix = known_entities()
    unique = names.rename("company_name").cast(pl.String).unique().drop_nulls().to_frame()
    foreign = unique.filter(unreadable_name(pl.col("company_name"))).get_column("company_name")
    readable = pl.col("company_name").replace({name: transliterated(name) for name in foreign})
    frame = unique.with_columns(
        canonical_name(readable).alias("canonical"),
        is_individual(pl.col("company_name")).alias("individual"),
    ).with_columns(match_key(pl.col("canonical")).alias("key"))
    companies = frame.filter(~pl.col("individual") & pl.col("canonical").is_not_null())
    by_alias = companies.join(exact, on="key").select(
        "canonical", pl.col("key").alias("matched"), "parent_slug", "parent", pl.lit("alias").alias("method"),
        pl.lit(1.0).alias("confidence"),
    )  # fmt: skip
    rest = companies.filter(~pl.col("canonical").is_in(by_alias["canonical"].implode()))
    by_prefix = _prefix_matches(rest, prefix).select(
        "canonical", pl.col("key").alias("matched"), "parent_slug", "parent", pl.lit("prefix").alias("method"),
        pl.lit(PREFIX_CONFIDENCE).alias("confidence"),
    )  # fmt: skip
    rest = rest.filter(~pl.col("canonical").is_in(by_prefix["canonical"].implode()))
    # Only names long enough and starting like some known key go to the (cached) fuzzy matcher.
    fuzzy_candidates = rest.filter(
        (pl.col("key").str.len_chars() >= FUZZY_MIN_LENGTH)
        & pl.col("key").str.slice(0, 3).is_in(pl.Series(list({k for k, _ in _fuzzy_choices()})).implode())
    )
    fuzzy_rows = [
        (canonical, *found[:3], "fuzzy", round(found[3] / 100, 4))
        for canonical, key in fuzzy_candidates.select("canonical", "key").unique().iter_rows()
        if (found := fuzzy_match(key)) is not None
    ]
    by_fuzzy = pl.DataFrame(fuzzy_rows, schema=by_alias.schema, orient="row")
    matches = pl.concat([by_alias, by_prefix, by_fuzzy]).unique("canonical", keep="first")
    resolved = frame.join(matches, on="canonical", how="left", maintain_order="left")
    own_slug = slugify(pl.col("canonical"))
    method = (
        pl.when(pl.col("individual"))
        .then(pl.lit("individual"))
        .when(pl.col("method").is_not_null())
        .then(pl.col("method"))
        .when(pl.col("canonical").is_not_null())
        .then(pl.lit("canonical"))
    )
    slug = pl.when(~pl.col("individual")).then(
        pl.coalesce("parent_slug", pl.when(own_slug != "").then(own_slug))
    )
    return resolved.select(
        "company_name", slug.alias("company_slug"), "individual", "canonical", method.alias("method"),
        "matched", "parent", "parent_slug", "confidence",
    )  # fmt: skip


INDIVIDUAL = "individual"


def _with_entity(details: pl.Expr, entity: pl.Expr) -> pl.Expr:
    """``violation_details`` JSON with ``"entity": {...}`` added (unchanged when there is no entity).

    Details are compact JSON objects (``details_json``): the entity goes in before the closing brace
    with one concatenation and no branch over the details, which are most of a row's bytes.
    """
    text = details.fill_null(pl.when(entity.is_not_null()).then(pl.lit("{}")))
    separator = pl.when((text == "{}") | entity.is_null()).then(pl.lit("")).otherwise(pl.lit(","))
    member = pl.when(entity.is_null()).then(pl.lit("")).otherwise(pl.lit('"entity":') + entity)
    return pl.concat_str([text.str.head(-1), separator, member, pl.lit("}")])


def resolve_companies(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill ``company_slug`` from ``company_name``: resolution over the unique names, joined back.

    Rows the source marks as individuals (``"individual"`` in ``quality_issues``) or whose name reads
    as a person get a null slug and the ``individual`` flag; the match evidence is added to
    ``violation_details`` under ``"entity"``.
    """
    # Rejected rows never become violations: their names need no resolution.
    valid = frame.filter(pl.col("reject_reason").is_null()) if "reject_reason" in frame.columns else frame
    resolved = resolve_names(valid.get_column("company_name"))
    evidence = resolved.select(
        "company_name",
        "company_slug",
        pl.col("individual").alias("_named_individual"),
        pl.struct(ENTITY_FIELDS).struct.json_encode().alias("_entity"),
    )
    flagged = pl.col("quality_issues").fill_null([]).list.contains(INDIVIDUAL)
    individual = flagged | pl.col("_named_individual").fill_null(False)
    source_individual = pl.lit('{"method":"individual","source":"entity type"}')
    entity = pl.when(flagged & ~pl.col("_named_individual").fill_null(False)).then(source_individual)
    return (
        frame.drop("company_slug", strict=False)
        .join(evidence, on="company_name", how="left", maintain_order="left")
        .with_columns(
            pl.when(~individual).then(pl.col("company_slug")).alias("company_slug"),
            pl.when(individual & ~flagged)
            .then(pl.concat_list(pl.col("quality_issues").fill_null([]), pl.lit([INDIVIDUAL])))
            .otherwise(pl.col("quality_issues"))
            .alias("quality_issues"),
            _with_entity(pl.col("violation_details"), entity.otherwise(pl.col("_entity"))).alias(
                "violation_details"
            ),
        )
        .drop("_named_individual", "_entity")
    )


def explain(name: str) -> dict[str, Any]:
    """Every canonicalization step and the match for one name (what ``ventureos entity explain`` shows)."""
    steps = []
    value = pl.lit(transliterated(name) if pl.select(unreadable_name(pl.lit(name))).item() else name)
    for description, step in CANONICAL_STEPS:
        value = step(value)
        steps.append({"step": description, "value": pl.select(value).item()})
    row = resolve_names(pl.Series([name])).row(0, named=True)
    return {
        "name": name,
        "steps": steps,
        "canonical": row["canonical"],
        "key": pl.select(match_key(pl.lit(row["canonical"], dtype=pl.String))).item(),
        "individual": row["individual"],
        "method": row["method"],
        "matched": row["matched"],
        "parent": row["parent"],
        "parent_slug": row["parent_slug"],
        "confidence": row["confidence"],
        "slug": row["company_slug"],
    }


def company_key(slug: pl.Expr) -> pl.Expr:
    return pl.lit("COMPANY#") + slug


def city_key(city: pl.Expr, state: pl.Expr) -> pl.Expr:
    return pl.lit("CITY#") + slugify(city) + pl.lit("-") + state.str.to_lowercase()


def state_key(state: pl.Expr) -> pl.Expr:
    return pl.lit("STATE#") + state.str.to_lowercase()
