"""The serving layer: Entities, Violations (live feed) and Projects tables behind one small interface."""

from ventureos.serving.base import (
    ENTITIES,
    PROJECTS,
    TABLES,
    VIOLATIONS,
    Item,
    Key,
    ServingStore,
    open_store,
)

__all__ = ["ENTITIES", "PROJECTS", "TABLES", "VIOLATIONS", "Item", "Key", "ServingStore", "open_store"]
