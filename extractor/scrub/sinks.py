"""Where scrubbed files go: a folder (atomic rename) or a Cloud Storage bucket (one object per upload)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

CONTENT_TYPES = {".dcm": "application/dicom", ".parquet": "application/vnd.apache.parquet"}


class Sink(Protocol):
    """An output location for the extract; names are relative paths that leak nothing."""

    description: str

    def exists(self, name: str) -> bool: ...

    def write(self, name: str, *parts: bytes | memoryview) -> str:
        """Write the parts, one after another, atomically; return the full location written."""

    def location(self, name: str) -> str: ...

    def names(self, folder: str) -> list[str]:
        """Names of the files written under folder (at any depth), sorted; for resuming a run."""

    def read(self, name: str) -> bytes: ...


class FolderSink:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)
        root.mkdir(parents=True, exist_ok=True)
        self._folders: set[Path] = {root}  # folders known to exist: one mkdir per series, not per file

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def location(self, name: str) -> str:
        return str(self.root / name)

    def names(self, folder: str) -> list[str]:
        base = self.root / folder
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".partial-")
        )

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def write(self, name: str, *parts: bytes | memoryview) -> str:
        """Write to a temporary file beside the target, then rename: never a half-written file."""
        target = self.root / name
        if target.parent not in self._folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(target.parent)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        try:
            with os.fdopen(handle, "wb") as out:
                for part in parts:
                    out.write(part)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return str(target)


class BucketSink:
    """gs://bucket/prefix through google-cloud-storage; an object appears whole or not at all.

    The client comes from the environment: application default credentials in production; with
    STORAGE_EMULATOR_HOST set (tests: gcp-storage-emulator) google-cloud-storage itself switches
    to that endpoint with anonymous credentials and the project of GOOGLE_CLOUD_PROJECT, if any.
    Nothing here needs a project: the bucket exists already and objects are addressed by name.
    """

    def __init__(self, url: str, client=None) -> None:
        from google.cloud import storage

        bucket_name, _, prefix = url.removeprefix("gs://").partition("/")
        self.client = client or storage.Client()
        self.bucket = self.client.bucket(bucket_name)
        self.prefix = prefix.strip("/")
        self.description = url

    def _blob_name(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def exists(self, name: str) -> bool:
        return self.bucket.blob(self._blob_name(name)).exists()

    def location(self, name: str) -> str:
        return f"gs://{self.bucket.name}/{self._blob_name(name)}"

    def names(self, folder: str) -> list[str]:
        prefix = self._blob_name(folder.strip("/")) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(blob.name[strip:] for blob in self.client.list_blobs(self.bucket, prefix=prefix))

    def read(self, name: str) -> bytes:
        return self.bucket.blob(self._blob_name(name)).download_as_bytes()

    def write(self, name: str, *parts: bytes | memoryview) -> str:
        content_type = CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        data = b"".join(parts)
        self.bucket.blob(self._blob_name(name)).upload_from_string(data, content_type=content_type)
        return self.location(name)


def open_sink(destination: str) -> Sink:
    if destination.startswith("gs://"):
        return BucketSink(destination)
    return FolderSink(Path(destination))
