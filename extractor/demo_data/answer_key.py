"""The answer key: every injected PHI value and where it was put, plus a summary per file.

A location is a DICOM keyword path ("RequestAttributesSequence[0].AccessionNumber"), a private tag
("(0009,1001)"), "pixels" with a rectangle [x, y, width, height] for burned-in text,
"EncapsulatedDocument" for text inside a PDF, or "note_text[note_id=N]" for the EHR notes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, PrivateBlock

CATEGORIES = frozenset(
    {"name", "id", "date", "time", "address", "phone", "institution", "station", "device", "free_text", "burned_in"}
)
ANSWER_KEY_VERSION = 1


@dataclass(frozen=True)
class PhiValue:
    value: str
    category: str
    file: str  # relative to the archive root, with forward slashes
    location: str
    rect: tuple[int, int, int, int] | None = None

    def as_json(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "value": self.value,
            "category": self.category,
            "file": self.file,
            "location": self.location,
        }
        if self.rect is not None:
            entry["rect"] = list(self.rect)
        return entry


class PhiRecorder:
    """Sets PHI attributes on a dataset and remembers each value with its location in one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: list[PhiValue] = []

    def mention(
        self, value: str, category: str, location: str, rect: tuple[int, int, int, int] | None = None
    ) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"unknown PHI category {category!r}; use one of {sorted(CATEGORIES)}")
        if value:
            self.values.append(PhiValue(value, category, self.file, location, rect))

    def set(self, target: Dataset, keyword: str, value: str, category: str, within: str = "") -> None:
        """target.<keyword> = value; within is the keyword path of target inside the file's dataset."""
        setattr(target, keyword, value)
        self.mention(value, category, f"{within}.{keyword}" if within else keyword)

    def set_text(
        self, target: Dataset, keyword: str, text: str, mentions: Sequence[str], within: str = ""
    ) -> None:
        """A free-text attribute whose text contains the PHI strings in mentions."""
        setattr(target, keyword, text)
        for mention in mentions:
            assert mention in text, (mention, text)
            self.mention(mention, "free_text", f"{within}.{keyword}" if within else keyword)

    def set_private(self, block: PrivateBlock, offset: int, vr: str, value: str, category: str) -> None:
        block.add_new(offset, vr, value)
        tag = block.get_tag(offset)
        self.mention(value, category, f"({tag.group:04X},{tag.element:04X})")


@dataclass(frozen=True)
class FileSummary:
    file: str
    person_id: int
    patient_mrn: str
    birth_date: str  # YYYY-MM-DD
    accession: str  # "" when the study has none
    department: str
    has_order: bool
    procedure_occurrence_id: int | None
    visit_occurrence_id: int | None
    note_id: int | None
    study_date: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    modality: str
    manufacturer: str
    should_filter: bool
    filter_reason: str  # "" when the file should pass the filter
    needs_pixel_scrub: bool  # burned-in text a pixel rule must remove
    origin: str  # how the study came to exist (see orders.py)


@dataclass
class AnswerKey:
    seed: int
    phi: list[PhiValue] = field(default_factory=list)
    files: list[FileSummary] = field(default_factory=list)
    non_dicom_files: list[str] = field(default_factory=list)
    scenarios: dict[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "version": ANSWER_KEY_VERSION,
            "seed": self.seed,
            "categories": sorted(CATEGORIES),
            "scenarios": self.scenarios,
            "files": [asdict(summary) for summary in self.files],
            "non_dicom_files": self.non_dicom_files,
            "phi": [value.as_json() for value in self.phi],
        }

    def write(self, path: Path) -> None:
        text = json.dumps(self.as_json(), ensure_ascii=False, indent=1, sort_keys=False)
        path.write_text(text + "\n", encoding="utf-8")
