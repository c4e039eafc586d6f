"""A deterministic synthetic DICOM archive for the harvest benchmark, built from real files.

    python benchmarks/corpus.py DIR [--files 20000] [--seed 0] [--subset-files 2000]
    python benchmarks/corpus.py DIR --one-file-series 12000 [--seed 0]

Every file is one of pydicom's bundled real test files (CT, MR, CR/DX, US single- and
multi-frame, NM, SC, SEG, RTDOSE, SR; explicit and implicit VR, uncompressed, RLE, JPEG,
JPEG 2000) with new patient, study, series and instance identity: PatientID, name, birth
date, sex, accession number, Study/Series/SOP Instance UIDs, dates and times,
InstanceNumber. Files are grouped as DIR/dicom/<patient>/<study>/<series>/<file>.

Speed: pydicom rewrites the header once per *series* with fixed-width placeholders in the
per-instance values (SOP Instance UID, InstanceNumber, acquisition/content time); each
instance is then the template's bytes with those placeholders overwritten in place
(same length, so no element length changes) plus the base file's pixel data bytes.

The archive is written to DIR/dicom and described in DIR/manifest.json (written last, so a
manifest means a complete corpus; a matching manifest means the corpus is reused).
DIR/subset-<K>/dicom holds hard links to the first K files (in harvest discovery order),
for the memory comparison at a smaller archive size.

With --one-file-series N, DIR instead holds an archive of N series of one file each (CR, DX,
CT, MR and secondary-capture bases), as archives of radiographs and secondary captures are:
1-4 series a study, 1-3 studies a patient, every file with its own Series and SOP Instance UIDs,
in folders of 500 files (DIR/dicom/F<k>/<patient>_ST<study>_SE<series>.dcm). The same trick
applies with one template per *study*: the series UID's last arc is a placeholder too, and
SeriesNumber takes the integer placeholder (InstanceNumber is 1).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pydicom
from pydicom import config as pydicom_config

GENERATOR_VERSION = 2
TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
UID_ROOT = "1.2.826.0.1.3680043.8.498.77."  # pydicom's UID root + a benchmark-specific arc

CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"
DX_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"

# Placeholders written by pydicom into the per-series template, overwritten per instance.
# Located in this order (the TM placeholder ends with the UID suffix placeholder).
TM_PLACEHOLDER = b"235959.999999"  # 13 characters, TM
IS_PLACEHOLDER = b"+987654321"  # 10 characters, IS
UID_SUFFIX_PLACEHOLDER = ".999999"  # the SOP Instance UID is <series uid>.<100000 + instance>
SERIES_ARC_PLACEHOLDER = ".9999999"  # one-file series: the series UID is <study arcs>.<1000000 + file index>


@dataclass(frozen=True)
class Base:
    """A bundled test file used as the base of a series."""

    name: str  # path under pydicom's test_files
    weight: int = 1


# Series bases per modality: the files a series of that modality is copied from.
BASES: dict[str, tuple[Base, ...]] = {
    "CT": (
        Base("CT_small.dcm", 6),  # GE, explicit VR LE, 128x128
        Base("dicomdirtests/77654033/CT2/17106", 3),  # GE, explicit VR LE
        Base("693_J2KI.dcm", 1),  # JPEG 2000
        Base("J2K_pixelrep_mismatch.dcm", 1),  # JPEG 2000 lossless, 512x512
    ),
    "MR": (
        Base("MR_small.dcm", 4),  # Toshiba, explicit VR LE
        Base("dicomdirtests/98892003/MR1/4919", 3),  # Philips
        Base("MR_small_implicit.dcm", 1),  # implicit VR LE
        Base("MR_small_RLE.dcm", 1),  # RLE
        Base("MR_small_jp2klossless.dcm", 1),  # JPEG 2000 lossless
        Base("examples_overlay.dcm", 1),  # Siemens, 300x484 with overlay
    ),
    "CR": (Base("dicomdirtests/77654033/CR1/6154"),),  # Agfa
    "DX": (Base("dicomdirtests/77654033/CR2/6247"),),  # the Agfa CR written as DX
    "US": (
        Base("examples_ybr_color.dcm", 3),  # SonoSite, 30-frame JPEG (multi-frame)
        Base("examples_rgb_color.dcm", 2),  # GE, RGB single frame
        Base("examples_palette.dcm", 1),  # Philips, palette colour
        Base("examples_jpeg2k.dcm", 1),  # GE, JPEG 2000
    ),
    "NM": (Base("JPEG2000.dcm"), Base("JPEG-lossy.dcm")),
    "OT": (Base("SC_rgb_rle.dcm"), Base("SC_rgb_jpeg_gdcm.dcm")),  # secondary capture (RLE, JPEG lossless)
    "SEG": (Base("liver_1frame.dcm"),),
    "RTDOSE": (Base("rtdose.dcm"),),  # implicit VR LE, 15 frames
    "SR": (Base("reportsi.dcm"), Base("test-SR.dcm")),
}

# Study kinds: (weight in number of studies, [(modality, series count range, instances range)]).
# CT and MR studies carry the bulk of the files (series of 50-200 instances); CR/DX/US are
# many small studies of single files; a few CT/MR studies also carry an SR, SEG, RTDOSE or SC.
STUDY_KINDS: dict[str, tuple[int, list[tuple[str, tuple[int, int], tuple[int, int]]]]] = {
    "CT": (18, [("CT", (1, 3), (50, 200))]),
    "MR": (14, [("MR", (2, 4), (50, 200))]),
    "CR": (38, [("CR", (1, 2), (1, 1))]),
    "DX": (16, [("DX", (1, 2), (1, 1))]),
    "US": (10, [("US", (1, 1), (1, 8))]),
    "NM": (3, [("NM", (1, 1), (1, 2))]),
}
EXTRA_SERIES = [("SR", 0.15), ("OT", 0.10), ("SEG", 0.05), ("RTDOSE", 0.03)]  # added to CT/MR studies

BODY_PARTS = {
    "CT": ["CHEST", "ABDOMEN", "HEAD", "PELVIS", "NECK"],
    "MR": ["BRAIN", "KNEE", "SPINE", "PROSTATE", "BREAST"],
    "CR": ["CHEST", "HAND", "FOOT", "KNEE"],
    "DX": ["CHEST", "SPINE", "PELVIS"],
    "US": ["ABDOMEN", "THYROID", "HEART"],
    "NM": ["WHOLEBODY"],
}
ONE_FILE_SERIES_VERSION = 1
# The one-file-series archive: modality -> (base, weight in number of studies). Radiographs dominate.
ONE_FILE_SERIES_BASES: dict[str, tuple[str, int]] = {
    "CR": ("dicomdirtests/77654033/CR1/6154", 3),
    "DX": ("dicomdirtests/77654033/CR2/6247", 2),
    "CT": ("CT_small.dcm", 2),
    "MR": ("MR_small.dcm", 2),
    "OT": ("SC_rgb_rle.dcm", 1),  # secondary capture
}

FIRST_NAMES = ["ANNA", "JOHN", "MARIA", "LI", "AHMED", "SARAH", "PIOTR", "YUKI", "CARLOS", "FATIMA"]
LAST_NAMES = ["SMITH", "GARCIA", "MUELLER", "WANG", "NOVAK", "OKAFOR", "ROSSI", "TANAKA", "BROWN", "COHEN"]
INSTITUTIONS = ["GENERAL HOSPITAL", "ST MARY MEDICAL CENTER", "UNIVERSITY CLINIC"]


@dataclass
class SeriesPlan:
    patient: int
    study: int
    series: int
    modality: str
    instances: int
    base: str


@dataclass
class OneFileSeriesStudy:
    """A study of the one-file-series archive: `series` series of one file each, all from one base."""

    patient: int
    study: int
    modality: str
    base: str
    series: int


def uid(*arcs: int) -> str:
    return UID_ROOT + ".".join(str(a) for a in arcs)


def plan_corpus(n_files: int, seed: int) -> list[SeriesPlan]:
    """The series of the corpus, in order, totalling exactly n_files instances."""
    rng = random.Random(seed)
    kinds = list(STUDY_KINDS)
    weights = [STUDY_KINDS[k][0] for k in kinds]
    plans: list[SeriesPlan] = []
    total = 0
    patient = 0
    while total < n_files:
        patient += 1
        for study in range(1, rng.randint(1, 4) + 1):
            kind = rng.choices(kinds, weights)[0]
            series_specs = []
            for modality, (s_lo, s_hi), (i_lo, i_hi) in STUDY_KINDS[kind][1]:
                series_specs += [(modality, rng.randint(i_lo, i_hi)) for _ in range(rng.randint(s_lo, s_hi))]
            if kind in ("CT", "MR"):
                series_specs += [(m, 1) for m, p in EXTRA_SERIES if rng.random() < p]
            for series, (modality, instances) in enumerate(series_specs, start=1):
                bases = BASES[modality]
                base = rng.choices([b.name for b in bases], [b.weight for b in bases])[0]
                instances = min(instances, n_files - total)
                if instances <= 0:
                    break
                plans.append(SeriesPlan(patient, study, series, modality, instances, base))
                total += instances
    return plans


class _Template:
    """One series' file: header bytes with placeholders at known offsets, then the pixel data bytes."""

    def __init__(self, header: bytes, tail: bytes, uid_offsets: list[int], is_offsets: list[int], tm_offsets: list[int],
                 series_arc_offsets: list[int] | None = None):
        self.header = header
        self.tail = tail
        self.uid_offsets = uid_offsets
        self.is_offsets = is_offsets
        self.tm_offsets = tm_offsets
        self.series_arc_offsets = series_arc_offsets or []

    def instance_bytes(self, sop_suffix: bytes, instance_number: bytes, time_value: bytes,
                       series_arc: bytes | None = None) -> bytes:
        data = bytearray(self.header)
        for off in self.tm_offsets:
            data[off : off + len(TM_PLACEHOLDER)] = time_value
        for off in self.uid_offsets:
            data[off : off + len(UID_SUFFIX_PLACEHOLDER)] = sop_suffix
        for off in self.is_offsets:
            data[off : off + len(IS_PLACEHOLDER)] = instance_number
        if series_arc is not None:
            for off in self.series_arc_offsets:
                data[off : off + len(SERIES_ARC_PLACEHOLDER)] = series_arc
        data += self.tail
        return bytes(data)


