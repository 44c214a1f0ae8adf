"""Lists of files in reports: a count and the first few names where people read (terminal, artifacts);
the whole list behind ``--verbose`` or in an artifact of its own. No heavy imports: the CLI uses it
before anything else is loaded."""

from __future__ import annotations

SHOWN_NAMES = 3
"""Names a summary shows before "and N more"; the full list is behind ``--verbose`` or its own artifact."""


def summarize_names(names: list[str], shown: int = SHOWN_NAMES) -> str:
    """``a, b, c and 105 more``: the first ``shown`` names and the count of the rest."""
    head = ", ".join(str(n) for n in names[:shown])
    rest = len(names) - shown
    return f"{head} and {rest} more" if rest > 0 else head


def names_markdown(title: str, names: list[str], full_list_key: str | None = None) -> list[str]:
    """A markdown section for a list of files: the count, the first few, and where the whole list is
    (the artifact ``full_list_key``), or every name when they are few."""
    if not names:
        return []
    lines = ["", f"## {title} ({len(names)})", ""]
    lines += [f"- `{n}`" for n in names[:SHOWN_NAMES]]
    if len(names) > SHOWN_NAMES:
        more = f"- … and {len(names) - SHOWN_NAMES} more"
        lines.append(f"{more}: every one in artifact `{full_list_key}`" if full_list_key else more)
    return lines


def full_list_markdown(title: str, names: list[str]) -> str:
    """The whole list, for its own artifact."""
    return "\n".join([f"# {title} ({len(names)})", "", *(f"- `{n}`" for n in names)])
