"""The lake's object store, addressed by keys relative to one root URI (local path or ``s3://``).

Tasks only ever see keys such as ``bronze/daily/osha/...``; this module maps them to local disk or
S3 through pyarrow's filesystems, so the same code runs in both shapes.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs

from ventureos.settings import Settings


class Storage:
    def __init__(self, root: str, settings: Settings) -> None:
        self.root = root.rstrip("/")
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(settings.lake, settings)

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    @cached_property
    def fs(self) -> pafs.FileSystem:
        if not self.is_s3:
            return pafs.LocalFileSystem()
        s = self.settings
        kwargs: dict = {"region": s.aws_region}
        if s.aws_endpoint_url:
            scheme, _, host = s.aws_endpoint_url.partition("://")
            kwargs |= {"endpoint_override": host, "scheme": scheme}
        if s.aws_access_key_id and s.aws_secret_access_key:
            kwargs |= {"access_key": s.aws_access_key_id, "secret_key": s.aws_secret_access_key}
        return pafs.S3FileSystem(**kwargs)

    @property
    def _base(self) -> str:
        """The root as pyarrow paths it: ``bucket/prefix`` on S3, an absolute path locally."""
        return self.root.removeprefix("s3://") if self.is_s3 else str(Path(self.root).resolve())

    def path(self, key: str) -> str:
        return f"{self._base}/{key.lstrip('/')}"

    def uri(self, key: str) -> str:
        return f"{self.root}/{key.lstrip('/')}" if self.is_s3 else self.path(key)

    def key_of(self, path: str) -> str:
        path = path.removeprefix("s3://").removeprefix("file://")
        if not self.is_s3 and not path.startswith(self._base):
            path = str(Path(path).resolve())  # the root went through a symlink (/tmp on macOS)
        return path.removeprefix(self._base).lstrip("/")

    @property
    def polars_storage_options(self) -> dict[str, str] | None:
        if not self.is_s3:
            return None
        s = self.settings
        options = {"aws_region": s.aws_region}
        if s.aws_endpoint_url:
            options["aws_endpoint_url"] = s.aws_endpoint_url
            options["aws_allow_http"] = str(s.aws_endpoint_url.startswith("http://")).lower()
        if s.aws_access_key_id and s.aws_secret_access_key:
            options |= {
                "aws_access_key_id": s.aws_access_key_id,
                "aws_secret_access_key": s.aws_secret_access_key,
            }
        return options

    # Listing and bytes -------------------------------------------------------------------
    def list(self, prefix: str) -> list[str]:
        """Keys of every file under ``prefix`` (recursive, sorted); empty when it does not exist."""
        return sorted(self.modified_times(prefix))

    def modified_times(self, prefix: str) -> dict[str, datetime]:
        """Key -> last-modified time (UTC) of every file under ``prefix`` (recursive)."""
        selector = pafs.FileSelector(self.path(prefix).rstrip("/"), recursive=True, allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return {self.key_of(i.path): i.mtime.astimezone(UTC) for i in infos if i.type == pafs.FileType.File}

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix``."""
        selector = pafs.FileSelector(self.path(prefix).rstrip("/"), recursive=False, allow_not_found=True)
        infos = self.fs.get_file_info(selector)
        return sorted(Path(i.path).name for i in infos if i.type == pafs.FileType.Directory)

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self.path(key)).type == pafs.FileType.File

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open_input_stream(self.path(key)) as f:
            return f.read()

    def write_bytes(self, key: str, data: bytes) -> str:
        """Write a whole object; local writes go through a temporary name so readers never see half."""
        target = self.path(key)
        if self.is_s3:
            with self.fs.open_output_stream(target) as f:
                f.write(data)
            return self.uri(key)
        tmp = f"{target}.{uuid.uuid4().hex}.tmp"
        for attempt in range(3):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            try:
                with self.fs.open_output_stream(tmp) as f:
                    f.write(data)
                break
            except FileNotFoundError:  # its folder was removed as empty between mkdir and open
                if attempt == 2:
                    raise
        self.fs.move(tmp, target)
        return self.uri(key)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(key))

    def remove_empty_folder(self, prefix: str) -> None:
        """Local disk keeps a folder after its last file goes (object stores have none): remove it if
        empty. Only for a step that owns the folder (consolidation, once its sources are gone)."""
        if not self.is_s3:
            with contextlib.suppress(OSError):  # not empty (or already gone)
                Path(self.path(prefix)).rmdir()

    # Parquet -----------------------------------------------------------------------------
    def write_parquet(self, key: str, frame: pl.DataFrame) -> str:
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=True)
        return self.write_bytes(key, buffer.getvalue())

    def read_parquet(self, key: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self.read_bytes(key)))

    def scan_parquet(self, keys: list[str], include_file_paths: str | None = None) -> pl.LazyFrame:
        """``include_file_paths`` names a column holding each row's file URI (``key_of`` maps it back)."""
        return pl.scan_parquet(
            [self.uri(k) for k in keys],
            storage_options=self.polars_storage_options,
            include_file_paths=include_file_paths,
        )
