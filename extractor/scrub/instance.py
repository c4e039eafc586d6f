"""Scrub one DICOM instance: filter, blank pixels, de-identify metadata, write. A pure per-file step.

Every instance ends in exactly one outcome: deidentified, filtered (with the rule that filtered
it) or quarantined (with the error). The source file is only read.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pydicom

from extractor.deid.pseudonymize import DeidParameters, load_allowlist
from extractor.harvest.reader import looks_like_dicom
from extractor.scrub.ctp import load_filter_script, load_pixel_script
from extractor.scrub.filters import decide
from extractor.scrub.metadata import DeidContext, deidentify_metadata, load_profile
from extractor.scrub.pixels import PixelError, blank_regions
from extractor.scrub.sinks import open_sink

DEIDENTIFIED, FILTERED, QUARANTINED = "deidentified", "filtered", "quarantined"


@dataclass(frozen=True)
class ScrubSettings:
    """Everything a worker needs; picklable (the key travels to worker processes, never to disk or logs)."""

    profile_path: str
    destination: str
    key: str
    allowlist_path: str
    allow_scripts: tuple[str, ...] = ()
    pixel_scripts: tuple[str, ...] = ()
    jitter_days_max: int = 30


@dataclass(frozen=True)
class ScrubJob:
    """One source file, with the values its study must carry (cohort mode) and its jitter subject."""

    location: str
    subject: str
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    location: str
    outcome: str
    rule: str | None = None
    regions: list[list[int]] = field(default_factory=list)
    output: str | None = None
    transfer_syntax_in: str | None = None
    transfer_syntax_out: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    error_class: str | None = None
    error: str | None = None
    series_instance_uid: str | None = None  # identified: stays in the warehouse copy of the manifest
    scrubbed_series_uid: str | None = None


@dataclass(frozen=True)
class _Compiled:
    profile: object
    allow_scripts: tuple
    pixel_scripts: tuple
    allowlist: frozenset[str]
    parameters: DeidParameters
    sink: object


@lru_cache(maxsize=4)
def compile_settings(settings: ScrubSettings) -> _Compiled:
    """Load the profile, scripts and allowlist once per process."""
    return _Compiled(
        profile=load_profile(Path(settings.profile_path)),
        allow_scripts=tuple(load_filter_script(Path(p)) for p in settings.allow_scripts),
        pixel_scripts=tuple(load_pixel_script(Path(p)) for p in settings.pixel_scripts),
        allowlist=load_allowlist(settings.allowlist_path),
        parameters=DeidParameters(jitter_days_max=settings.jitter_days_max),
        sink=open_sink(settings.destination),
    )


def scrub_chunk(jobs: list[ScrubJob], settings: ScrubSettings) -> list[Outcome]:
    compiled = compile_settings(settings)
    return [scrub_instance(job, settings, compiled) for job in jobs]


def scrub_instance(job: ScrubJob, settings: ScrubSettings, compiled: _Compiled) -> Outcome:
    started = time.perf_counter()
    outcome = Outcome(job.location, QUARANTINED)
    try:
        _scrub(job, settings, compiled, outcome)
    except Exception as exc:  # noqa: BLE001 - any failure quarantines this instance; the run goes on
        outcome.outcome = QUARANTINED
        outcome.error_class = outcome.error_class or type(exc).__name__
        outcome.error = outcome.error or str(exc)[:1000]
    outcome.seconds = time.perf_counter() - started
    return outcome


def _scrub(job: ScrubJob, settings: ScrubSettings, compiled: _Compiled, outcome: Outcome) -> None:
    with open(job.location, "rb") as source:
        data = source.read()
    outcome.bytes_in = len(data)
    if not looks_like_dicom(data[:132]):
        outcome.error_class, outcome.error = "NotDicom", "no DICM preamble and the first bytes are not a DICOM element"
        raise ValueError(outcome.error)
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    outcome.transfer_syntax_in = transfer_syntax
    outcome.series_instance_uid = str(ds.get("SeriesInstanceUID", "")) or None

    decision = decide(ds, transfer_syntax, compiled.allow_scripts)
    if not decision.passed:
        outcome.outcome, outcome.rule = FILTERED, decision.rule
        return
    pixel_rule = next((r for r in (s.regions_for(ds) for s in compiled.pixel_scripts) if r is not None), None)
    if pixel_rule is None and str(ds.get("Modality", "")).upper() == "US":
        outcome.outcome, outcome.rule = FILTERED, "ultrasound-without-pixel-rule"
        return
    pixels_cleaned = False
    if pixel_rule is not None and "PixelData" in ds:
        try:
            result = blank_regions(ds, list(pixel_rule.regions), cleaning=True)
        except PixelError as exc:
            outcome.error_class, outcome.error = "PixelError", str(exc)
            raise
        outcome.regions = [list(r) for r in result.regions_applied]
        outcome.rule = pixel_rule.name
        pixels_cleaned = bool(result.regions_applied)
    context = DeidContext(
        key=settings.key,
        subject=job.subject or f"patient:{str(ds.get('PatientID', '')).strip()}",
        parameters=dict(job.parameters),
        allowlist=compiled.allowlist,
        deid_parameters=compiled.parameters,
        pixels_cleaned=pixels_cleaned,
    )
    deidentify_metadata(ds, compiled.profile, context)  # also regenerates the file meta
    name = f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    written = buffer.getvalue()
    outcome.output = compiled.sink.write(name, written)
    outcome.bytes_out = len(written)
    outcome.transfer_syntax_out = str(ds.file_meta.TransferSyntaxUID)
    outcome.scrubbed_series_uid = str(ds.SeriesInstanceUID)
    outcome.outcome = DEIDENTIFIED
