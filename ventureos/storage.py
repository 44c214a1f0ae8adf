"""The lake's object store, addressed by keys relative to one root URI (local path or ``s3://``).

Tasks only ever see keys such as ``bronze/daily/osha/...``; this module maps them to local disk or
S3 through pyarrow's filesystems, so the same code runs in both shapes. What differs between the two
(paths and URIs, atomic writes, swapping a file in, folders) is each backend's own method; callers
never ask which one they have.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs

from ventureos.registry import Registry
from ventureos.settings import Settings

STORAGE_BACKENDS = Registry["Storage"]("storage backend")
"""Object stores by the scheme of their root (``storage_backend``); each registers its ``Storage`` subclass."""


def storage_backend(root: str) -> str:
    """The backend of a root URI: ``s3`` for ``s3://bucket[/prefix]``, else ``local`` (a path)."""
    return "s3" if root.startswith("s3://") else "local"


def open_storage(root: str, settings: Settings) -> Storage:
    """The storage rooted at ``root`` (the lake, a table location, a historical load's source)."""
    return STORAGE_BACKENDS.create(storage_backend(root), root, settings)


class Storage(ABC):
    """Objects under one root, by key: the extension point for another kind of object store.

    A backend subclasses it, registers with ``@STORAGE_BACKENDS.register(name)`` (and ``storage_backend``
    maps its roots to that name), and provides a pyarrow filesystem plus what that store does its own
    way: the root as pyarrow paths it, URIs, atomic whole-object writes, swapping a staged file into
    place, folders, and Polars' options to read it. Listing, bytes and Parquet are shared.
    """

    def __init__(self, root: str, settings: Settings) -> None:
        self.root = root.rstrip("/")
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        """The lake."""
        return open_storage(settings.lake, settings)

    @property
    @abstractmethod
    def fs(self) -> pafs.FileSystem:
        """The pyarrow filesystem every read and write goes through."""

    @property
    @abstractmethod
    def _base(self) -> str:
        """The root as pyarrow paths it."""

    def path(self, key: str) -> str:
        return f"{self._base}/{key.lstrip('/')}"

    @abstractmethod
    def uri(self, key: str) -> str:
        """The key as the rest of the system records it (lineage, Polars and pyiceberg reads)."""

    def key_of(self, path: str) -> str:
        """The key of a path or URI under the root."""
        return path.removeprefix("s3://").removeprefix("file://").removeprefix(self._base).lstrip("/")

    @property
    def polars_storage_options(self) -> dict[str, str] | None:
        """Polars' object-store options for reading ``uri``s; None when Polars needs none."""
        return None

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> str:
        """Write a whole object so that readers never see part of it; returns its URI."""

    @abstractmethod
    def replace(self, staging_key: str, key: str) -> None:
        """Put the staged file at ``key``, replacing what is there in one step (readers see old or new)."""

    @abstractmethod
    def remove_empty_folder(self, prefix: str) -> None:
        """Remove the folder under ``prefix`` if empty (only for a step that owns the folder, e.g.
        consolidation once its sources are gone)."""

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

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(key))

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


@STORAGE_BACKENDS.register("local")
class LocalStorage(Storage):
    """Local disk (the embedded shape)."""

    @cached_property
    def fs(self) -> pafs.FileSystem:
        return pafs.LocalFileSystem()

    @property
    def _base(self) -> str:
        return str(Path(self.root).resolve())

    def uri(self, key: str) -> str:
        return self.path(key)

    def key_of(self, path: str) -> str:
        path = path.removeprefix("file://")
        if not path.startswith(self._base):
            path = str(Path(path).resolve())  # the root went through a symlink (/tmp on macOS)
        return super().key_of(path)

    def write_bytes(self, key: str, data: bytes) -> str:
        """Written under a temporary name, then renamed."""
        target = self.path(key)
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

    def replace(self, staging_key: str, key: str) -> None:
        """A rename."""
        final = self.path(key)
        self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        self.fs.move(self.path(staging_key), final)

    def remove_empty_folder(self, prefix: str) -> None:
        """Local disk keeps a folder after its last file goes."""
        with contextlib.suppress(OSError):  # not empty (or already gone)
            Path(self.path(prefix)).rmdir()


@STORAGE_BACKENDS.register("s3")
class S3Storage(Storage):
    """S3 or an S3-compatible server (``VENTUREOS_AWS_ENDPOINT_URL``), rooted at ``s3://bucket[/prefix]``."""

    @cached_property
    def fs(self) -> pafs.FileSystem:
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
        """``bucket/prefix``."""
        return self.root.removeprefix("s3://")

    def uri(self, key: str) -> str:
        return f"{self.root}/{key.lstrip('/')}"

    @property
    def polars_storage_options(self) -> dict[str, str] | None:
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

    def write_bytes(self, key: str, data: bytes) -> str:
        """A single PUT: S3 objects appear whole."""
        with self.fs.open_output_stream(self.path(key)) as f:
            f.write(data)
        return self.uri(key)

    def replace(self, staging_key: str, key: str) -> None:
        """A server-side copy (S3 has no rename; a copy is atomic per object)."""
        self.fs.copy_file(self.path(staging_key), self.path(key))

    def remove_empty_folder(self, prefix: str) -> None:
        """Object stores have no folders: nothing to remove."""
