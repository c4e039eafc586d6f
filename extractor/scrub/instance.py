"""Scrub one DICOM instance: filter, blank pixels, de-identify metadata, write. A pure per-file step.

Every instance ends in exactly one outcome: deidentified, filtered (with the rule that filtered
it) or quarantined (with the error). The source file is only read.
"""

from __future__ import annotations

import io
import mmap
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info

from extractor.deid.pseudonymize import DeidParameters, load_allowlist
from extractor.harvest.discover import NotAFileError, open_found_file
from extractor.harvest.reader import looks_like_dicom
from extractor.scrub.ctp import load_filter_script, load_pixel_script
from extractor.scrub.filters import decide
from extractor.scrub.header import encode_file_fast, plain_string, plain_text, read_header_fast
from extractor.scrub.metadata import DeidContext, deidentify_metadata, load_profile
from extractor.scrub.metadata.apply import byte_transparent
from extractor.scrub.metadata.settled import deidentify_settled
from extractor.scrub.pixels import PixelError, blank_regions
from extractor.scrub.raw import RawScrub, scrub_raw
from extractor.scrub.sinks import SourceBytes, open_sink

DEIDENTIFIED, FILTERED, QUARANTINED = "deidentified", "filtered", "quarantined"
STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID = 0x0020000D, 0x0020000E, 0x00080018
MODALITY, TRANSFER_SYNTAX_UID, PATIENT_ID = 0x00080060, 0x00020010, 0x00100020


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
    skip_private: bool  # the profile removes every private element and no script reads one


@lru_cache(maxsize=4)
def compile_settings(settings: ScrubSettings) -> _Compiled:
    """Load the profile, scripts and allowlist once per process."""
    profile = load_profile(Path(settings.profile_path))
    allow_scripts = tuple(load_filter_script(Path(p)) for p in settings.allow_scripts)
    pixel_scripts = tuple(load_pixel_script(Path(p)) for p in settings.pixel_scripts)
    return _Compiled(
        profile=profile,
        allow_scripts=allow_scripts,
        pixel_scripts=pixel_scripts,
        allowlist=load_allowlist(settings.allowlist_path),
        parameters=DeidParameters(jitter_days_max=settings.jitter_days_max),
        sink=open_sink(settings.destination),
        skip_private=not profile.compiled.safe_private and not any(s.reads_private for s in allow_scripts + pixel_scripts),
    )


def scrub_chunk(jobs: list[ScrubJob], settings: ScrubSettings) -> list[Outcome]:
    compiled = compile_settings(settings)
    return [scrub_instance(job, settings, compiled) for job in jobs]


def scrub_instance(job: ScrubJob, settings: ScrubSettings, compiled: _Compiled, reference: bool = False) -> Outcome:
    """Scrub one file. ``reference=True`` takes the pydicom path all the way (read, walk every
    element, write): the fast header path must write the same bytes (tests/test_scrub_header.py)."""
    started = time.perf_counter()
    outcome = Outcome(job.location, QUARANTINED)
    try:
        _scrub(job, settings, compiled, outcome, reference)
    except Exception as exc:  # noqa: BLE001 - any failure quarantines this instance; the run goes on
        outcome.outcome = QUARANTINED
        outcome.error_class = outcome.error_class or type(exc).__name__
        outcome.error = outcome.error or str(exc)[:1000]
    outcome.seconds = time.perf_counter() - started
    return outcome


def _scrub(job: ScrubJob, settings: ScrubSettings, compiled: _Compiled, outcome: Outcome, reference: bool) -> None:
    # open until the output is written: pixel data left as it was is copied from it (SourceBytes)
    try:
        source, stat = open_found_file(job.location)
    except NotAFileError as exc:
        outcome.error_class, outcome.error = "NotAFile", str(exc)
        raise
    with source:
        _scrub_open(source.fileno(), _contents(source, stat.st_size), job, settings, compiled, outcome, reference)


MAP_FROM_BYTES = 256 * 1024  # larger files are mapped, not read: their pixel data is copied unread


def _contents(source: BinaryIO, size: int) -> bytes | mmap.mmap:
    """The file's bytes: read, or for a large file mapped read-only, so that pixel data the scrub
    leaves as it was never passes through this process (the header pages alone are touched).
    The map is not closed here: it goes when the last view of it does. A file truncated by
    another program while it is being scrubbed can stop the process (SIGBUS) where a read would
    have seen fewer bytes; a re-run resumes after the instances already written."""
    if size < MAP_FROM_BYTES or size == 0:  # an empty file cannot be mapped
        return source.read()
    return mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)