def _offsets(data: bytes, needle: bytes) -> list[int]:
    found, start = [], 0
    while (i := data.find(needle, start)) >= 0:
        found.append(i)
        start = i + len(needle)
    return found


def _write(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=False)
    return buf.getvalue()


def _series_template(ds: pydicom.Dataset, series_uid: str, per_file_series: bool = False) -> _Template:
    """Write the series' dataset once; locate the placeholders in the part before the pixel data.

    The placeholders sit in groups 0002, 0008 and 0020, so they all precede the first (7FE0,0010)
    tag in the file (top-level pixel data, or an icon image nested in a later group).
    per_file_series: series_uid ends with SERIES_ARC_PLACEHOLDER, located in the Series Instance UID
    and in both SOP Instance UIDs, so that every file can be a series of its own.
    """
    full = _write(ds)
    pixel_tag = full.find(b"\xe0\x7f\x10\x00", 132)
    split = pixel_tag if pixel_tag >= 0 else len(full)
    header, tail = full[:split], full[split:]
    placeholder_uid = (series_uid + UID_SUFFIX_PLACEHOLDER).encode()
    tm_offsets = _offsets(header, TM_PLACEHOLDER)
    masked = bytearray(header)
    for off in tm_offsets:
        masked[off : off + len(TM_PLACEHOLDER)] = b"-" * len(TM_PLACEHOLDER)
    uid_offsets = [off + len(series_uid) for off in _offsets(bytes(masked), placeholder_uid)]
    for off in uid_offsets:
        masked[off : off + len(UID_SUFFIX_PLACEHOLDER)] = b"-" * len(UID_SUFFIX_PLACEHOLDER)
    is_offsets = _offsets(bytes(masked), IS_PLACEHOLDER)
    if len(uid_offsets) != 2 or len(is_offsets) != 1 or len(tm_offsets) != 2:
        raise RuntimeError(
            f"{series_uid}: placeholders found uid={len(uid_offsets)} is={len(is_offsets)} tm={len(tm_offsets)}, "
            "expected 2, 1, 2"
        )
    series_arc_offsets = None
    if per_file_series:
        arc_start = len(series_uid) - len(SERIES_ARC_PLACEHOLDER)
        series_arc_offsets = [off + arc_start for off in _offsets(bytes(masked), series_uid.encode())]
        if len(series_arc_offsets) != 3:
            raise RuntimeError(f"{series_uid}: series UID found {len(series_arc_offsets)} times, expected 3")
    return _Template(header, tail, uid_offsets, is_offsets, tm_offsets, series_arc_offsets)


