"""What the review shows: one scrub run from the identified warehouse's `scrub_manifest`,
grouped by device signature, with a few sample instances per group.

Pixel rules are written and reviewed per device (CTP DicomPixelAnonymizer rules match on
Manufacturer, ManufacturerModelName, Rows and Columns), so the groups are exactly that
signature. It is read from the harvested `raw_dicom_instance` row of each input, or from the
file's header when the input was never harvested.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import duckdb
import pydicom

from extractor.scrub.instance import DEIDENTIFIED, FILTERED, QUARANTINED

OUTCOMES = (DEIDENTIFIED, FILTERED, QUARANTINED)
Region = tuple[int, int, int, int]


class ReviewError(ValueError):
    """The review cannot be made; the message names the file or run and the fix."""


@dataclass(frozen=True, order=True)
class DeviceSignature:
    manufacturer: str
    model: str
    rows: int
    columns: int

    def label(self) -> str:
        size = f"{self.rows} x {self.columns}" if self.rows and self.columns else "size unknown"
        return f"{self.manufacturer or '(no manufacturer)'} · {self.model or '(no model)'} · {size}"


@dataclass(frozen=True)
class ManifestEntry:
    """One input of the run: its manifest row and its device signature (identified values)."""

    location: str
    outcome: str
    rule: str | None
    regions: tuple[Region, ...]
    output: str | None
    error_class: str | None
    error: str | None
    source_key: str
    series_instance_uid: str | None
    modality: str
    signature: DeviceSignature


@dataclass
class DeviceGroup:
    signature: DeviceSignature
    entries: list[ManifestEntry] = field(default_factory=list)

    @property
    def outcomes(self) -> Counter:
        return Counter(e.outcome for e in self.entries)

    @property
    def rules(self) -> Counter:
        """(outcome, rule or error class) -> instances; plain de-identification without a rule is left out."""
        return Counter((e.outcome, e.rule or e.error_class or "") for e in self.entries if e.rule or e.outcome != DEIDENTIFIED)

    @property
    def modalities(self) -> list[str]:
        return sorted({e.modality for e in self.entries if e.modality})


@dataclass(frozen=True)
class RunManifest:
    run_id: str
    scrubbed_at: str
    entries: list[ManifestEntry]

    @property
    def outcomes(self) -> Counter:
        return Counter(e.outcome for e in self.entries)

    def rules_for(self, outcome: str) -> Counter:
        return Counter(e.rule or e.error_class or "(none)" for e in self.entries if e.outcome == outcome)

    @property
    def pixel_rules(self) -> Counter:
        return Counter(e.rule for e in self.entries if e.outcome == DEIDENTIFIED and e.regions)

    @property
    def regions_blanked(self) -> int:
        return sum(len(e.regions) for e in self.entries if e.outcome == DEIDENTIFIED)


def list_runs(identified: Path) -> list[tuple[str, str, int]]:
    """(run_id, last scrubbed_at, instances) of every scrub run recorded, newest first."""
    with _connect(identified) as con:
        return [
            (run_id, str(at), n)
            for run_id, at, n in con.execute(
                "SELECT run_id, max(scrubbed_at), count(*) FROM scrub_manifest GROUP BY run_id ORDER BY 2 DESC, 1 DESC"
            ).fetchall()
        ]


def load_run(identified: Path, run_id: str | None = None) -> RunManifest:
    """The manifest rows of one run (the latest when run_id is None), each with its device signature."""
    runs = list_runs(identified)
    if not runs:
        raise ReviewError(f"{identified}: scrub_manifest is empty; run `imgomop scrub --cohort ...` first")
    known = {r[0]: r for r in runs}
    if run_id is None:
        run_id = runs[0][0]
    elif run_id not in known:
        recent = ", ".join(r[0] for r in runs[:5])
        raise ReviewError(f"{identified}: no scrub run {run_id!r} in scrub_manifest (recent runs: {recent})")
    with _connect(identified) as con:
        rows = con.execute(_RUN_SQL, [run_id]).fetchall()
    return RunManifest(run_id, known[run_id][1], [_entry(*row) for row in rows])


_RUN_SQL = """
SELECT m.location, m.outcome, m.rule, m.regions, m.output, CAST(m.error_class AS VARCHAR), CAST(m.error AS VARCHAR),
       m.source_key, m.series_instance_uid, r.modality, r.manufacturer, r.manufacturer_model_name,
       r.image_rows, r.image_columns, r.location IS NOT NULL