def _scrub_open(source: int, data: bytes | mmap.mmap, job: ScrubJob, settings: ScrubSettings, compiled: _Compiled,
                outcome: Outcome, reference: bool) -> None:
    outcome.bytes_in = len(data)
    if not looks_like_dicom(data[:132]):
        outcome.error_class, outcome.error = "NotDicom", "no DICM preamble and the first bytes are not a DICOM element"
        raise ValueError(outcome.error)
    if not reference:
        raw = scrub_raw(data, compiled, settings.key, job, lambda subject: _context(settings, compiled, job, subject, False))
        if raw is not None:
            _finish_raw(raw, source, compiled, outcome)
            return
    ds, pixel_offset = (None if reference else read_header_fast(data, compiled.skip_private)) or read_header(data)
    transfer_syntax = _single_text(ds.file_meta, TRANSFER_SYNTAX_UID, "TransferSyntaxUID") if hasattr(ds, "file_meta") else ""
    outcome.transfer_syntax_in = transfer_syntax
    outcome.series_instance_uid = _single_text(ds, SERIES_INSTANCE_UID, "SeriesInstanceUID") or None

    decision = decide(ds, transfer_syntax, compiled.allow_scripts)
    if not decision.passed:
        outcome.outcome, outcome.rule = FILTERED, decision.rule
        return
    pixel_rule = next((r for r in (s.regions_for(ds) for s in compiled.pixel_scripts) if r is not None), None)
    if pixel_rule is None and _single_text(ds, MODALITY, "Modality").upper() == "US":
        outcome.outcome, outcome.rule = FILTERED, "ultrasound-without-pixel-rule"
        return
    # Pixels left as they are travel as the source's bytes; pixels to blank need the whole dataset.
    pixel_tail = None if pixel_rule is not None else trailing_pixel_element(data, pixel_offset, transfer_syntax)
    if pixel_tail is None and pixel_offset < len(data):
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
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
    context = _context(settings, compiled, job, job.subject or f"patient:{_patient_id(ds)}", pixels_cleaned)
    # Both regenerate the file meta; the settled path walks only what the profile cannot settle by tag.
    (deidentify_metadata if reference else deidentify_settled)(ds, compiled.profile, context)
    study = plain_text(ds, STUDY_INSTANCE_UID) or ds.StudyInstanceUID  # plain UIDs are not decoded
    series = plain_text(ds, SERIES_INSTANCE_UID) or str(ds.SeriesInstanceUID)
    name = f"{study}/{series}/{plain_text(ds, SOP_INSTANCE_UID) or ds.SOPInstanceUID}.dcm"
    if pixel_tail is not None and str(ds.file_meta.TransferSyntaxUID) != transfer_syntax:
        raise RuntimeError("the transfer syntax changed during the scrub; the source pixel bytes no longer fit")
    encoded = (None if reference else encode_file_fast(ds)) or encode_file(ds)
    parts = _output_parts(encoded, source, pixel_offset, pixel_tail)
    outcome.output = compiled.sink.write(name, *parts)
    outcome.bytes_out = sum(len(p) for p in parts)
    outcome.transfer_syntax_out = str(ds.file_meta.TransferSyntaxUID)
    outcome.scrubbed_series_uid = series
    outcome.outcome = DEIDENTIFIED


def _context(settings: ScrubSettings, compiled: _Compiled, job: ScrubJob, subject: str, pixels_cleaned: bool) -> DeidContext:
    return DeidContext(
        key=settings.key,
        subject=subject,
        parameters=dict(job.parameters),
        allowlist=compiled.allowlist,
        deid_parameters=compiled.parameters,
        pixels_cleaned=pixels_cleaned,
    )


def _output_parts(encoded: bytes, source: int, pixel_offset: int, pixel_tail: memoryview | None) -> tuple:
    """The written header, then the source's untouched pixel data (copied from the source file)."""
    return (encoded,) if pixel_tail is None else (encoded, SourceBytes(source, pixel_offset, pixel_tail))


def _finish_raw(raw: RawScrub, source: int, compiled: _Compiled, outcome: Outcome) -> None:
    """The outcome of a file scrubbed on the raw path, written when not filtered."""
    outcome.transfer_syntax_in = raw.transfer_syntax
    outcome.series_instance_uid = raw.series_in or None
    if raw.filtered is not None:
        outcome.outcome, outcome.rule = FILTERED, raw.filtered
        return
    parts = _output_parts(raw.encoded, source, raw.pixel_offset, raw.pixel_tail)
    outcome.output = compiled.sink.write(raw.name, *parts)
    outcome.bytes_out = sum(len(p) for p in parts)
    outcome.transfer_syntax_out = raw.transfer_syntax
    outcome.scrubbed_series_uid = raw.series_out
    outcome.outcome = DEIDENTIFIED


