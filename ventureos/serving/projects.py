"""Projects table: one branding/UI config per product, from ``ventureos/data/projects/{id}.json``."""

from __future__ import annotations

import json
from importlib import resources
from importlib.abc import Traversable

from ventureos.serving.base import PROJECTS, Item, ServingStore

PROJECTS_DIR = resources.files("ventureos") / "data" / "projects"
CONFIG = "CONFIG"
REQUIRED = ("id", "name", "agencies")


def project_item(source: Traversable) -> Item:
    """``BRAND#{id}`` / ``CONFIG`` with the file's fields; the file must be named after its id."""
    try:
        config = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source.name}: not valid JSON ({exc})") from None
    missing = [k for k in REQUIRED if not config.get(k)] if isinstance(config, dict) else list(REQUIRED)
    if missing:
        raise ValueError(f"{source.name}: missing {', '.join(missing)}")
    if f"{config['id']}.json" != source.name:
        raise ValueError(f"{source.name}: id {config['id']!r} does not match the file name")
    return {"PK": f"BRAND#{config['id']}", "SK": CONFIG, **config}


def load_projects(store: ServingStore, folder: Traversable = PROJECTS_DIR) -> list[str]:
    """Validate every config first, then write them in one batch; returns the brand keys."""
    items = [
        project_item(f) for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".json")
    ]
    store.put_items(PROJECTS, items)
    return [i["PK"] for i in items]
