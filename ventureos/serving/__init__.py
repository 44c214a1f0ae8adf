"""The serving layer: Entities, Violations (live feed) and Projects tables behind one small interface."""

from ventureos.serving.base import (
    ENTITIES,
    LIVE_FEED,
    PROJECTS,
    TABLES,
    Item,
    Key,
    ServingStore,
    open_store,
)

__all__ = ["ENTITIES", "LIVE_FEED", "PROJECTS", "TABLES", "Item", "Key", "ServingStore", "open_store"]
