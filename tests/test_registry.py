"""One way to choose a backend: every kind has a registry, backends load by name, a bad name lists the options."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ventureos.catalog import CATALOGS
from ventureos.queue.base import QUEUE_BACKENDS
from ventureos.registry import Registry, UnknownBackendError
from ventureos.serving.base import SERVING_BACKENDS
from ventureos.settings import load_settings
from ventureos.storage import STORAGE_BACKENDS, LocalStorage, S3Storage, open_storage


def test_every_kind_names_its_backends() -> None:
    for registry, names in [
        (CATALOGS, ["glue", "rest", "sql"]),
        (STORAGE_BACKENDS, ["local", "s3"]),
        (QUEUE_BACKENDS, ["sqlite", "sqs"]),
        (SERVING_BACKENDS, ["dynamodb", "sqlite"]),
    ]:
        assert registry.names == names
        for name in names:
            assert callable(registry.factory(name))


def test_an_unknown_backend_names_the_options() -> None:
    with pytest.raises(UnknownBackendError, match=r"unknown queue backend 'kafka'; known: sqlite, sqs"):
        QUEUE_BACKENDS.factory("kafka")


def test_a_backend_module_is_imported_when_first_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "registry_probe_backend.py").write_text(
        "from tests.test_registry import PROBES\n\n@PROBES.register('probe')\ndef make(value):\n    return value * 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "registry_probe_backend" not in sys.modules
    assert PROBES.names == ["probe"]
    assert PROBES.create("probe", 21) == 42
    assert "registry_probe_backend" in sys.modules
    monkeypatch.delitem(sys.modules, "registry_probe_backend")


PROBES = Registry[int]("probe backend", {"probe": "registry_probe_backend"})


def test_storage_backend_follows_the_root(home: Path) -> None:
    settings = load_settings()
    assert type(open_storage("s3://lake/prefix", settings)) is S3Storage
    assert type(open_storage(str(home / "lake"), settings)) is LocalStorage
