"""Company entity resolution: canonical names, parent matching, individuals, evidence, CLI."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ventureos.batch import normalize_raw_batch
from ventureos.bronze import read_raw_batch
from ventureos.cli import main
from ventureos.entities import canonical_name, company_slug, explain, resolve_companies, resolve_names


def slugs(*names: str) -> dict[str, str | None]:
    resolved = resolve_names(pl.Series(names))
    return dict(zip(resolved["company_name"], resolved["company_slug"], strict=True))


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("KROGER CO (THE)", "KROGER"),
        ("KROGER #343", "KROGER"),
        ("KROGER 381, INC.", "KROGER"),
        ("0423-WAL-MART STORES", "WAL MART"),
        ("WALGREENS CO #10584", "WALGREENS"),
        ("GENERAL MILLS INC - GOLDEN VALLEY", "GENERAL MILLS"),
        ("TREND TECHNOLOGIES INC COLORADO DIV", "TREND TECHNOLOGIES"),
        ("SAFEWAY INC DBA CARRS", "SAFEWAY"),
        ("MEIJER (STORE NUMBER 034)", "MEIJER"),
        ("Becton Dickinson & Co.", "BECTON DICKINSON"),
        ("Nestlé USA, Inc.", "NESTLE"),
        ("Phillips 66", "PHILLIPS 66"),
        ("1366 Technologies", "1366 TECHNOLOGIES"),
        ("STATER BROTHERS MARKETS", "STATER BROS MARKETS"),
        ("Target Store T-1234", "TARGET"),
        ("DBA ALBERTSON'S, INC STORE #6770", "ALBERTSONS"),
        ("RALPHS GROCERY COMPANY/#31-SHERMAN OAKS", "RALPHS"),
        ("VONS, A SAFEWAY COMPANY", "VONS"),
        ("AC/DC SUPPLY", "AC DC SUPPLY"),
        ("  #12  ", None),
    ],
)
def test_canonical_name(name, canonical):
    assert pl.select(canonical_name(pl.lit(name))).item() == canonical


def test_issue_families_share_one_slug():
    got = slugs(
        "Walmart Stores, Inc.", "WAL-MART STORES INC", "0423-WAL-MART STORES", "WAL MART PUERTO RICO INC",
        "KROGER CO (THE)", "KROGER #343", "KROGER 381, INC.",
    )  # fmt: skip
    assert {got[n] for n in ("Walmart Stores, Inc.", "WAL-MART STORES INC", "0423-WAL-MART STORES")} == {
        "walmart"
    }
    assert got["WAL MART PUERTO RICO INC"] == "walmart"
    assert {got["KROGER CO (THE)"], got["KROGER #343"], got["KROGER 381, INC."]} == {"kroger"}


def test_companies_sharing_words_are_not_merged():
    got = slugs(
        "AMERICAN AIRLINES INC", "AMERICAN EAGLE AIRLINES, INC", "AMERICAN EAGLE AIRLINES INC",
        "AMERICAN EAGLE OUTFITTERS INC", "CHEVRON CORPORATION", "CHEVRON PHILLIPS CHEMICAL CO LP",
        "SONOCO PRODUCTS CO", "SUNOCO INC", "GIANT FOOD, INC.", "GIANT EAGLE INC.", "TARGET STORES",
        "Target Ship Management",
    )  # fmt: skip
    assert got["AMERICAN AIRLINES INC"] == "american-airlines"
    assert (
        got["AMERICAN EAGLE AIRLINES, INC"] == got["AMERICAN EAGLE AIRLINES INC"] == "american-eagle-airlines"
    )
    assert got["AMERICAN EAGLE OUTFITTERS INC"] == "american-eagle-outfitters"
    assert got["CHEVRON CORPORATION"] == "chevron"
    assert got["CHEVRON PHILLIPS CHEMICAL CO LP"] == "chevron-phillips-chemical"
    assert got["SONOCO PRODUCTS CO"] == "sonoco-products"
    assert got["SUNOCO INC"] == "sunoco"
    assert got["GIANT FOOD, INC."] == "giant-food"
    assert got["GIANT EAGLE INC."] == "giant-eagle"
    assert got["TARGET STORES"] == "target"
    assert got["Target Ship Management"] == "target-ship-management"
    # A known name followed by another kind of organization is that other organization.
    assert slugs(
        "ALBERTSON COLLEGE", "SAFEWAY INSURANCE", "AMERICAN AIRLINES FEDERAL CREDIT UNION",
        "QUALITY STEEL FABRICATORS INC", "SAFEWAY STORE #1234", "ALBERTSONS LLC",
    ) == {
        "ALBERTSON COLLEGE": "albertson-college",
        "SAFEWAY INSURANCE": "safeway-insurance",
        "AMERICAN AIRLINES FEDERAL CREDIT UNION": "american-airlines-federal-credit-union",
        "QUALITY STEEL FABRICATORS INC": "quality-steel-fabricators",
        "SAFEWAY STORE #1234": "safeway",
        "ALBERTSONS LLC": "albertsons-companies",
    }  # fmt: skip
    # One-word parents are not prefixes: a different business starting with the word stays apart.
    assert slugs("TARGET CONSTRUCTION", "APPLE VALLEY SCHOOL") == {
        "TARGET CONSTRUCTION": "target-construction",
        "APPLE VALLEY SCHOOL": "apple-valley-school",
    }


def test_methods_and_confidence():
    resolved = resolve_names(
        pl.Series(
            [
                "KROGER 381, INC.",
                "WAL MART PUERTO RICO INC",
                "FEDERAL EXPRES CORPORATION",
                "Kalahari Manufacturing LLC",
            ]
        )
    ).sort("company_name")
    assert resolved.select("company_name", "method", "parent", "confidence", "company_slug").rows() == [
        ("FEDERAL EXPRES CORPORATION", "fuzzy", "FedEx", 0.963, "fedex"),
        ("KROGER 381, INC.", "alias", "Kroger", 1.0, "kroger"),
        ("Kalahari Manufacturing LLC", "canonical", None, None, "kalahari-mfg"),
        ("WAL MART PUERTO RICO INC", "prefix", "Walmart", 0.95, "walmart"),
    ]


def test_individuals_get_no_company_slug():
    names = [
        "LEPPING, KURT M",
        "SMITH, INC",
        "O'BRIEN, MARY",
        "ACME, LLC",
        "GREENVILLE, CITY OF",
        "Scapa, NA",
    ]
    got = resolve_names(pl.Series(names)).sort("company_name")
    assert got.select("company_name", "individual", "company_slug").rows() == [
        ("ACME, LLC", False, "acme"),
        ("GREENVILLE, CITY OF", False, "greenville-city-of"),
        ("LEPPING, KURT M", True, None),
        ("O'BRIEN, MARY", True, None),
        ("SMITH, INC", False, "smith"),
        ("Scapa, NA", False, "scapa-na"),
    ]


def test_resolve_companies_keeps_rows_and_adds_evidence():
    frame = pl.DataFrame(
        {
            "company_name": ["KROGER #343", None, "LEPPING, KURT M", "KROGER 381, INC.", "JOHN DOE AVIATION"],
            "violation_details": ['{"a":"1"}', "{}", None, '{"b":null}', "{}"],
            "quality_issues": [[], [], [], ["missing_city"], ["individual"]],
        }
    )
    out = resolve_companies(frame)
    assert out["company_name"].to_list() == frame["company_name"].to_list()
    assert out["company_slug"].to_list() == ["kroger", None, None, "kroger", None]
    assert out["quality_issues"].to_list() == [[], [], ["individual"], ["missing_city"], ["individual"]]
    details = [json.loads(d) if d else None for d in out["violation_details"]]
    assert details[0] == {
        "a": "1",
        "entity": {"canonical": "KROGER", "method": "alias", "matched": "KROGER", "parent": "Kroger",
                   "parent_slug": "kroger", "confidence": 1.0},
    }  # fmt: skip
    assert details[1] == {}
    assert details[2]["entity"]["method"] == "individual"
    assert details[3]["b"] is None and details[3]["entity"]["parent_slug"] == "kroger"
    assert details[4] == {"entity": {"method": "individual", "source": "entity type"}}


def test_company_slug_expression_matches_the_pipeline():
    frame = pl.DataFrame(
        {"name": ["WAL MART PUERTO RICO INC", None, "LEPPING, KURT M", "KROGER 381, INC.", " #12 "]}
    )
    assert frame.select(company_slug(pl.col("name")))["name"].to_list() == [
        "walmart",
        None,
        None,
        "kroger",
        None,
    ]


def test_explain_shows_steps_and_match():
    result = explain("0423-WAL-MART STORES")
    assert result["slug"] == "walmart" and result["parent"] == "Walmart" and result["confidence"] == 1.0
    assert [s["value"] for s in result["steps"]][4] == "WAL-MART STORES"
    assert result["canonical"] == "WAL MART" and result["key"] == "WALMART"


def test_cli_entity_explain_json(capsys):
    main(["entity", "explain", "KROGER 381, INC.", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert (payload["slug"], payload["parent"], payload["confidence"]) == ("kroger", "Kroger", 1.0)


def test_cli_entity_explain_text(capsys):
    main(["entity", "explain", "LEPPING, KURT M"])
    out = capsys.readouterr().out
    assert "individual" in out and "LEPPING KURT M" in out


def test_parents_differing_only_in_suffix_claim_no_names():
    resolved = resolve_names(pl.Series(["HEICO CORP", "Heico Companies LLC"]))
    assert resolved["company_slug"].to_list() == ["heico", "heico"]
    assert resolved["parent"].to_list() == [None, None]


def test_curated_operating_company_names_roll_up():
    assert slugs(
        "DOLGENCORP LLC", "UNITED STATES POSTAL SERVICE", "UPS GROUND FREIGHT INC", "UPSTATE NIAGARA"
    ) == {
        "DOLGENCORP LLC": "dollar-general",
        "UNITED STATES POSTAL SERVICE": "us-postal-service",
        "UPS GROUND FREIGHT INC": "united-parcel-service",
        "UPSTATE NIAGARA": "upstate-niagara",
    }


def test_sample_variants_found_in_review_share_or_keep_their_slugs():
    got = slugs(
        "Aramark Corporation", "ARAMARK EDUCATIONAL SERVICES OF TEXAS, LLC", "Veolia Company",
        "Veolia Environmental Services", "INGLES, STORE #426", "INGLES MARKETS", "MEIJERS INC", "MEIJER",
        "MCDONALDS FOOD & FAMILY CENTER", "MCDONALD'S RESTAURANT #1234",
    )  # fmt: skip
    assert got["ARAMARK EDUCATIONAL SERVICES OF TEXAS, LLC"] == got["Aramark Corporation"] == "aramark"
    assert got["Veolia Company"] == got["Veolia Environmental Services"] == "veolia-environnement"
    assert got["INGLES, STORE #426"] == got["INGLES MARKETS"] == "ingles-markets"
    assert got["MEIJERS INC"] == got["MEIJER"] == "meijer"
    # A grocery named after its owner is not the restaurant chain.
    assert got["MCDONALDS FOOD & FAMILY CENTER"] == "mcdonalds-food-and-family-center"
    assert got["MCDONALD'S RESTAURANT #1234"] == "mcdonalds"


def test_a_name_in_another_script_is_flagged_and_ranks_under_its_transliteration() -> None:
    """Non-Latin names had no slug (they dropped out of company rankings) and no flag; punctuation
    has no slug to give but is flagged."""
    text = (
        "ID,EventDate,Employer\n"
        "1,1/2/2015,北京建设\n2,1/2/2015,\u041e\u041e\u041e \u00ab\u0420\u043e\u043c\u0430\u0448\u043a\u0430\u00bb\n"
        "3,1/2/2015,-- / --\n4,1/2/2015,Walmart Inc\n5,1/2/2015,Caf\u00e9 Nord\n"
    )
    batch = normalize_raw_batch(read_raw_batch([("d/r.csv", text.encode())]), "osha", "severe_injury")
    assert (batch.records_read, batch.valid.height, batch.rejects.height) == (5, 5, 0)
    got = batch.valid.select(
        "source_id", "company_slug", pl.col("quality_issues").list.contains("unreadable_company_name")
    )
    assert got.rows() == [
        ("1", "bei-jing-jian-she", True),
        ("2", "ooo-romashka", True),
        ("3", None, True),
        ("4", "walmart", False),
        ("5", "cafe-nord", False),
    ]
