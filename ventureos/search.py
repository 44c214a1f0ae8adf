"""Search tokens of entity names, shared by gold-sync (which writes the index) and the API (which reads it).

``fold`` makes text comparable: ASCII-folded (``Nestlé`` -> ``nestle``), lower case, apostrophes
dropped (``McDonald's`` -> ``mcdonalds``), every other non-alphanumeric character a word break.
``search_tokens`` gives each word of a folded name and the whole folded name without spaces, so
``wal mart`` (joined: ``walmart``) finds ``WAL-MART STORES, INC.`` through ``walmartstoresinc``.

Pure legal-form and filler words (``inc``, ``llc``, ``corp``, ``the`` …) are not indexed alone: nearly
every company has one, and a shard ``SEARCH#in`` holding every ``inc`` would make each ``in…`` query
read all of them. They stay inside the joined token, so ``acme inc`` still finds ``ACME, INC.``; a
query of such a word alone (``inc``) finds only names that start with it.
"""

from __future__ import annotations

import re
import unicodedata

STOP_WORDS = frozenset({
    "inc", "incorporated", "llc", "llp", "lp", "ltd", "limited", "corp", "corporation", "co", "company",
    "plc", "the", "of", "and",
})  # fmt: skip
MIN_QUERY = 2
"""Shortest folded query answered (the shard key is two characters)."""

_APOSTROPHES = re.compile(r"['\u2019`]")
_BREAKS = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Folded words of ``text`` separated by single spaces (``"WAL-MART Stores, Inc."`` -> ``"wal mart stores inc"``)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return " ".join(_BREAKS.split(_APOSTROPHES.sub("", ascii_text.lower()))).strip()


def search_tokens(name: str) -> list[str]:
    """Index tokens of a name: its folded words (no stop words), then the folded name without spaces."""
    words = fold(name).split()
    tokens = [w for w in words if w not in STOP_WORDS]
    tokens.append("".join(words))
    return [t for t in dict.fromkeys(tokens) if t]


def shard(token: str) -> str:
    """The partition of a token's index items: ``SEARCH#`` and its first two characters."""
    return f"SEARCH#{token[:MIN_QUERY]}"