def _patient_id(ds: Dataset) -> str:
    """str(ds.get("PatientID", "")).strip(), read from the raw bytes where the value is plain
    (left raw, the walker's outcome for it can be remembered)."""
    text = plain_string(ds, PATIENT_ID, byte_transparent(ds))
    return (text if text is not None else str(ds.get("PatientID", ""))).strip()


def _single_text(ds: Dataset, tag: int, keyword: str) -> str:
    """str(ds.get(keyword, "")), read from the raw bytes where the value is plain and single."""
    text = plain_text(ds, tag)
    return text if text is not None and "\\" not in text else str(ds.get(keyword, ""))


def encode_file(ds: Dataset) -> bytes:
    """The dataset as a DICOM file: preamble, the (regenerated) file meta group, the dataset.

    What dcmwrite(enforce_file_format=True) writes, without its defensive copy of the file meta
    (half its time on a CT header); deflated files go through dcmwrite, which compresses.
    """
    syntax = pydicom.uid.UID(str(ds.file_meta.TransferSyntaxUID))
    if not syntax.is_transfer_syntax or syntax.is_deflated:
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        return buffer.getvalue()
    out = DicomBytesIO()
    out.write(ds.preamble or b"\x00" * 128)
    out.write(b"DICM")
    write_file_meta_info(out, ds.file_meta, enforce_standard=True)
    out.is_little_endian, out.is_implicit_VR = syntax.is_little_endian, syntax.is_implicit_VR
    write_dataset(out, ds)
    return out.getvalue()


def read_header(data: bytes) -> tuple[Dataset, int]:
    """The dataset up to its pixel data, and the offset of the pixel data element (len(data) if none)."""
    stream = io.BytesIO(data)
    ds = pydicom.dcmread(stream, force=True, stop_before_pixels=True)
    return ds, stream.tell()


# Pixel data can be copied byte for byte only where the output keeps the source's encoding:
# deflated files are re-encoded as a whole, so their offsets do not carry over.
_DEFLATED = "1.2.840.10008.1.2.1.99"
_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_SEQUENCE_DELIMITER, _ITEM = 0xE0DDFFFE, 0xE000FFFE


def trailing_pixel_element(data: bytes, offset: int, transfer_syntax: str) -> memoryview | None:
    """The pixel data element's bytes, when nothing but trailing padding follows it; else None.

    Data Set Trailing Padding (FFFC,FFFC) after it is left out (the profile removes it anyway).
    None means "read the whole dataset": something else follows the pixel data (private groups
    above 7FE0), the encoding is deflated or big endian, or the element is damaged.
    """
    if offset >= len(data) or transfer_syntax in ("", _DEFLATED, _EXPLICIT_BIG):
        return None
    implicit = transfer_syntax == _IMPLICIT_LITTLE
    header = 8 if implicit else 12
    if offset + header > len(data) or (not implicit and data[offset + 4:offset + 6] not in (b"OB", b"OW", b"OF", b"OD", b"UN")):
        return None
    length = int.from_bytes(data[offset + header - 4:offset + header], "little")
    end = offset + header + length if length != 0xFFFFFFFF else _end_of_fragments(data, offset + header)
    if end is None or not (end == len(data) or _is_trailing_padding(data, end, implicit)):
        return None
    return memoryview(data)[offset:end]


def _is_trailing_padding(data: bytes, position: int, implicit: bool) -> bool:
    """Whether the bytes from position on are exactly one Data Set Trailing Padding element."""
    header = 8 if implicit else 12
    if data[position:position + 4] != b"\xfc\xff\xfc\xff" or position + header > len(data):
        return False
    if not implicit and data[position + 4:position + 6] != b"OB":
        return False
    length = int.from_bytes(data[position + header - 4:position + header], "little")
    return position + header + length == len(data)


def _end_of_fragments(data: bytes, position: int) -> int | None:
    """Where encapsulated pixel data ends: after the sequence delimiter that closes its items."""
    while position + 8 <= len(data):
        tag = int.from_bytes(data[position:position + 4], "little")
        length = int.from_bytes(data[position + 4:position + 8], "little")
        if tag == _SEQUENCE_DELIMITER:
            return position + 8
        if tag != _ITEM or length == 0xFFFFFFFF:
            return None
        position += 8 + length
    return None
