"""`imgomop scrub`: folder mode and cohort mode, parallel, resumable, with a manifest.

The manifest has one row per input. The copy that travels with the extract (Parquet under
`<out>/manifest/`) carries no identifier: inputs are named by a keyed hash of their location.
The warehouse copy (`scrub_manifest`, identified) also has the source location and series UID,
and `scrub_manifest_series` gives dbt the scrubbed location of each series for local_path.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from itertools import zip_longest
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from extractor.deid.pseudonymize import hash_text
from extractor.harvest.discover import check_sources, discover_files
from extractor.harvest.pipeline import show_progress
from extractor.parallel import run_chunks
from extractor.scrub.instance import (
    DEIDENTIFIED,
    FILTERED,
    Outcome,
    ScrubJob,
    ScrubSettings,
    compile_settings,
    scrub_chunk,
)
from extractor.scrub.sinks import Sink, open_sink
from extractor.warehouses.base import text_location

CHUNK_JOBS = 32
MANIFEST_FOLDER = "manifest"
# The warehouse copy's columns and types (explicit: a run with no errors must not type the
# error columns as null); the copy beside the extract keeps EXTRACT_COLUMNS of them.
MANIFEST_SCHEMA = pa.schema([
    ("location", pa.string()), ("outcome", pa.string()), ("rule", pa.string()), ("regions", pa.string()),
    ("output", pa.string()), ("transfer_syntax_in", pa.string()), ("transfer_syntax_out", pa.string()),
    ("bytes_in", pa.int64()), ("bytes_out", pa.int64()), ("seconds", pa.float64()),
    ("error_class", pa.string()), ("error", pa.string()), ("series_instance_uid", pa.string()),
    ("scrubbed_series_uid", pa.string()), ("source_key", pa.string()), ("run_id", pa.string()),
    ("scrubbed_at", pa.timestamp("us")),
])  # fmt: skip
EXTRACT_COLUMNS = (
    "source_key", "outcome", "rule", "regions", "output", "transfer_syntax_in", "transfer_syntax_out",
    "bytes_in", "bytes_out", "seconds", "error_class",
)  # fmt: skip


@dataclass
class ScrubSummary:
    run_id: str
    outcomes: Counter = field(default_factory=Counter)
    rules: Counter = field(default_factory=Counter)
    skipped: int = 0
    bytes_in: int = 0
    manifest: list[dict] = field(default_factory=list)  # warehouse rows of this run


def source_key(location: str, key: str) -> str:
    return hash_text("source", text_location(location), key)  # the form the warehouse keeps


def folder_jobs(sources: list[str]) -> Iterator[ScrubJob]:
    """Folder mode: every file under the sources, and what is neither a file nor a folder (a
    broken link, a FIFO: quarantined, so the manifest accounts for every entry); each patient's
    dates shift by its own jitter."""
    for ref in discover_files(check_sources(sources), other_entries=True):
        yield ScrubJob(ref.location, subject="")


def run_scrub(jobs: Iterable[ScrubJob], settings: ScrubSettings, workers: int | None = None) -> ScrubSummary:
    """Scrub the jobs into settings.destination; skip inputs a previous run finished."""
    workers = max(1, workers or os.cpu_count() or 1)
    compile_settings(settings)  # a bad profile or script fails here, before any worker starts
    summary = ScrubSummary(run_id=f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}")
    sink = open_sink(settings.destination)
    finished = _finished_keys(sink)
    pending: list[ScrubJob] = []
    for job in jobs:
        if source_key(job.location, settings.key) in finished:
            summary.skipped += 1
        else:
            pending.append(job)
    chunks = spread([pending[i : i + CHUNK_JOBS] for i in range(0, len(pending), CHUNK_JOBS)], workers)
    part = 0
    with tqdm(total=len(pending), unit="file", disable=not show_progress()) as bar:
        for outcomes in run_chunks(scrub_chunk, chunks, workers, settings):
            rows = [_manifest_row(o, settings.key, summary.run_id) for o in outcomes]
            _write_manifest_part(sink, summary.run_id, part, rows)
            part += 1
            for outcome in outcomes:
                summary.outcomes[outcome.outcome] += 1
                summary.rules[(outcome.outcome, outcome.rule or outcome.error_class or "")] += 1
                summary.bytes_in += outcome.bytes_in
            summary.manifest += rows
            bar.update(len(outcomes))
    return summary


def spread(chunks: list[list[ScrubJob]], workers: int) -> list[list[ScrubJob]]:
    """The chunks reordered so that workers running at the same time take them from different
    stretches of the inputs (one stretch per worker, taken in turn): files of a series lie
    together and are written to one folder, and workers writing into the same folder wait for
    each other in the kernel."""
    if workers < 2 or len(chunks) < 2:
        return chunks
    stretch = -(-len(chunks) // workers)  # ceiling division
    stretches = [chunks[i : i + stretch] for i in range(0, len(chunks), stretch)]
    return [chunk for round_ in zip_longest(*stretches) for chunk in round_ if chunk is not None]


def _manifest_row(outcome: Outcome, key: str, run_id: str) -> dict:
    row = dict(vars(outcome))  # asdict's deep copy is not needed: regions is replaced by its JSON
    row["regions"] = json.dumps(outcome.regions)
    row["source_key"] = source_key(outcome.location, key)
    row["run_id"] = run_id
    row["scrubbed_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
    return row


def _write_manifest_part(sink, run_id: str, part: int, rows: list[dict]) -> None:
    """Each chunk's rows land at once, so a crash loses at most the chunk in flight."""
    schema = pa.schema([MANIFEST_SCHEMA.field(c) for c in EXTRACT_COLUMNS])
    table = pa.Table.from_pylist([{c: row[c] for c in EXTRACT_COLUMNS} for row in rows], schema=schema)
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    sink.write(f"{MANIFEST_FOLDER}/part-{run_id}-{part:06d}.parquet", buffer.getvalue().to_pybytes())


def _finished_keys(sink: Sink) -> set[str]:
    """Inputs an earlier run de-identified or filtered (quarantined ones are tried again).

    Read from the manifest parts beside the extract, in a folder or a bucket alike.
    """
    keys: set[str] = set()
    for name in sink.names(MANIFEST_FOLDER):
        if not fnmatch(PurePosixPath(name).name, "part-*.parquet"):
            continue
        table = pq.read_table(pa.BufferReader(sink.read(name)), columns=["source_key", "outcome"])
        keys |= {k for k, o in zip(*table.to_pydict().values()) if o in (DEIDENTIFIED, FILTERED)}
    return keys


def format_scrub_summary(summary: ScrubSummary) -> str:
    lines = [
        f"scrub {summary.run_id}: "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(summary.outcomes.items()))
        + (f", {summary.skipped} already done (skipped)" if summary.skipped else "")
    ]
    for (outcome, rule), n in sorted(summary.rules.items()):
        if outcome != DEIDENTIFIED or rule:
            lines.append(f"  {outcome:<12} {rule or '-':<40} {n}")
    return "\n".join(lines)
