"""`imgomop review`: write the QA report of one scrub run as a static folder (index.html + images/).

Two versions:

- the full report shows original images and header values next to the scrubbed ones. It holds
  PHI, says so on its first line, and belongs where identified data may live (never inside
  the extract);
- the scrubbed-only report (`scrubbed_only=True`) holds no original pixel and no original value:
  scrubbed thumbnails, scrubbed values with the change category of each attribute, counts.
  Originals are still read (to tell what changed), never written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from extractor.review.collect import (
    DEIDENTIFIED,
    DeviceGroup,
    DeviceSignature,
    ManifestEntry,
    ReviewError,
    RunManifest,
    choose_samples,
    extract_root,
    group_by_device,
    load_run,
    signature_of,
)
from extractor.review.diff import BURNED_IN, AttributeChange, change_counts, compare, phi_category
from extractor.review.images import ImageError, Rendered, Window, render, thumbnail_png

IMAGES_FOLDER = "images"
STATS_LIMIT = 2000  # de-identified instances (about; shared by the groups) whose headers are compared


@dataclass
class PhiStatistics:
    """Changed attributes per PHI category, over the instances examined."""

    attributes: Counter = field(default_factory=Counter)  # category -> attributes changed
    instances: Counter = field(default_factory=Counter)  # category -> instances with such a change
    changes: Counter = field(default_factory=Counter)  # change category -> attributes
    examined: int = 0
    unreadable: int = 0

    def add(self, changes: list[AttributeChange]) -> None:
        categories = Counter(c for change in changes if (c := phi_category(change)))
        self.attributes.update(categories)
        self.instances.update(categories.keys())
        self.changes.update(change_counts(changes))
        self.examined += 1

    def add_burned_in(self, entries: list[ManifestEntry]) -> None:
        blanked = [e for e in entries if e.outcome == DEIDENTIFIED and e.regions]
        self.attributes[BURNED_IN] += sum(len(e.regions) for e in blanked)
        self.instances[BURNED_IN] += len(blanked)


@dataclass
class SampleView:
    entry: ManifestEntry
    original_image: str | None = None  # path relative to the report folder
    scrubbed_image: str | None = None
    image_notes: list[str] = field(default_factory=list)
    frame_text: str = ""
    changes: list[AttributeChange] = field(default_factory=list)
    scrubbed_signature: DeviceSignature | None = None  # as the scrubbed file carries it


@dataclass
class GroupView:
    number: int
    group: DeviceGroup
    label: str  # the device signature, or a neutral name where it may not be shown
    signature_shown: bool
    samples: list[SampleView]
    phi: PhiStatistics


@dataclass
class ReviewPage:
    run: RunManifest
    scrubbed_only: bool
    extract: str | None
    warehouse: str
    groups: list[GroupView]
    phi: PhiStatistics
    deidentified_total: int


@dataclass(frozen=True)
class ReviewResult:
    index: Path
    run_id: str
    instances: int
    groups: int
    samples: int
    scrubbed_only: bool


def write_review(identified: Path, out: Path, run_id: str | None = None, scrubbed_only: bool = False, samples: int = 3) -> ReviewResult:
    """Write out/index.html and out/images/*.png for one scrub run of the identified warehouse."""
    from extractor.review.html import render_page

    run = load_run(identified, run_id)
    extract = extract_root(run.entries)
    check_out_folder(out, extract)
    images = _fresh_images_folder(out)
    groups = [
        _group_view(number, group, images, scrubbed_only, samples, _share(group, run))
        for number, group in enumerate(group_by_device(run.entries), start=1)
    ]
    overall = PhiStatistics()
    for view in groups:
        overall.attributes.update(view.phi.attributes)
        overall.instances.update(view.phi.instances)
        overall.changes.update(view.phi.changes)
        overall.examined += view.phi.examined
        overall.unreadable += view.phi.unreadable
    page = ReviewPage(
        run=run,
        scrubbed_only=scrubbed_only,
        extract=extract,
        warehouse="" if scrubbed_only else str(identified),
        groups=groups,
        phi=overall,
        deidentified_total=run.outcomes[DEIDENTIFIED],
    )
    index = out / "index.html"
    _write_atomically(index, render_page(page))
    return ReviewResult(index, run.run_id, len(run.entries), len(groups), sum(len(g.samples) for g in groups), scrubbed_only)


def check_out_folder(out: Path, extract: str | None) -> None:
    """Refuse a report folder inside the extract: the report must never travel with the scrubbed files."""
    if not extract or extract.startswith("gs://"):
        return
    target, root = out.resolve(), Path(extract).resolve()
    if target == root or root in target.parents:
        raise ReviewError(
            f"{out}: inside the scrubbed extract {root}; write the review elsewhere "
            "(the full report holds PHI and must stay where identified data may live)"
        )


def _fresh_images_folder(out: Path) -> Path:
    """out/images, emptied of an earlier report's thumbnails (a scrubbed-only report must not
    inherit the originals of a full one written there before)."""
    images = out / IMAGES_FOLDER
    if images.exists():
        strangers = [p for p in images.iterdir() if not (p.is_file() and p.suffix == ".png")]
        if strangers:
            raise ReviewError(f"{images}: holds files the review did not write ({strangers[0].name}); choose another --out")
        shutil.rmtree(images)
    images.mkdir(parents=True)
    return images


def _share(group: DeviceGroup, run: RunManifest) -> int:
    """The group's part of STATS_LIMIT, in proportion to its de-identified instances (at least one)."""
    total = max(1, run.outcomes[DEIDENTIFIED])
    return max(1, -(-STATS_LIMIT * group.outcomes[DEIDENTIFIED] // total))


def _group_view(
    number: int, group: DeviceGroup, images: Path, scrubbed_only: bool, samples: int, stats_limit: int
) -> GroupView:
    sample_views = [
        _sample_view(entry, images, f"g{number:02d}-s{index}", scrubbed_only)
        for index, entry in enumerate(choose_samples(group, samples), start=1)
    ]
    shown = not scrubbed_only or any(_signature_released(view, group) for view in sample_views)
    label = group.signature.label() if shown else f"Device group {number} (signature not kept in the scrubbed files)"
    return GroupView(number, group, label, shown, sample_views, group_statistics(group, stats_limit))


def _signature_released(view: SampleView, group: DeviceGroup) -> bool:
    """In the scrubbed-only report a signature is shown only when a scrubbed file carries it too."""
    return view.scrubbed_signature == group.signature


def group_statistics(group: DeviceGroup, limit: int = STATS_LIMIT) -> PhiStatistics:
    """PHI statistics of a group: headers of (up to limit, evenly spread) de-identified pairs compared."""
    stats = PhiStatistics()
    stats.add_burned_in(group.entries)
    pairs = [e for e in group.entries if e.outcome == DEIDENTIFIED and e.output]
    step = max(1, -(-len(pairs) // limit))
    for entry in pairs[::step]:
        try:
            original = read_dataset(entry.location, pixels=False)
            scrubbed = read_dataset(entry.output or "", pixels=False)
        except Exception:  # noqa: BLE001 - a file gone since the scrub: counted, the report goes on
            stats.unreadable += 1
            continue
        stats.add(compare(original, scrubbed))
    return stats


def _sample_view(entry: ManifestEntry, images: Path, stem: str, scrubbed_only: bool) -> SampleView:
    view = SampleView(entry)
    original = _read_or_note(entry.location, "original", view)
    scrubbed = _read_or_note(entry.output, "scrubbed", view) if entry.output else None
    if original is not None and scrubbed is not None:
        view.changes = compare(original, scrubbed)
        if scrubbed_only:
            view.changes = [replace(c, original=None) for c in view.changes]
    if scrubbed is not None:
        view.scrubbed_signature = signature_of(scrubbed)
    regions = list(entry.regions)
    shown_original = None
    if original is not None and not scrubbed_only:
        shown_original = _render_or_note(original, None, "original", view)
        if shown_original is not None:
            view.original_image = _save_png(images, f"{stem}-original.png", shown_original, regions)
    if scrubbed is not None:
        window = shown_original.window if shown_original is not None else None
        shown = _render_or_note(scrubbed, window, "scrubbed", view)
        if shown is not None:
            view.scrubbed_image = _save_png(images, f"{stem}-scrubbed.png", shown, regions)
            view.frame_text = _frame_text(shown)
    elif shown_original is not None:
        view.frame_text = _frame_text(shown_original)
    return view


def _read_or_note(location: str | None, side: str, view: SampleView) -> Dataset | None:
    try:
        return read_dataset(location or "", pixels=True)
    except Exception as exc:  # noqa: BLE001 - shown in the report instead of failing it
        view.image_notes.append(f"{side} file not readable: {type(exc).__name__}")
        return None


def _render_or_note(ds: Dataset, window: Window | None, side: str, view: SampleView) -> Rendered | None:
    try:
        return render(ds, window)
    except ImageError as exc:
        view.image_notes.append(f"{side} image not shown: {exc}")
        return None


def _frame_text(shown: Rendered) -> str:
    frame = f"frame {shown.frame + 1} of {shown.frames}" if shown.frames > 1 else "single frame"
    if shown.window is None:
        return f"{frame}; colour"
    source = "the file's WindowCenter/Width" if shown.window.source == "file" else "a 1st-99th percentile window"
    return f"{frame}; window {shown.window.low:g} to {shown.window.high:g} ({source})"


def _save_png(images: Path, name: str, shown: Rendered, regions: list) -> str:
    (images / name).write_bytes(thumbnail_png(shown.image, regions))
    return f"{IMAGES_FOLDER}/{name}"


def read_dataset(location: str, pixels: bool) -> Dataset:
    """A DICOM file from a local path or a gs:// location."""
    if location.startswith("gs://"):
        import io

        from extractor.scrub.sinks import BucketSink

        bucket, _, name = location.removeprefix("gs://").partition("/")
        return pydicom.dcmread(io.BytesIO(BucketSink(f"gs://{bucket}").read(name)), stop_before_pixels=not pixels, force=True)
    return pydicom.dcmread(location, stop_before_pixels=not pixels, force=True)


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".html")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = ["ReviewError", "ReviewResult", "write_review", "check_out_folder"]