def _random_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, (end - start).days))


def _patient_identity(rng: random.Random, patient: int) -> dict[str, str]:
    birth = _random_date(rng, date(1930, 1, 1), date(2010, 12, 31))
    return {
        "PatientID": f"MRN{patient:07d}",
        "PatientName": f"{rng.choice(LAST_NAMES)}^{rng.choice(FIRST_NAMES)}",
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "PatientSex": rng.choice("MF"),
    }


def _study_identity(rng: random.Random, patient: int, study: int, modality: str, study_uid: str) -> dict[str, str]:
    return {
        "StudyInstanceUID": study_uid,
        "StudyDate": _random_date(rng, date(2015, 1, 1), date(2024, 12, 31)).strftime("%Y%m%d"),
        "StudyTime": f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}",
        "AccessionNumber": f"ACC{patient:06d}{study:02d}",
        "StudyID": str(study),
        "StudyDescription": f"{modality} {rng.choice(BODY_PARTS.get(modality, ['UNKNOWN']))}",
        "ReferringPhysicianName": f"{rng.choice(LAST_NAMES)}^{rng.choice(FIRST_NAMES)}^^DR",
        "InstitutionName": rng.choice(INSTITUTIONS),
    }


def _set_series_identity(ds: pydicom.Dataset, modality: str, identity: dict[str, str], series_uid: str,
                         series_number: str, instance_number: str, description: str, frame_uid: str) -> None:
    """Give the base dataset its patient, study and series values; per-file values are placeholders."""
    for keyword, value in identity.items():
        setattr(ds, keyword, value)
    sop_class = DX_SOP_CLASS if modality == "DX" else CR_SOP_CLASS if modality == "CR" else ds.SOPClassUID
    ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = series_uid + UID_SUFFIX_PLACEHOLDER
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "FrameOfReferenceUID" in ds:
        ds.FrameOfReferenceUID = frame_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = identity["StudyDate"]
    ds.SeriesTime = identity["StudyTime"]
    ds.InstanceNumber = instance_number
    ds.AcquisitionTime = ds.ContentTime = TM_PLACEHOLDER.decode()


