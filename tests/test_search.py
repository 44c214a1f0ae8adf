"""Search tokens: folding and the tokens of a name (the index gold-sync writes and the API reads)."""

from __future__ import annotations

from ventureos.search import fold, search_tokens, shard
from ventureos.serving.entity_items import search_names


def test_fold_ascii_folds_lowercases_and_breaks_on_punctuation() -> None:
    assert fold("WAL-MART STORES, INC.") == "wal mart stores inc"
    assert fold("  Nestlé  Purina\tPetCare ") == "nestle purina petcare"
    assert fold("McDonald\u2019s") == fold("MCDONALD'S") == "mcdonalds"
    assert fold("AT&T") == "at t"
    assert fold("--!!") == ""


def test_tokens_are_the_words_and_the_joined_name() -> None:
    assert search_tokens("WAL-MART STORES, INC.") == ["wal", "mart", "stores", "walmartstoresinc"]
    assert search_tokens("Walmart") == ["walmart"]
    # Legal forms and fillers are not indexed alone, but stay in the joined token.
    assert search_tokens("The Home Depot, Inc.") == ["home", "depot", "thehomedepotinc"]
    assert search_tokens("U.S. Steel Corp") == ["u", "s", "steel", "ussteelcorp"]
    assert search_tokens("") == []


def test_a_query_joined_without_spaces_is_a_prefix_of_the_joined_token() -> None:
    """``wal mart`` finds ``WAL-MART STORES, INC.``: its joined form is where the name's joined token lives."""
    tokens = search_tokens("WAL-MART STORES, INC.")
    joined = "".join(fold("wal mart").split())
    assert joined == "walmart"
    assert [t for t in tokens if t.startswith(joined)] == ["walmartstoresinc"]
    assert shard(joined) == shard("walmartstoresinc") == "SEARCH#wa"


def test_a_city_is_indexed_by_its_own_words_not_its_state_code() -> None:
    assert search_names("AUSTIN, TX", "city") == ["austin", "austintx"]
    assert search_names("SAN ANTONIO, TX", "city") == ["san", "antonio", "sanantoniotx"]
    assert search_names("TX", "state") == ["tx"]
    assert search_names("WAL-MART STORES, INC.", "company") == search_tokens("WAL-MART STORES, INC.")
