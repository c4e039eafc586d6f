"""DICOM element references of the CTP script languages and the string values CTP compares.

An identifier is a keyword (Modality), a tag ([0008,0060], all eight hex digits, private tags
included), a private element by creator ([0019[GEMS_ACQU_01]10]), or a chain of them joined by
`::` that reads an element of the first item of a sequence (SeqOfUltrasoundRegions::RegionDataType).

The value is the element's string value; several values are joined with a backslash, as they are
stored; a missing element (or a missing sequence item) gives the empty string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from extractor.scrub.header import plain_text

# Element names of dcm4che 1.x (which CTP resolves keywords with) that differ from the DICOM
# keywords pydicom knows; checked against dcm4che's Tags class. Other names are refused at load.
DCM4CHE_NAMES: dict[str, int] = {
    "SoftwareVersion": 0x00181020,
    "SeqOfUltrasoundRegions": 0x00186011,
    "SecondaryCaptureDeviceSoftwareVersion": 0x00181019,
    "HardcopyDeviceSoftwareVersion": 0x0018101A,
    "RefSOPClassUID": 0x00081150,
    "RefSOPInstanceUID": 0x00081155,
    "RefImageSeq": 0x00081140,
    "RefSeriesSeq": 0x00081115,
    "RefStudySeq": 0x00081110,
    "SourceImageSeq": 0x00082112,
    "OperatorName": 0x00081070,
}
_FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})  # leading spaces are significant there


@dataclass(frozen=True)
class TagRef:
    tag: int

    def find(self, ds: Dataset) -> DataElement | None:
        if self.tag >> 16 == 0x0002:
            meta = getattr(ds, "file_meta", None)
            return meta.get(self.tag) if meta is not None else None
        return ds.get(self.tag)


@dataclass(frozen=True)
class PrivateRef:
    """A private element named by its block's creator: the offset is the low byte of the element."""

    group: int
    creator: str
    offset: int

    def find(self, ds: Dataset) -> DataElement | None:
        for block in range(0x10, 0x100):
            owner = ds.get((self.group << 16) | block)
            if owner is not None and element_text(owner) == self.creator:
                return ds.get((self.group << 16) | (block << 8) | self.offset)
        return None


ElementRef = TagRef | PrivateRef


@dataclass(frozen=True)
class ElementPath:
    """A chain of element references; all but the last name sequences."""

    refs: tuple[ElementRef, ...]
    text: str  # as written in the script

    @property
    def reads_private(self) -> bool:
        """Whether the path names a private element at the top level of the dataset."""
        first = self.refs[0]
        return isinstance(first, PrivateRef) or (first.tag >> 16) % 2 == 1

    def value_in(self, ds: Dataset) -> str:
        first = self.refs[0]
        if len(self.refs) == 1 and isinstance(first, TagRef) and first.tag >> 16 != 0x0002:
            text = plain_text(ds, first.tag)  # a plain UI or CS value is read without decoding it
            if text is not None:
                return text
        current = ds
        for ref in self.refs[:-1]:
            element = ref.find(current)
            if element is None or not isinstance(element.value, Sequence) or len(element.value) == 0:
                return ""
            current = element.value[0]
        return element_text(self.refs[-1].find(current))


def tag_for_name(name: str) -> int | None:
    """The tag of a keyword (DICOM keyword first, then a dcm4che 1.x name); None if unknown."""
    tag = tag_for_keyword(name)
    return tag if tag is not None else DCM4CHE_NAMES.get(name)


def known_names() -> Iterable[str]:
    from pydicom.datadict import keyword_dict

    return [*keyword_dict, *DCM4CHE_NAMES]


def dictionary_vr(tag: int) -> str | None:
    """The VR the DICOM dictionary gives a standard tag; None for private or unknown tags."""
    if (tag >> 16) % 2 == 1:
        return None
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def element_text(element: DataElement | None) -> str:
    if element is None:
        return ""
    value = element.value
    if value is None or isinstance(value, Sequence):
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1").rstrip("\x00 ")
    values = value if isinstance(value, (MultiValue, list, tuple)) else [value]
    return "\\".join(_value_text(v, element.VR) for v in values)


def _value_text(value: object, vr: str) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1").rstrip("\x00 ")
    text = str(value)
    return text.rstrip("\x00 ") if vr in _FREE_TEXT_VRS else text.strip("\x00 ")