def _seconds_of_day(hhmmss: str) -> int:
    return int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60


def _time_value(seconds: int, fraction: int) -> bytes:
    """A TM value as wide as TM_PLACEHOLDER: HHMMSS.FFFFFF, the fraction in thousandths of a second."""
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}.{fraction * 1000:06d}".encode()


def _matching_manifest(manifest_path: Path, wanted: dict) -> dict | None:
    """The manifest of a complete earlier build with the wanted parameters, marked reused; else None."""
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if not all(manifest.get(k) == v for k, v in wanted.items()):
        return None
    manifest["reused"] = True
    return manifest


def _remove(paths: list[Path]) -> None:
    for stale in paths:
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


def _write_leniently() -> None:
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE


def build_corpus(out_dir: Path, n_files: int = 20_000, seed: int = 0, subset_files: int = 2000, log=print) -> dict:
    """Build (or reuse) the corpus under out_dir; return its manifest."""
    out_dir = Path(out_dir).resolve()
    manifest_path = out_dir / "manifest.json"
    wanted = {"generator_version": GENERATOR_VERSION, "files": n_files, "seed": seed, "subset_files": subset_files,
              "pydicom": pydicom.__version__}
    if (reused := _matching_manifest(manifest_path, wanted)) is not None:
        return reused
    started = time.perf_counter()
    _remove([manifest_path, out_dir / "dicom", *out_dir.glob("subset-*")])
    dicom_dir = out_dir / "dicom"
    dicom_dir.mkdir(parents=True)

    _write_leniently()
    plans = plan_corpus(n_files, seed)
    rng = random.Random(seed + 1)
    bases = {name: pydicom.dcmread(TEST_FILES / name) for name in sorted({p.base for p in plans})}
    patients: dict[int, dict[str, str]] = {}
    studies: dict[tuple[int, int], dict[str, str]] = {}
    modalities: Counter[str] = Counter()
    total_bytes = 0
    files_written = 0
    for plan in plans:
        if plan.patient not in patients:
            patients[plan.patient] = _patient_identity(rng, plan.patient)
        key = (plan.patient, plan.study)
        if key not in studies:
            studies[key] = _study_identity(rng, plan.patient, plan.study, plan.modality, uid(1, plan.patient, plan.study))
        study = studies[key]
        series_uid = uid(2, plan.patient, plan.study, plan.series)
        ds = bases[plan.base]
        _set_series_identity(ds, plan.modality, {**patients[plan.patient], **study}, series_uid,
                             series_number=str(plan.series), instance_number=IS_PLACEHOLDER.decode(),
                             description=f"{plan.modality} series {plan.series}",
                             frame_uid=uid(3, plan.patient, plan.study, plan.series))
        if plan.modality in BODY_PARTS:
            ds.BodyPartExamined = rng.choice(BODY_PARTS[plan.modality])
        template = _series_template(ds, series_uid)

        series_dir = dicom_dir / patients[plan.patient]["PatientID"] / f"ST{plan.study:02d}" / f"SE{plan.series:02d}_{plan.modality}"
        series_dir.mkdir(parents=True)
        suffix = ".dcm" if plan.series % 2 else ""  # archives name files any way they like
        start_seconds = _seconds_of_day(study["StudyTime"]) + plan.series * 300
        for instance in range(1, plan.instances + 1):
            seconds = min(start_seconds + instance, 86399)
            data = template.instance_bytes(
                f".{100000 + instance}".encode(), f"{instance:<{len(IS_PLACEHOLDER)}}".encode(), _time_value(seconds, instance)
            )
            (series_dir / f"IM{instance:05d}{suffix}").write_bytes(data)
            total_bytes += len(data)
        files_written += plan.instances
        modalities[plan.modality] += plan.instances

    subset_dir = out_dir / f"subset-{subset_files}" / "dicom"
    if 0 < subset_files < n_files:
        subset_bytes = _link_subset(dicom_dir, subset_dir, subset_files)
    else:
        subset_bytes = None
    manifest = {
        **wanted,
        "files_written": files_written,
        "total_bytes": total_bytes,
        "patients": len(patients),
        "studies": len(studies),
        "series": len(plans),
        "files_by_modality": dict(sorted(modalities.items(), key=lambda kv: -kv[1])),
        "bases": sorted(bases),
        "dicom_dir": str(dicom_dir),
        "subset_dir": str(subset_dir) if subset_bytes is not None else None,
        "subset_bytes": subset_bytes,
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    manifest["reused"] = False
    return manifest


# --- the one-file-series archive ----------------------------------------------------------------


def plan_one_file_series(n_series: int, seed: int) -> list[OneFileSeriesStudy]:
    """The studies of the one-file-series archive, in order, totalling exactly n_series series (= files)."""
    rng = random.Random(seed)
    modalities = list(ONE_FILE_SERIES_BASES)
    weights = [ONE_FILE_SERIES_BASES[m][1] for m in modalities]
    plans: list[OneFileSeriesStudy] = []
    total = patient = 0
    while total < n_series:
        patient += 1
        for study in range(1, rng.randint(1, 3) + 1):
            modality = rng.choices(modalities, weights)[0]
            series = min(rng.randint(1, 4), n_series - total)
            if series <= 0:
                break
            plans.append(OneFileSeriesStudy(patient, study, modality, ONE_FILE_SERIES_BASES[modality][0], series))
            total += series
    return plans


def build_one_file_series_archive(out_dir: Path, n_series: int, seed: int = 0, files_per_folder: int = 500) -> dict:
    """Build (or reuse) under out_dir an archive of n_series series of one file each; return its manifest.

    One pydicom write per study: the template's series UID ends with SERIES_ARC_PLACEHOLDER and its
    SeriesNumber is IS_PLACEHOLDER, both overwritten per file, like the SOP Instance UID suffix and the times.
    """
    if not 0 < n_series < 9_000_000:  # the series arc is 1000000 + file index, 7 digits wide
        raise ValueError(f"n_series must be between 1 and 8,999,999, not {n_series}")
    out_dir = Path(out_dir).resolve()
    manifest_path = out_dir / "manifest.json"
    wanted = {"archive": "one-file series", "generator_version": ONE_FILE_SERIES_VERSION, "files": n_series,
              "seed": seed, "files_per_folder": files_per_folder, "pydicom": pydicom.__version__}
    if (reused := _matching_manifest(manifest_path, wanted)) is not None:
        return reused
    started = time.perf_counter()
    dicom_dir = out_dir / "dicom"
    _remove([manifest_path, dicom_dir])
    dicom_dir.mkdir(parents=True)

    _write_leniently()
    plans = plan_one_file_series(n_series, seed)
    rng = random.Random(seed + 1)
    bases = {name: pydicom.dcmread(TEST_FILES / name) for name in sorted({p.base for p in plans})}
    patients: dict[int, dict[str, str]] = {}
    modalities: Counter[str] = Counter()
    total_bytes = files_written = 0
    for plan in plans:
        if plan.patient not in patients:
            patients[plan.patient] = _patient_identity(rng, plan.patient)
        patient = patients[plan.patient]
        study = _study_identity(rng, plan.patient, plan.study, plan.modality, uid(5, plan.patient, plan.study))
        series_uid = uid(6, plan.patient, plan.study) + SERIES_ARC_PLACEHOLDER
        ds = bases[plan.base]
        _set_series_identity(ds, plan.modality, {**patient, **study}, series_uid,
                             series_number=IS_PLACEHOLDER.decode(), instance_number="1",
                             description=f"{plan.modality} single image", frame_uid=uid(7, plan.patient, plan.study))
        if plan.modality in BODY_PARTS:
            ds.BodyPartExamined = rng.choice(BODY_PARTS[plan.modality])
        template = _series_template(ds, series_uid, per_file_series=True)

        start_seconds = _seconds_of_day(study["StudyTime"])
        for series in range(1, plan.series + 1):
            folder = dicom_dir / f"F{files_written // files_per_folder:05d}"
            folder.mkdir(exist_ok=True)
            data = template.instance_bytes(
                f".{100000 + 1}".encode(), f"{series:<{len(IS_PLACEHOLDER)}}".encode(),
                _time_value(min(start_seconds + series * 60, 86399), series),
                series_arc=f".{1000000 + files_written}".encode(),
            )
            (folder / f"{patient['PatientID']}_ST{plan.study:02d}_SE{series:02d}.dcm").write_bytes(data)
            total_bytes += len(data)
            files_written += 1
        modalities[plan.modality] += plan.series

    manifest = {
        **wanted,
        "files_written": files_written,
        "total_bytes": total_bytes,
        "patients": len(patients),
        "studies": len(plans),
        "series": files_written,
        "folders": -(-files_written // files_per_folder),
        "files_by_modality": dict(sorted(modalities.items(), key=lambda kv: -kv[1])),
        "bases": sorted(bases),
        "dicom_dir": str(dicom_dir),
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    manifest["reused"] = False
    return manifest


def sorted_files(root: Path):
    """Files under root in the order the harvest discovers them (sorted folders, sorted names)."""
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        for name in sorted(names):
            yield Path(folder, name)


def _link_subset(src: Path, dst: Path, n: int) -> int:
    """Hard-link the first n files of src into dst (same inodes, so the same page cache)."""
    total = 0
    for i, path in enumerate(sorted_files(src)):
        if i >= n:
            break
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        total += path.stat().st_size
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset-files", type=int, default=2000)
    parser.add_argument("--one-file-series", type=int, default=0, metavar="N",
                        help="build an archive of N series of one file each instead (--files and --subset-files unused)")
    args = parser.parse_args(argv)
    if args.one_file_series:
        manifest = build_one_file_series_archive(args.out_dir, args.one_file_series, args.seed)
    else:
        manifest = build_corpus(args.out_dir, args.files, args.seed, args.subset_files)
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
