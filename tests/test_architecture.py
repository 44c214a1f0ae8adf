"""The dependency rule (docs/architecture.md): imports point one way, down the layers.

cli -> flows -> tasks -> library -> normalizers -> entity resolution -> contracts, and beside the flows
cli -> api -> library: the read API (and the pages it serves) never runs a flow. The library is
usable (and testable) without Prefect; only the CLI, which runs the flows, may import them.
"""

from __future__ import annotations

from collections.abc import Iterable

import grimp

PACKAGES = ("ventureos", "flows", "tasks", "normalizers")
CONTRACTS = ("ventureos.schemas", "ventureos.settings", "ventureos.layout")
"""Table schemas, lineage columns, storage layout and settings: the bottom layer."""
ENTITY_RESOLUTION = ("ventureos.entities",)
API = ("ventureos.api", "ventureos.web")
"""The HTTP layer: the FastAPI app, its routers and the pages it serves."""

BELOW = {
    "contracts": set(),
    "entities": {"contracts"},
    "normalizers": {"entities", "contracts"},
    "library": {"normalizers", "entities", "contracts"},
    "tasks": {"library", "normalizers", "entities", "contracts"},
    "flows": {"tasks", "library", "normalizers", "entities", "contracts"},
    "api": {"library", "normalizers", "entities", "contracts"},
    "cli": {"api", "flows", "tasks", "library", "normalizers", "entities", "contracts"},
}
"""Layer -> the layers it may import (besides itself)."""
PREFECT_FREE = {"contracts", "entities", "normalizers", "library", "api"}


def _within(module: str, roots: Iterable[str]) -> bool:
    return any(module == root or module.startswith(f"{root}.") for root in roots)


def layer(module: str) -> str | None:
    """The layer of a project module; None for a third-party one."""
    if _within(module, CONTRACTS):
        return "contracts"
    if _within(module, ENTITY_RESOLUTION):
        return "entities"
    if _within(module, ("ventureos.cli",)):
        return "cli"
    if _within(module, API):
        return "api"
    for name in ("flows", "tasks", "normalizers"):
        if _within(module, (name,)):
            return name
    return "library" if _within(module, ("ventureos",)) else None


def wrong_way(imports: Iterable[tuple[str, str]]) -> list[str]:
    """The (importer, imported) pairs that break the rule, as readable lines."""
    problems = []
    for importer, imported in imports:
        source, target = layer(importer), layer(imported)
        if source is None:
            continue
        if target is None:
            if source in PREFECT_FREE and _within(imported, ("prefect",)):
                problems.append(f"{importer} ({source}) imports prefect: the library must run without it")
        elif source in ("library", "api") and target == "normalizers" and imported != "normalizers":
            problems.append(
                f"{importer} imports {imported}: the library uses the normalizers' registry "
                "(package normalizers), never their internals"
            )
        elif target != source and target not in BELOW[source]:
            problems.append(
                f"{importer} ({source}) imports {imported} ({target}): a {source} module may "
                f"only import {', '.join(sorted(BELOW[source])) or 'contracts'}"
            )
    return problems


def project_imports() -> list[tuple[str, str]]:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True)
    return [
        (importer, imported)
        for importer in sorted(graph.modules)
        if layer(importer) is not None
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
    ]


def test_imports_point_down_the_layers() -> None:
    assert wrong_way(project_imports()) == []


def test_a_wrong_way_import_is_caught() -> None:
    assert wrong_way(
        [
            ("ventureos.serving.dynamodb", "tasks.policy"),
            ("ventureos.gold", "prefect.task_runners"),
            ("normalizers.common", "ventureos.silver"),
            ("ventureos.silver", "normalizers.common"),
            ("ventureos.schemas", "ventureos.gold"),
            ("tasks.silver", "flows.common"),
            ("ventureos.cli.run", "flows.daily_ingest"),
            ("flows.daily_ingest", "tasks.silver"),
        ]
    ) == [
        "ventureos.serving.dynamodb (library) imports tasks.policy (tasks): a library module may only "
        "import contracts, entities, normalizers",
        "ventureos.gold (library) imports prefect: the library must run without it",
        "normalizers.common (normalizers) imports ventureos.silver (library): a normalizers module may only "
        "import contracts, entities",
        "ventureos.silver imports normalizers.common: the library uses the normalizers' registry (package "
        "normalizers), never their internals",
        "ventureos.schemas (contracts) imports ventureos.gold (library): a contracts module may only "
        "import contracts",
        "tasks.silver (tasks) imports flows.common (flows): a tasks module may only import contracts, "
        "entities, library, normalizers",
    ]


def test_the_api_layer_sits_between_the_cli_and_the_library() -> None:
    assert wrong_way(
        [
            ("ventureos.cli.serve", "ventureos.api.app"),
            ("ventureos.api.status", "ventureos.status"),
            ("ventureos.api.app", "flows.gold_sync"),
            ("ventureos.api.top", "tasks.serving"),
            ("ventureos.api.status", "prefect.client"),
            ("ventureos.gold", "ventureos.api.common"),
        ]
    ) == [
        "ventureos.api.app (api) imports flows.gold_sync (flows): a api module may only import contracts, "
        "entities, library, normalizers",
        "ventureos.api.top (api) imports tasks.serving (tasks): a api module may only import contracts, "
        "entities, library, normalizers",
        "ventureos.api.status (api) imports prefect: the library must run without it",
        "ventureos.gold (library) imports ventureos.api.common (api): a library module may only import "
        "contracts, entities, normalizers",
    ]
