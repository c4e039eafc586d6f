"""Where files go inside dicom/: the naming habits of real archives, none of them identifying.

pacs:   PACS export folders, files named IM000123 without extension
cd:     imported patient CDs, DICOM file-set style 8-character names without extension
router: a DICOM router's spool, one <SOPInstanceUID>.dcm per instance
"""

from __future__ import annotations

import hashlib
import random

STYLES = ("pacs", "cd", "router")
DICOM_ROOT = "dicom"


def short_name(*parts: object) -> str:
    """An 8-character upper-case file-set name, stable for the same parts."""
    digest = hashlib.sha256("/".join(str(part) for part in parts).encode()).hexdigest()
    return digest[:8].upper()


class ArchiveLayout:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._style: dict[int, str] = {}
        self._next_image_number = 1

    def style_of(self, study_index: int, forced: str | None = None) -> str:
        if study_index not in self._style:
            self._style[study_index] = forced or self._rng.choice(STYLES)
        return self._style[study_index]

    def instance_path(self, study_index: int, series_number: int, sop_uid: str, style: str) -> str:
        if style == "pacs":
            name = f"IM{self._next_image_number:06d}"
            self._next_image_number += 1
            folder = f"DIR{study_index // 16:03d}/ST{study_index:06d}/SE{series_number:06d}"
            return f"{DICOM_ROOT}/pacs/{folder}/{name}"
        if style == "cd":
            return (
                f"{DICOM_ROOT}/cd_import/CD{study_index:04d}/DICOM/"
                f"{short_name('study', study_index)}/{short_name('series', study_index, series_number)}/"
                f"{short_name('sop', sop_uid)}"
            )
        return f"{DICOM_ROOT}/router/{short_name('study', study_index)}/{series_number}/{sop_uid}.dcm"
