"""Where scrubbed files go: a folder (atomic rename) or a Cloud Storage bucket (one object per upload)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol


class Sink(Protocol):
    """An output location for the extract; names are relative paths that leak nothing."""

    description: str

    def exists(self, name: str) -> bool: ...

    def write(self, name: str, data: bytes) -> str:
        """Write atomically; return the full location written."""

    def location(self, name: str) -> str: ...


class FolderSink:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)
        root.mkdir(parents=True, exist_ok=True)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def location(self, name: str) -> str:
        return str(self.root / name)

    def write(self, name: str, data: bytes) -> str:
        """Write to a temporary file beside the target, then rename: never a half-written file."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return str(target)


class BucketSink:
    """gs://bucket/prefix through google-cloud-storage; an object appears whole or not at all."""

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

    def write(self, name: str, data: bytes) -> str:
        self.bucket.blob(self._blob_name(name)).upload_from_string(data, content_type="application/dicom")
        return self.location(name)


def open_sink(destination: str) -> Sink:
    if destination.startswith("gs://"):
        return BucketSink(destination)
    return FolderSink(Path(destination))
