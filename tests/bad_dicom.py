"""Bad and odd inputs for the harvest, written into a folder from pydicom's real bundled test files.

Every builder writes one or more files and returns `BadFile`s saying what the harvest must do
with each: record an error of a given class, or harvest it with given column values.
Derived files get fresh, deterministic UIDs so that no two of them collide by accident (the
duplicate-UID pair collides on purpose).

`truncation_reason` is an independent oracle (pydicom only, no extractor code) for "this file
really is truncated", used where the fast reader and pydicom may legitimately disagree.
"""

from __future__ import annotations

import copy
import functools
import gzip
import io
import random
import shutil
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pydicom
from PIL import Image
from pydicom import config
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import data_element_generator
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
UNDEFINED = 0xFFFFFFFF
PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"

JAPANESE_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
LATIN1_NAME = "Müller^Jürgen"
CHINESE_NAME = "Wang^XiaoDong=王^小东"
LONG_DESCRIPTION = ("Thorax CT with contrast, follow-up of nodule. " * 300)[:10_000]


@dataclass(frozen=True)
class BadFile:
    """One file of the corpus and what the harvest must make of it."""

    case: str
    path: Path
    expected_error: str | None  # error_class in raw_harvest_error, or None: harvested
    expect: dict[str, Any] = field(default_factory=dict)  # column -> exact stored value (harvested files)
    truncated: bool = False  # really truncated: the oracle below must agree
    message_hint: str = ""  # a regex the error message must match (names the problem)


# --- helpers ------------------------------------------------------------------------------


def load(name: str) -> FileDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(TEST_FILES / name)
        for _ in ds.iterall():  # convert every raw element, so re-encoding is clean
            pass
    return ds


def uid(*parts: str) -> str:
    return generate_uid(entropy_srcs=["imgomop-bad-corpus", *parts])


