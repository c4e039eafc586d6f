"""Find the files under the harvest sources (folders or single files)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISFIFO, S_ISREG
from typing import BinaryIO

from extractor.warehouses.base import FileRef


class SourceError(ValueError):
    """A harvest source that cannot be read; the message names it and the fix."""


class NotAFileError(OSError):
    """What the walk found is a FIFO or a device: nothing to read."""


NOT_FILES = {S_ISFIFO: "a FIFO (named pipe)", S_ISCHR: "a device", S_ISBLK: "a device"}  # a socket does not open


def open_found_file(location: str | bytes) -> tuple[BinaryIO, os.stat_result]:
    """A file the walk found, opened unbuffered (its readers read large pieces themselves), with
    its stat as opened. Not blocking: the walk does not stat, so this may be a FIFO with no
    writer, which a plain open waits on for ever; a FIFO or device raises NotAFileError."""
    fp = open(os.open(location, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb", buffering=0)
    stat = os.fstat(fp.fileno())
    if not S_ISREG(stat.st_mode):
        fp.close()
        kind = next((name for test, name in NOT_FILES.items() if test(stat.st_mode)), "not a regular file")
        raise NotAFileError(f"{kind}, not a file: nothing to read")
    return fp, stat


def check_sources(sources: list[str]) -> list[Path]:
    paths = []
    for source in sources:
        if "://" in source:
            raise SourceError(
                f"{source}: only local folders and files are harvested so far; "
                "copy or mount the bucket (e.g. gcsfuse) and pass the folder"
            )
        path = Path(source).expanduser()
        if not path.exists():
            raise SourceError(f"{source}: no such file or folder")
        paths.append(path.resolve())
    return _outermost(paths)


def _outermost(paths: list[Path]) -> list[Path]:
    """The sources without repeats and without folders inside another source: each file is found once."""
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: str(p) + os.sep):  # outer folders first, in location order
        if not any(path.is_relative_to(outer) for outer in kept):
            kept.append(path)
    return kept


def is_under(location: str, roots: list[str]) -> bool:
    """Whether a walk of the roots (folders or files) finds this location."""
    return any(location == root or location.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def discover_files(
    roots: list[Path], unreadable: list[str] | None = None, other_entries: bool = False
) -> Iterator[FileRef]:
    """Every regular file under the roots (not stat'ed: see FileRef), in location order.

    Symbolic links to folders are not followed (they can loop); hidden files are included,
    because archives name files any way they like. Folders that cannot be listed are skipped
    and appended to `unreadable` (their files are not known to be gone). With `other_entries`,
    also what is neither a file nor a folder (a broken link, a FIFO, a socket, a device), for
    the harvest to record as error rows and the scrub as quarantined inputs.
    """
    for root in roots:
        if root.is_file():
            yield FileRef(str(root))
        else:
            yield from _walk(str(root), unreadable, other_entries)


def _location_order(entry: os.DirEntry) -> str:
    """Sort key of a folder entry such that the walk finds files in the order of their locations
    (a folder sorts as its name and a separator: `a/b` goes after `a/b-c`, as `a/b/x` does)."""
    try:
        return entry.name + os.sep if entry.is_dir(follow_symlinks=False) else entry.name
    except OSError:
        return entry.name


def _walk(folder: str, unreadable: list[str] | None, other_entries: bool) -> Iterator[FileRef]:
    try:
        entries = sorted(os.scandir(folder), key=_location_order)
    except OSError:
        if unreadable is not None:
            unreadable.append(folder)
        return  # unreadable folder: nothing to harvest in it
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, unreadable, other_entries)
            elif entry.is_file() or (other_entries and not entry.is_dir()):  # a link to a folder is skipped
                yield FileRef(entry.path)
        except OSError:
            continue  # vanished or unreadable between listing and its type

