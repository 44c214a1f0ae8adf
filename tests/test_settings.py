"""Settings fail fast and name the setting; defaults give the embedded shape under VENTUREOS_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from ventureos.settings import SettingsError, load_settings


def test_embedded_defaults_live_under_home(home: Path) -> None:
    s = load_settings()
    assert s.lake == str((home / "lake").resolve())
    assert s.sql_catalog_uri == f"sqlite:///{(home / 'catalog.db').resolve()}"
    assert s.warehouse_uri == str((home / "warehouse").resolve())
    assert s.catalog_name == "ventureos" and not s.is_s3


def test_unknown_environment_setting_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENTUREOS_BATCH_ROW", "10")
    with pytest.raises(SettingsError, match="VENTUREOS_BATCH_ROW"):
        load_settings()


def test_invalid_value_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENTUREOS_CATALOG_TYPE", "hive")
    with pytest.raises(SettingsError, match="VENTUREOS_CATALOG_TYPE"):
        load_settings()


def test_toml_file_sets_values_and_rejects_unknown_keys(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ventureos.toml"
    config.write_text('lake_uri = "s3://my-lake"\nbatch_rows = 5000\n')
    monkeypatch.setenv("VENTUREOS_CONFIG", str(config))
    s = load_settings()
    assert (s.lake, s.batch_rows, s.is_s3) == ("s3://my-lake", 5000, True)

    config.write_text('lake_uri = "s3://my-lake"\nbatchrows = 1\n')
    with pytest.raises(SettingsError, match="batchrows"):
        load_settings()


def test_environment_wins_over_the_file(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ventureos.toml"
    config.write_text("batch_rows = 5000\n")
    monkeypatch.setenv("VENTUREOS_CONFIG", str(config))
    monkeypatch.setenv("VENTUREOS_BATCH_ROWS", "7")
    assert load_settings().batch_rows == 7


def test_missing_config_file_and_rest_without_uri_fail(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VENTUREOS_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match="VENTUREOS_CONFIG"):
        load_settings()
    monkeypatch.delenv("VENTUREOS_CONFIG")
    monkeypatch.setenv("VENTUREOS_CATALOG_TYPE", "rest")
    with pytest.raises(SettingsError, match="catalog_uri"):
        load_settings()
