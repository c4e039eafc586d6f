"""Stage 1 of the scrub: which instances may be de-identified at all (fail closed).

Defaults from seed 001's discussion: encapsulated documents, structured reports, presentation
states, key objects, raw data, video, scanned film, secondary captures, burned-in annotation
flagged YES, an empty ConversionType, and ImageType DERIVED or SECONDARY are filtered, and so is
any SOP class that is not a known image class. The three rules marked bypassable in seed 001
(secondary capture, burned-in YES, DERIVED/SECONDARY) may be allowed back by a site's CTP
filter script: an instance it accepts skips those three checks, and only those.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword

from extractor.scrub.ctp import FilterScript
from extractor.scrub.header import plain_string, plain_text
from extractor.scrub.metadata.apply import byte_transparent

# A copy of sops.json from innolitics/dicom-standard (MIT), as in ../shared/dicom-standard (commit 7f4749d0)
SOP_CLASSES_JSON = Path(__file__).with_name("sop_classes.json")

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
# (rule name, SOP class UID prefix); a prefix ending in "." covers a family
FILTERED_SOP_CLASSES: tuple[tuple[str, str], ...] = (
    ("encapsulated-document", "1.2.840.10008.5.1.4.1.1.104."),
    ("structured-report", "1.2.840.10008.5.1.4.1.1.88."),
    ("presentation-state", "1.2.840.10008.5.1.4.1.1.11."),
    ("raw-data", "1.2.840.10008.5.1.4.1.1.66"),
    ("video", "1.2.840.10008.5.1.4.1.1.77.1.1.1"),
    ("video", "1.2.840.10008.5.1.4.1.1.77.1.2.1"),
    ("video", "1.2.840.10008.5.1.4.1.1.77.1.4.1"),
    ("video", "1.2.840.10008.5.1.4.1.1.77.1.5.3"),
)
VIDEO_TRANSFER_SYNTAX_PREFIX = "1.2.840.10008.1.2.4.10"  # MPEG-2, MPEG-4, HEVC: .100 to .108
SCANNED_FILM_MANUFACTURERS = ("VIDAR",)


@dataclass(frozen=True)
class FilterDecision:
    passed: bool
    rule: str | None = None  # the rule that filtered the instance, or that let it back in

    @classmethod
    def filtered(cls, rule: str) -> "FilterDecision":
        return cls(False, rule)


@lru_cache(maxsize=1)
def image_sop_classes() -> frozenset[str]:
    """SOP classes whose name says they store an image (from the DICOM standard's SOP table)."""
    sops = json.loads(SOP_CLASSES_JSON.read_text(encoding="utf-8"))
    return frozenset(s["id"] for s in sops if "Image Storage" in s["name"])


def _text(ds: Dataset, keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    text = plain_text(ds, tag)  # a plain UI, CS, SH or LO value is read without decoding it
    if text is None:
        text = plain_string(ds, tag, byte_transparent(ds))
    if text is not None:
        return text
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _sop_class_rule(sop_class: str, transfer_syntax: str) -> str | None:
    if transfer_syntax.startswith(VIDEO_TRANSFER_SYNTAX_PREFIX):
        return "video"
    for rule, prefix in FILTERED_SOP_CLASSES:
        if sop_class == prefix.rstrip(".") or sop_class.startswith(prefix):
            return rule
    if sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
        return None  # bypassable, decided below
    if sop_class not in image_sop_classes():
        return "unknown-sop-class"
    return None


BYPASSABLE_RULES: tuple[tuple[str, Callable[[Dataset], bool]], ...] = (
    ("secondary-capture", lambda ds: _text(ds, "SOPClassUID").startswith(SECONDARY_CAPTURE_PREFIX)),
    ("burned-in-annotation", lambda ds: _text(ds, "BurnedInAnnotation").strip().upper() == "YES"),
    ("derived-or-secondary", lambda ds: any(v in ("DERIVED", "SECONDARY") for v in _text(ds, "ImageType").upper().split("\\"))),
)


def decide(ds: Dataset, transfer_syntax: str, allow_scripts: tuple[FilterScript, ...] = ()) -> FilterDecision:
    """Filter an instance (header only) by the default rules; allow scripts may bypass three of them."""
    sop_rule = _sop_class_rule(_text(ds, "SOPClassUID"), transfer_syntax)
    if sop_rule:
        return FilterDecision.filtered(sop_rule)
    if _text(ds, "Manufacturer").strip().upper().startswith(SCANNED_FILM_MANUFACTURERS) or _text(ds, "ConversionType") == "DF":
        return FilterDecision.filtered("scanned-film")
    if "ConversionType" in ds and not _text(ds, "ConversionType").strip():
        return FilterDecision.filtered("empty-conversion-type")
    hits = [name for name, applies in BYPASSABLE_RULES if applies(ds)]
    if not hits:
        return FilterDecision(True)
    for script in allow_scripts:
        if script.matches(ds):
            return FilterDecision(True, f"allowed by {script.name}")
    return FilterDecision.filtered(hits[0])
