"""Scrub requests: an extract for a study, asked for by dropping a small TOML file in a folder.

    cohort = "SELECT image_occurrence_id FROM image_occurrence WHERE modality_source_value = 'CT'"
    out = "extracts/study-42"          # a folder, or gs://bucket/prefix
    profile = "post-irb-limited"       # optional; default: [scrub] profile, else pre-irb

`cohort` is SQL over the de-identified tables, or a .sql file. Relative paths resolve against the
project folder (the config file's). `imgomop scrub-requests` runs every pending request
(`<folder>/*.toml`, by name) exactly as `imgomop scrub --cohort` does, then moves the file to
`done/`, or to `failed/` with the error beside it in `<name>.error.txt`, so a re-run never repeats
a request. A request that was interrupted (the process killed) stays pending and runs again; the
scrub itself skips the files it already finished.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

DONE = "done"
FAILED = "failed"
REQUEST_KEYS = ("cohort", "out", "profile")
REQUIRED_KEYS = ("cohort", "out")


class RequestError(ValueError):
    """A request file (or the requests folder) that cannot be used; the message names it."""


@dataclass(frozen=True)
class ScrubRequest:
    path: Path
    cohort: str  # SQL, or the absolute path of a .sql file
    out: str  # an absolute folder, or gs://bucket/prefix
    profile: str | None = None


@dataclass(frozen=True)
class Settled:
    """Where a request ended: its file under done/ or failed/, and the error when it failed."""

    request: Path
    moved_to: Path
    error: str | None = None


def pending_requests(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise RequestError(
            f"{folder}: scrub requests folder not found; create it, or set [schedule] requests in imgomop.toml"
        )
    return sorted(p for p in folder.glob("*.toml") if p.is_file())


def read_request(path: Path, base_dir: Path) -> ScrubRequest:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RequestError(f"{path}: not a readable TOML file: {exc}") from exc
    unknown = sorted(set(raw) - set(REQUEST_KEYS))
    if unknown:
        raise RequestError(f"{path}: unknown key(s) {', '.join(unknown)}; a request has {', '.join(REQUEST_KEYS)}")
    for key in REQUEST_KEYS:
        if key in raw and not (isinstance(raw[key], str) and raw[key].strip()):
            raise RequestError(f"{path}: {key} must be a non-empty string, got {raw[key]!r}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise RequestError(
            f"{path}: missing {', '.join(missing)}; a request needs cohort = \"SELECT image_occurrence_id ...\" "
            'and out = "folder or gs://bucket/prefix"'
        )
    cohort = raw["cohort"].strip()
    if cohort.lower().endswith(".sql"):
        cohort = str(_resolve(base_dir, cohort))
    out = raw["out"].strip()
    return ScrubRequest(
        path=path,
        cohort=cohort,
        out=out if out.startswith("gs://") else str(_resolve(base_dir, out)),
        profile=raw.get("profile"),
    )


def settle(path: Path, error: str | None = None) -> Settled:
    """Move a finished request to done/, or to failed/ with its error written beside it."""
    target_dir = path.parent / (FAILED if error else DONE)
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():  # the same name was requested before: keep both
        target = target_dir / f"{path.stem}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}{path.suffix}"
    if error:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        target.with_name(f"{target.stem}.error.txt").write_text(f"{stamp} {path.name} failed:\n{error}\n", encoding="utf-8")
    path.replace(target)
    return Settled(path, target, error)


def process_pending(folder: Path, base_dir: Path, run: Callable[[ScrubRequest], None]) -> list[Settled]:
    """Run every pending request with `run` (which raises on failure) and settle each one."""
    settled = []
    for path in pending_requests(folder):
        try:
            run(read_request(path, base_dir))
        except Exception as exc:  # noqa: BLE001 - any failure of one request is recorded, and the next one runs
            settled.append(settle(path, str(exc) or repr(exc)))
        else:
            settled.append(settle(path))
    return settled


def _resolve(base_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path