FROM scrub_manifest m
LEFT JOIN raw_dicom_instance r ON r.location = m.location
WHERE m.run_id = ?
ORDER BY m.location
"""


class _connect:
    """A read-only connection to the identified DuckDB file, with a clear error when it is not usable."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        if not self.path.exists():
            raise ReviewError(f"{self.path}: identified warehouse not found; run `imgomop scrub --cohort ...` first")
        self.con = duckdb.connect(str(self.path), read_only=True)
        tables = {t for (t,) in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        missing = {"scrub_manifest", "raw_dicom_instance"} - tables
        if missing:
            self.con.close()
            raise ReviewError(
                f"{self.path}: no {' or '.join(sorted(missing))} table; the review reads the manifest of a cohort scrub "
                "(`imgomop scrub --cohort ...`); folder-mode scrubs keep their manifest only beside the extract"
            )
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def _entry(
    location: str, outcome: str, rule: str | None, regions: str | None, output: str | None,
    error_class: str | None, error: str | None, source_key: str, series_uid: str | None,
    modality: str | None, manufacturer: str | None, model: str | None, rows: int | None, columns: int | None,
    harvested: bool,
) -> ManifestEntry:  # fmt: skip
    if harvested:
        signature = DeviceSignature(_clean(manufacturer), _clean(model), int(rows or 0), int(columns or 0))
    else:
        signature, modality = header_signature(location)
    return ManifestEntry(
        location, outcome, rule, parse_regions(regions), output, error_class, error, source_key, series_uid,
        _clean(modality), signature,
    )  # fmt: skip


def _clean(value: str | None) -> str:
    return (value or "").strip()


def parse_regions(text: str | None) -> tuple[Region, ...]:
    """The manifest's regions column: a JSON list of [x, y, width, height]."""
    if not text:
        return ()
    return tuple(tuple(int(v) for v in region) for region in json.loads(text))  # type: ignore[misc]


def header_signature(location: str) -> tuple[DeviceSignature, str]:
    """Signature and modality from a file's header, for inputs that were never harvested."""
    try:
        ds = pydicom.dcmread(
            location, stop_before_pixels=True, force=True,
            specific_tags=["Manufacturer", "ManufacturerModelName", "Rows", "Columns", "Modality"],
        )  # fmt: skip
    except Exception:  # noqa: BLE001 - unreadable input (often the reason it was quarantined)
        return DeviceSignature("", "", 0, 0), ""
    return signature_of(ds), _clean(str(ds.get("Modality", "")))


def signature_of(ds: pydicom.Dataset) -> DeviceSignature:
    return DeviceSignature(
        _clean(str(ds.get("Manufacturer", "") or "")),
        _clean(str(ds.get("ManufacturerModelName", "") or "")),
        int(ds.get("Rows") or 0),
        int(ds.get("Columns") or 0),
    )


def group_by_device(entries: list[ManifestEntry]) -> list[DeviceGroup]:
    """One group per device signature, in signature order."""
    groups: dict[DeviceSignature, DeviceGroup] = {}
    for entry in entries:
        groups.setdefault(entry.signature, DeviceGroup(entry.signature)).entries.append(entry)
    return [groups[s] for s in sorted(groups)]


def choose_samples(group: DeviceGroup, count: int) -> list[ManifestEntry]:
    """Up to count instances worth looking at: pixel-scrubbed first, then other de-identified,
    then filtered and quarantined; one per series before a second from the same series."""

    def priority(entry: ManifestEntry) -> int:
        if entry.outcome == DEIDENTIFIED:
            return 0 if entry.regions else 1
        return 2 if entry.outcome == FILTERED else 3

    ranked = sorted(group.entries, key=lambda e: (priority(e), e.location))
    chosen: list[ManifestEntry] = []
    seen_series: set[str | None] = set()
    for entry in ranked:  # first pass: new series only
        if len(chosen) < count and entry.series_instance_uid not in seen_series:
            chosen.append(entry)
            seen_series.add(entry.series_instance_uid)
    for entry in ranked:
        if len(chosen) < count and entry not in chosen:
            chosen.append(entry)
    return sorted(chosen, key=lambda e: (priority(e), e.location))


def extract_root(entries: list[ManifestEntry]) -> str | None:
    """The folder (or gs:// prefix) the run wrote to: outputs are <root>/<study>/<series>/<sop>.dcm."""
    for entry in entries:
        if entry.outcome == DEIDENTIFIED and entry.output:
            if entry.output.startswith("gs://"):
                return str(PurePosixPath(entry.output).parents[2]).replace("gs:/", "gs://", 1)
            return str(Path(entry.output).parents[2])
    return None