def renew_uids(ds: Dataset, key: str, series: str | None = None, study: str | None = None) -> Dataset:
    ds.SOPInstanceUID = uid(key, "sop")
    ds.SeriesInstanceUID = series or uid(key, "series")
    ds.StudyInstanceUID = study or uid(key, "study")
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def to_bytes(ds: Dataset, **kwargs: Any) -> bytes:
    kwargs.setdefault("enforce_file_format", True)
    bio = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid values and over-long VRs are the point here
        pydicom.dcmwrite(bio, ds, **kwargs)
    return bio.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def element_value_tell(data: bytes, tag: int) -> tuple[int, int]:
    """(byte offset of the value, value length) of a top-level element, as pydicom parses the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    raw = ds.get_item(tag)
    assert isinstance(raw, RawDataElement), f"{Tag(tag)} was already converted"
    return raw.value_tell, raw.length


def encode_parts(meta: Dataset | None, body: Dataset, *, implicit: bool, little: bool = True, preamble: bool = True) -> bytes:
    """Encode meta and dataset separately, so the meta can say one encoding and the body use another."""
    out = b"\0" * 128 + b"DICM" if preamble else b""
    if meta is not None:
        m = DicomBytesIO()
        m.is_little_endian, m.is_implicit_VR = True, False
        write_file_meta_info(m, meta, enforce_standard=True)
        out += m.getvalue()
    b = DicomBytesIO()
    b.is_little_endian, b.is_implicit_VR = little, implicit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dataset(b, body)
    return out + b.getvalue()


def implicit_element(tag: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b" "
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _marker(tag: int, length: int) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length)


def swap_16bit(data: bytes) -> bytes:
    swapped = bytearray(data)
    swapped[0::2], swapped[1::2] = data[1::2], data[0::2]
    return bytes(swapped)


# --- error cases --------------------------------------------------------------------------


def write_empty(folder: Path) -> list[BadFile]:
    return [BadFile("zero-byte", write(folder / "empty.dcm", b""), "EmptyFile", message_hint=r"empty")]


def write_truncated_headers(folder: Path) -> list[BadFile]:
    """CT_small cut inside element values of the dataset header (before and after the UIDs)."""
    ds = renew_uids(load("CT_small.dcm"), "truncated-header")
    data = to_bytes(ds)
    hint = r"end of the file|ends|shorter"
    cases = []
    for case, tag in (
        ("truncated-header-early", 0x00080008),  # ImageType, before any UID
        ("truncated-header-mid", 0x00200032),  # ImagePositionPatient, after the UIDs
        ("truncated-header-private", 0x00431028),  # a GE private value after the last harvested tag
    ):
        pos, length = element_value_tell(data, tag)
        assert length > 2, (case, length)
        cut = pos + length // 2
        cases.append(BadFile(case, write(folder / "truncated" / f"{case}.dcm", data[:cut]), "TruncatedHeader", truncated=True, message_hint=hint))
    return cases


def write_truncated_pixel_data(folder: Path) -> list[BadFile]:
    native = to_bytes(renew_uids(load("CT_small.dcm"), "truncated-pixels-native"))
    pos, length = element_value_tell(native, 0x7FE00010)
    assert pos + length < len(native)  # CT_small ends with a (FFFC,FFFC) padding element
    encapsulated = to_bytes(renew_uids(load("JPEG2000.dcm"), "truncated-pixels-encapsulated"))
    epos, elength = element_value_tell(encapsulated, 0x7FE00010)
    assert elength == UNDEFINED
    hint = r"(?i)pixel data"
    return [
        BadFile(
            "truncated-pixel-native",
            write(folder / "truncated" / "pixels-native.dcm", native[: pos + length // 2]),
            "TruncatedPixelData",
            truncated=True,
            message_hint=hint,
        ),
        BadFile(
            "truncated-pixel-encapsulated",
            # cut in the middle of the JPEG 2000 fragment, far past the basic offset table
            write(folder / "truncated" / "pixels-encapsulated.dcm", encapsulated[: epos + (len(encapsulated) - epos) // 2]),
            "TruncatedPixelData",
            truncated=True,
            message_hint=hint,
        ),
    ]


def write_not_dicom(folder: Path) -> list[BadFile]:
    nd = folder / "not_dicom"
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(png, format="PNG")
    rnd = random.Random(20240601).randbytes(4096)
    assert rnd[128:132] != b"DICM" and rnd[:2] not in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")
    hint = r"DICM|DICOM|too short"
    return [
        BadFile("text", write(nd / "notes.txt", b"Patient list\nDoe^John 1970-01-01\n" * 20), "NotDicom", message_hint=hint),
        BadFile("png", write(nd / "image.png", png.getvalue()), "NotDicom", message_hint=hint),
        BadFile("random-bytes", write(nd / "random.bin", rnd), "NotDicom", message_hint=hint),
        BadFile("gzip", write(nd / "CT_small.dcm.gz", gzip.compress((TEST_FILES / "CT_small.dcm").read_bytes(), mtime=0)), "NotDicom", message_hint=hint),
        BadFile("four-bytes", write(nd / "tiny.dcm", b"DICM"), "NotDicom", message_hint=hint),
    ]


def write_dicomdirs(folder: Path) -> list[BadFile]:
    out = []
    for name in ("DICOMDIR", "DICOMDIR-bigEnd", "DICOMDIR-implicit"):
        target = folder / "dicomdir" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEST_FILES / "dicomdirtests" / name, target)
        out.append(BadFile(f"dicomdir-{name}", target, "DICOMDIR", message_hint=r"DICOMDIR"))
    return out


def write_duplicate_sop_instance(folder: Path) -> list[BadFile]:
    """One SOP Instance UID in two files: the first location is kept, the second is an error."""
    ds = renew_uids(load("MR_small.dcm"), "duplicate")
    first = write(folder / "dup" / "a_first.dcm", to_bytes(ds))
    ds.InstanceNumber = 2  # different content, same UID
    second = write(folder / "dup" / "b_second.dcm", to_bytes(ds))
    return [
        BadFile("duplicate-kept", first, None, expect={"sop_instance_uid": ds.SOPInstanceUID, "instance_number": "1"}),
        BadFile("duplicate-rejected", second, "DuplicateSOPInstanceUID", message_hint=r"already harvested"),
    ]


def write_missing_uids(folder: Path) -> list[BadFile]:
    no_series = renew_uids(load("MR_small.dcm"), "missing-series")
    del no_series.SeriesInstanceUID
    empty_sop = renew_uids(load("MR_small.dcm"), "empty-sop")
    empty_sop.SOPInstanceUID = ""
    return [
        BadFile("missing-series-uid", write(folder / "missing" / "no_series_uid.dcm", to_bytes(no_series)), "MissingUID", message_hint=r"series_instance_uid"),
        BadFile("empty-sop-uid", write(folder / "missing" / "empty_sop_uid.dcm", to_bytes(empty_sop)), "MissingUID", message_hint=r"sop_instance_uid"),
    ]


# --- odd but harvestable ------------------------------------------------------------------


def write_encodings(folder: Path) -> list[BadFile]:
    """No preamble (explicit and implicit), big endian, deflated, implicit VR with a preamble."""
    out = []
    enc = folder / "encodings"

    ds = renew_uids(load("CT_small.dcm"), "no-preamble-explicit")
    ds.preamble = None
    data = to_bytes(ds, enforce_file_format=False)
    assert data[:2] == b"\x02\x00"
    out.append(BadFile("no-preamble-explicit", write(enc / "no_preamble_explicit.dcm", data), None, expect=_basics(ds, ExplicitVRLittleEndian)))

    ds = renew_uids(load("CT_small.dcm"), "no-preamble-implicit")
    ds.preamble = None
    del ds.file_meta
    data = to_bytes(ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert data[:4] == b"\x08\x00\x05\x00"  # bare implicit dataset: no preamble, no meta
    out.append(BadFile("no-preamble-implicit", write(enc / "no_preamble_implicit_no_meta.dcm", data), None, expect=_basics(ds, ImplicitVRLittleEndian)))

    ds = renew_uids(load("CT_small.dcm"), "big-endian")
    ds.PixelData = swap_16bit(ds.PixelData)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    data = to_bytes(ds, implicit_vr=False, little_endian=False, force_encoding=True, enforce_file_format=False)
    out.append(BadFile("big-endian", write(enc / "big_endian.dcm", data), None, expect=_basics(ds, ExplicitVRBigEndian)))

    ds = renew_uids(load("CT_small.dcm"), "deflated")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = to_bytes(ds)
    assert len(data) < len(to_bytes(load("CT_small.dcm"))) * 0.8  # really compressed
    out.append(BadFile("deflated", write(enc / "deflated.dcm", data), None, expect=_basics(ds, DeflatedExplicitVRLittleEndian)))

    ds = renew_uids(load("CT_small.dcm"), "implicit")
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    out.append(BadFile("implicit-vr", write(enc / "implicit_vr.dcm", to_bytes(ds)), None, expect=_basics(ds, ImplicitVRLittleEndian)))
    return out


def _basics(ds: Dataset, transfer_syntax: str) -> dict[str, Any]:
    """The values a correct harvest stores for a few identifying and technical attributes."""
    expect: dict[str, Any] = {"transfer_syntax_uid": str(transfer_syntax)}
    for keyword, column in (
        ("SOPInstanceUID", "sop_instance_uid"),
        ("SeriesInstanceUID", "series_instance_uid"),
        ("StudyInstanceUID", "study_instance_uid"),
        ("PatientName", "patient_name"),
        ("PatientID", "patient_id"),
        ("Modality", "modality"),
        ("PixelSpacing", "pixel_spacing"),
        ("SliceThickness", "slice_thickness"),
        ("KVP", "kvp"),
    ):
        value = ds.get(keyword)
        if value is None or value == "":
            expect[column] = None
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            expect[column] = "\\".join(str(v) for v in value)
        else:
            expect[column] = str(value)
    for keyword, column in (("Rows", "image_rows"), ("Columns", "image_columns"), ("BitsAllocated", "bits_allocated")):
        expect[column] = int(ds[keyword].value) if keyword in ds else None
    return expect


def write_invalid_dates(folder: Path) -> list[BadFile]:
    """Invalid dates and times are stored as the raw strings; the parsed acquisition time is NULL."""
    out = []
    for case, values, parsed in (
        ("invalid-date-month", {"StudyDate": "20231345", "StudyTime": "256199", "AcquisitionDateTime": "garbage!"}, None),
        ("invalid-date-short", {"StudyDate": "2023", "SeriesDate": "2023", "SeriesTime": "99", "AcquisitionDateTime": "20231345101010"}, None),
        ("datetime-with-offset", {"AcquisitionDateTime": "20230102101010.123456+0100"}, datetime(2023, 1, 2, 10, 10, 10, 123456)),
    ):
        ds = renew_uids(load("CT_small.dcm"), case)
        for keyword in ("AcquisitionDate", "AcquisitionTime", "ContentDate", "ContentTime"):
            if keyword in ds:
                delattr(ds, keyword)
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        columns = {
            "StudyDate": "study_date",
            "StudyTime": "study_time",
            "SeriesDate": "series_date",
            "SeriesTime": "series_time",
            "AcquisitionDateTime": "acquisition_datetime_raw",
        }
        expect: dict[str, Any] = {columns[k]: v for k, v in values.items()}
        expect["acquisition_date"] = None
        expect["content_date"] = None
        expect["acquisition_datetime"] = parsed
        out.append(BadFile(case, write(folder / "dates" / f"{case}.dcm", to_bytes(ds)), None, expect=expect))
    return out


def write_character_sets(folder: Path) -> list[BadFile]:
    out = []
    for case, charset, name, description, institution in (
        ("latin1", "ISO_IR 100", LATIN1_NAME, "Schädel CT ohne KM", "Klinikum Düsseldorf"),
        ("iso2022-ir87", "\\ISO 2022 IR 87", JAPANESE_NAME, "胸部単純", "山田病院"),
        ("gb18030", "GB18030", CHINESE_NAME, "胸部CT平扫", "北京协和医院"),
    ):
        ds = renew_uids(load("MR_small.dcm"), case)
        ds.SpecificCharacterSet = charset
        ds.PatientName = name
        ds.StudyDescription = description
        ds.InstitutionName = institution
        data = to_bytes(ds)
        assert name.encode("utf-8") not in data  # really stored in the declared character set
        expect = {
            "specific_character_set": charset,
            "patient_name": name,
            "study_description": description,
            "institution_name": institution,
        }
        out.append(BadFile(f"charset-{case}", write(folder / "charsets" / f"{case}.dcm", data), None, expect=expect))
    return out


def write_long_values(folder: Path) -> list[BadFile]:
    """A 10,000-character LO, a ~64 KB LT, a 70,000-byte private UT and a 2,000-item sequence."""
    out = []
    for case, ts in (("long-values-explicit", ExplicitVRLittleEndian), ("long-values-implicit", ImplicitVRLittleEndian)):
        ds = renew_uids(load("CT_small.dcm"), case)
        ds.file_meta.TransferSyntaxUID = ts
        ds.StudyDescription = LONG_DESCRIPTION
        ds.PatientComments = "c" * 65_534  # LT: the most an explicit VR 16-bit length can hold
        block = ds.private_block(0x0015, "IMGOMOP LONG", create=True)
        block.add_new(0x10, "UT", "u" * 70_000)
        ds.ReferencedImageSequence = Sequence([Dataset() for _ in range(2000)])
        for i, item in enumerate(ds.ReferencedImageSequence):
            item.ReferencedSOPClassUID = ds.SOPClassUID
            item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{i + 1}"
        data = to_bytes(ds)
        assert len(data) > 250_000
        expect = {"study_description": LONG_DESCRIPTION, **_basics(ds, ts)}
        out.append(BadFile(case, write(folder / "long" / f"{case}.dcm", data), None, expect=expect))
    return out


def _undefined_item(**values: Any) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    item.is_undefined_length_sequence_item = True
    return item


def _undefined_sequence(tag: int, items: list[Dataset]) -> DataElement:
    return DataElement(tag, "SQ", Sequence(items), is_undefined_length=True)


def write_nested_sequences(folder: Path) -> list[BadFile]:
    """Undefined-length sequences nested 3 deep and a private UN sequence of undefined length,
    each holding decoy values of harvested attributes that must not be picked up."""
    ds = renew_uids(load("CT_small.dcm"), "nested")
    level3 = _undefined_item(PatientName="Decoy^Level3", TextValue="deepest")
    level2 = _undefined_item(PatientName="Decoy^Level2")
    level2[0x0040A730] = _undefined_sequence(0x0040A730, [level3])  # ContentSequence
    level1 = _undefined_item(SeriesInstanceUID="1.2.3.999", StudyDescription="Decoy description")
    level1[0x00081140] = _undefined_sequence(0x00081140, [level2])  # ReferencedImageSequence
    ds[0x00081115] = _undefined_sequence(0x00081115, [level1, _undefined_item(Modality="XX")])  # ReferencedSeriesSequence

    # private (0015,xx10) UN, undefined length: items encoded in implicit VR, with a nested sequence
    items = (
        _marker(0xFFFEE000, UNDEFINED)
        + implicit_element(0x00100010, b"Decoy^UN")
        + implicit_element(0x00180050, b"99")
        + _marker(0x00081140, UNDEFINED)
        + _marker(0xFFFEE000, UNDEFINED)
        + implicit_element(0x00081155, b"1.2.3.4")
        + _marker(0xFFFEE00D, 0)
        + _marker(0xFFFEE000, 18)
        + implicit_element(0x00081155, b"1.2.3.5.6")
        + _marker(0xFFFEE0DD, 0)
        + _marker(0xFFFEE00D, 0)
    )
    ds.add_new(0x00150010, "LO", "IMGOMOP UN TEST")
    ds[0x00151010] = RawDataElement(Tag(0x00151010), "UN", UNDEFINED, items, 0, False, True)
    data = to_bytes(ds)
    assert data.count(b"\xff\xff\xff\xff") >= 9
    expect = {**_basics(ds, ExplicitVRLittleEndian), "study_description": ds.get("StudyDescription")}
    out = [BadFile("nested-undefined-sequences", write(folder / "nested" / "nested_sequences.dcm", data), None, expect=expect)]

    implicit = renew_uids(copy.deepcopy(ds), "nested-implicit")
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    del implicit[0x00151010]  # UN undefined length is an explicit VR construct
    expect = {**_basics(implicit, ImplicitVRLittleEndian), "study_description": implicit.get("StudyDescription")}
    out.append(BadFile("nested-undefined-sequences-implicit", write(folder / "nested" / "nested_sequences_implicit.dcm", to_bytes(implicit)), None, expect=expect))
    return out


def write_odd_names(folder: Path) -> list[BadFile]:
    out = []
    for case, name in (("no-extension", "noextension"), ("unicode-name", "scan 01 Müller 山田.dcm")):
        ds = renew_uids(load("MR_small.dcm"), case)
        out.append(BadFile(case, write(folder / "names" / name, to_bytes(ds)), None, expect={"sop_instance_uid": ds.SOPInstanceUID}))
    return out


def write_trailing_padding(folder: Path) -> list[BadFile]:
    ds = renew_uids(load("MR_small.dcm"), "padding-element")
    ds.DataSetTrailingPadding = b"\0" * 1024  # (FFFC,FFFC) after the pixel data
    padded = to_bytes(ds)
    raw = renew_uids(load("MR_small.dcm"), "padding-raw")
    del raw.DataSetTrailingPadding  # MR_small ends with a short (FFFC,FFFC); here the padding is bare bytes
    return [
        BadFile("trailing-padding-element", write(folder / "padding" / "padding_element.dcm", padded), None, expect=_basics(ds, ExplicitVRLittleEndian)),
        BadFile("trailing-zero-bytes", write(folder / "padding" / "padding_raw.dcm", to_bytes(raw) + b"\0" * 256), None, expect=_basics(raw, ExplicitVRLittleEndian)),
    ]


CONFLICT_SERIES = uid("conflict", "series")


def write_conflicting_series(folder: Path) -> list[BadFile]:
    """Two instances of one series that disagree on the patient."""
    out = []
    for i, (patient_id, birth_date) in enumerate((("PAT-A", "19700101"), ("PAT-B", "19800202")), start=1):
        ds = renew_uids(load("MR_small.dcm"), f"conflict-{i}", series=CONFLICT_SERIES, study=uid("conflict", "study"))
        ds.PatientID = patient_id
        ds.PatientBirthDate = birth_date
        ds.InstanceNumber = i
        path = write(folder / "conflict" / f"instance{i}.dcm", to_bytes(ds))
        out.append(BadFile(f"conflict-{i}", path, None, expect={"patient_id": patient_id, "patient_birth_date": birth_date, "series_instance_uid": CONFLICT_SERIES}))
    return out


CORPUS_BUILDERS: tuple[Callable[[Path], list[BadFile]], ...] = (
    write_empty,
    write_truncated_headers,
    write_truncated_pixel_data,
    write_not_dicom,
    write_dicomdirs,
    write_duplicate_sop_instance,
    write_missing_uids,
    write_encodings,
    write_invalid_dates,
    write_character_sets,
    write_long_values,
    write_nested_sequences,
    write_odd_names,
    write_trailing_padding,
    write_conflicting_series,
)


def quietly(builder: Callable[[Path], list[BadFile]]) -> Callable[[Path], list[BadFile]]:
    """pydicom warns about every invalid value it is asked to write; here they are the point."""

    @functools.wraps(builder)
    def wrapper(folder: Path) -> list[BadFile]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return builder(folder)

    return wrapper


@quietly
def build_corpus(folder: Path) -> list[BadFile]:
    """Every bad input the harvest issue names, in one folder."""
    files = [bad for builder in CORPUS_BUILDERS for bad in builder(folder)]
    assert len({f.path for f in files}) == len(files)
    return files


# --- truncations only pydicom (the general reader) sees ------------------------------------


@quietly
def build_fallback_truncations(folder: Path) -> list[BadFile]:
    """Truncated files whose encoding sends the reader to pydicom, or that cut an element header
    short: each must still become a TruncatedHeader error row and never abort the run."""
    hint = r"end of the file|ends|shorter|truncated"
    ct = to_bytes(renew_uids(load("CT_small.dcm"), "cut-meta"))
    assert ct[132:140] == b"\x02\x00\x00\x00UL\x04\x00"

    explicit = to_bytes(renew_uids(load("CT_small.dcm"), "cut-sq-header"))
    sq_value, _ = element_value_tell(explicit, 0x00101002)  # OtherPatientIDsSequence: a 12-byte header

    be = renew_uids(load("CT_small.dcm"), "cut-big-endian")
    be.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    be_data = to_bytes(be, implicit_vr=False, little_endian=False, force_encoding=True, enforce_file_format=False)
    be_pos, be_len = element_value_tell(be_data, 0x00200032)

    deflated = renew_uids(load("CT_small.dcm"), "cut-deflated")
    deflated.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    dfl = to_bytes(deflated)

    bare = renew_uids(load("CT_small.dcm"), "cut-no-preamble")
    bare.preamble = None
    bare_data = to_bytes(bare, enforce_file_format=False)
    bare_pos, bare_len = element_value_tell(bare_data, 0x00200032)

    cut = folder / "fallback_truncated"
    return [
        BadFile("cut-inside-meta", write(cut / "cut_inside_meta.dcm", ct[:141]), "TruncatedHeader", truncated=True, message_hint=hint),
        BadFile("cut-inside-sq-header", write(cut / "cut_inside_sq_header.dcm", explicit[: sq_value - 2]), "TruncatedHeader", truncated=True, message_hint=hint),
        BadFile("cut-big-endian", write(cut / "cut_big_endian.dcm", be_data[: be_pos + be_len // 2]), "TruncatedHeader", truncated=True, message_hint=hint),
        BadFile("cut-deflated", write(cut / "cut_deflated.dcm", dfl[: len(dfl) * 2 // 3]), "TruncatedHeader", truncated=True, message_hint=hint),
        BadFile("cut-no-preamble", write(cut / "cut_no_preamble.dcm", bare_data[: bare_pos + bare_len // 2]), "TruncatedHeader", truncated=True, message_hint=hint),
    ]


# --- encodings that lie about themselves (pydicom copes; the harvest must too) -------------


@quietly
def build_mislabelled(folder: Path) -> list[BadFile]:
    out = []
    ds = renew_uids(load("CT_small.dcm"), "explicit-under-implicit")
    meta = copy.deepcopy(ds.file_meta)
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    data = encode_parts(meta, ds, implicit=False)
    out.append(BadFile("explicit-dataset-under-implicit-ts", write(folder / "mislabelled" / "explicit_under_implicit.dcm", data), None, expect=_basics(ds, ImplicitVRLittleEndian)))

    ds = renew_uids(load("CT_small.dcm"), "implicit-under-explicit")
    data = encode_parts(ds.file_meta, ds, implicit=True)
    out.append(BadFile("implicit-dataset-under-explicit-ts", write(folder / "mislabelled" / "implicit_under_explicit.dcm", data), None, expect=_basics(ds, ExplicitVRLittleEndian)))

    # PatientName written with explicit VR UN (as VR-unaware tools do), GB18030 bytes inside
    ds = renew_uids(load("MR_small.dcm"), "un-patient-name")
    ds.SpecificCharacterSet = "GB18030"
    ds.PatientName = CHINESE_NAME
    data = to_bytes(ds)
    pos, length = element_value_tell(data, 0x00100010)
    assert data[pos - 4 : pos - 2] == b"PN"
    data = data[: pos - 4] + b"UN\0\0" + struct.pack("<I", length) + data[pos:]
    out.append(BadFile("un-vr-patient-name-gb18030", write(folder / "mislabelled" / "un_vr_patient_name.dcm", data), None, expect={"patient_name": CHINESE_NAME}))
    return out


# --- independent oracles (pydicom only) ---------------------------------------------------


def truncation_reason(data: bytes) -> str | None:
    """Why pydicom finds these bytes truncated, or None.

    Truncated means: pydicom's parser hits the end of the data inside an undefined-length value
    (EOFError), or the deflate stream is incomplete, or a top-level element declares more bytes
    than the file holds, or 1..7 stray bytes (a cut element header) follow the last element.
    Uses pydicom alone, so it can judge the harvest reader.
    """
    meta_problem = _meta_truncation(data)
    if meta_problem:
        return meta_problem
    old_mode = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE  # re-raise EOFError instead of warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True, defer_size=None)
    except EOFError as exc:
        return f"EOFError: {exc}"
    except zlib.error as exc:
        return f"incomplete deflate stream: {exc}"
    except struct.error as exc:
        return f"element cut short: {exc}"
    except Exception:  # noqa: BLE001 - unreadable for another reason: not a truncation
        return None
    finally:
        config.settings.reading_validation_mode = old_mode
    if not _parsed_as_dicom(ds):
        return None  # force=True parses any bytes; garbage tags mean it is not DICOM at all
    deflated = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None) == DeflatedExplicitVRLittleEndian
    meta_end = 0
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        for tag in file_meta.keys():
            raw = file_meta.get_item(tag)
            if isinstance(raw, RawDataElement) and raw.length != UNDEFINED:
                meta_end = max(meta_end, raw.value_tell + raw.length)
    ends = [meta_end]
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement):
            continue
        if raw.length == UNDEFINED:
            ends.append(-1)  # ends with its delimiter; pydicom checked it
            continue
        if raw.value is not None and len(raw.value) < raw.length:
            return f"{Tag(tag)} declares {raw.length} bytes, {len(raw.value)} present"
        ends.append(raw.value_tell + raw.length)
    if not deflated and max(ends) > 0:
        stray = len(data) - max(ends)
        if 0 < stray < 8:
            return f"{stray} stray bytes after the last element"
    return None


def _meta_truncation(data: bytes) -> str | None:
    """A file meta element (raw, unconverted) that declares more bytes than the file holds."""
    if data[128:132] != b"DICM":
        return None
    fp = io.BytesIO(data)
    fp.seek(132)
    try:
        for raw in data_element_generator(fp, False, True, stop_when=lambda tag, vr, length: tag.group != 2):
            if raw.length != UNDEFINED and len(raw.value or b"") < raw.length:
                return f"file meta {Tag(raw.tag)} declares {raw.length} bytes, {len(raw.value or b'')} present"
    except (EOFError, struct.error) as exc:
        return f"file meta cut short: {exc}"
    return None


def _parsed_as_dicom(ds: Dataset) -> bool:
    """Some public top-level tag pydicom knows, and no unknown public tag (garbage parses as those)."""
    public = [tag for tag in ds.keys() if tag.group % 2 == 0 and tag.element != 0]
    return bool(public) and all(keyword_for_tag(tag) for tag in public)


def pydicom_pixel_data_offset(data: bytes) -> int | None:
    """Byte offset of the (7FE0,0010) tag at the top level, as pydicom's parser finds it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if 0x7FE00010 not in ds:
        return None
    raw = ds.get_item(0x7FE00010)
    header = 8 if ds.is_implicit_VR else 12
    return raw.value_tell - header


def damaged(rng: random.Random, data: bytes, flips_within: int = 4096) -> bytes:
    """A copy of a file's bytes with 1-4 random bytes changed after the preamble (within the first
    `flips_within` bytes) and, three times in ten, cut short: for differential tests."""
    out = bytearray(data)
    for _flip in range(rng.randint(1, 4)):
        out[rng.randrange(128, min(len(out), flips_within))] = rng.randrange(256)
    if rng.random() < 0.3:
        del out[rng.randrange(132, len(out)) :]
    return bytes(out)


def with_and_without(monkeypatch: Any, module: Any, accelerator: str, call: Callable[[], Any]) -> tuple[Any, Any]:
    """`call()` with the module's C accelerator, then with it set to None (the Python path)."""
    with_c = call()
    with monkeypatch.context() as patch:
        patch.setattr(module, accelerator, None)
        without_c = call()
    return with_c, without_c
