"""Step definitions of the readable regression suite tests/features/ctp_rules.feature.

Instances are built from the header of pydicom's bundled CT_small.dcm (pixel data dropped: the
rules read only the header), with the attributes each scenario names.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary
from pytest_bdd import given, parsers, scenarios, then, when

from extractor.scrub.ctp import FilterScript, PixelRule, PixelScript, Rectangle, load_filter_script, load_pixel_script

CTP_SCRIPTS = Path(__file__).resolve().parents[2] / "shared" / "ctp-scripts"
SAMPLE_CT = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
STORAGE_CLASS_FOR_MODALITY = {
    "CT": "CT Image Storage",
    "CR": "Computed Radiography Image Storage",
    "DX": "Digital X-Ray Image Storage - For Presentation",
    "MG": "Digital Mammography X-Ray Image Storage - For Presentation",
    "MR": "MR Image Storage",
    "NM": "Nuclear Medicine Image Storage",
    "OT": "Secondary Capture Image Storage",
    "PT": "Positron Emission Tomography Image Storage",
    "US": "Ultrasound Image Storage",
}
DEVICE_ATTRIBUTES_REPLACED = ("ManufacturerModelName", "SoftwareVersions", "SeriesDescription", "StationName")
_UID_FOR_NAME = {entry[0]: uid for uid, entry in UID_dictionary.items()}

scenarios("features/ctp_rules.feature")


class Case:
    """What one scenario builds and observes."""

    def __init__(self) -> None:
        self.filter_script: FilterScript | None = None
        self.pixel_script: PixelScript | None = None
        self.ds: Dataset | None = None
        self.passed: bool | None = None
        self.rule: PixelRule | None = None
        self.checked: set[Rectangle] = set()


@pytest.fixture
def case() -> Case:
    return Case()


@pytest.fixture(scope="module")
def stanford_filter() -> FilterScript:
    return load_filter_script(CTP_SCRIPTS / "stanford-filter.script")


@pytest.fixture(scope="module")
def stanford_pixel_script() -> PixelScript:
    return load_pixel_script(CTP_SCRIPTS / "stanford-scrubber.script")


def sample_ct() -> Dataset:
    ds = pydicom.dcmread(SAMPLE_CT)
    del ds.PixelData
    return ds


def set_attribute(ds: Dataset, keyword: str, text: str) -> None:
    tag = tag_for_keyword(keyword)
    assert tag is not None, f"{keyword} is not a DICOM keyword"
    values = text.split("\\")
    vr = dictionary_VR(tag)
    if vr in ("US", "SS", "UL", "SL"):
        values = [int(v) for v in values]
    ds.add_new(tag, vr, values if len(values) > 1 else values[0])


def replace_device(ds: Dataset, manufacturer: str, model: str, modality: str, software: str, rows: int, columns: int) -> None:
    for keyword in DEVICE_ATTRIBUTES_REPLACED:
        if keyword in ds:
            delattr(ds, keyword)
    ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions = manufacturer, model, software
    ds.Modality, ds.Rows, ds.Columns = modality, rows, columns
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = _UID_FOR_NAME[STORAGE_CLASS_FOR_MODALITY[modality]]


# --- Given ---------------------------------------------------------------------------------


@given(parsers.parse('the Stanford filter script "{name}"'))
def given_filter_script(case: Case, stanford_filter: FilterScript, name: str) -> None:
    assert stanford_filter.name == name
    case.filter_script = stanford_filter


@given(parsers.parse('the Stanford pixel script "{name}"'))
def given_pixel_script(case: Case, stanford_pixel_script: PixelScript, name: str) -> None:
    assert stanford_pixel_script.name == name
    case.pixel_script = stanford_pixel_script


@given("the unchanged sample CT instance")
def given_sample(case: Case) -> None:
    case.ds = sample_ct()


@given(
    parsers.parse(
        'an instance from "{manufacturer}", model "{model}", modality {modality:w}, software "{software}", {rows:d} x {columns:d}'
    )
)
def given_device(case: Case, manufacturer: str, model: str, modality: str, software: str, rows: int, columns: int) -> None:
    case.ds = sample_ct()
    replace_device(case.ds, manufacturer, model, modality, software, rows, columns)


@given(parsers.parse('its SOP class is "{name}"'))
def given_sop_class(case: Case, name: str) -> None:
    case.ds.SOPClassUID = _UID_FOR_NAME[name]


@given(parsers.parse('its {keyword:w} is "{value}"'))
def given_attribute(case: Case, keyword: str, value: str) -> None:
    set_attribute(case.ds, keyword, value)


@given(parsers.parse("it has an ultrasound region of data type {data_type:d}"))
def given_ultrasound_region(case: Case, data_type: int) -> None:
    region = Dataset()
    region.RegionDataType = data_type
    case.ds.SequenceOfUltrasoundRegions = Sequence([region])


# --- When ----------------------------------------------------------------------------------


@when("the Stanford filter runs")
def when_filter_runs(case: Case) -> None:
    case.passed = case.filter_script.matches(case.ds)


@when("the Stanford pixel script runs")
def when_pixel_script_runs(case: Case) -> None:
    case.rule = case.pixel_script.regions_for(case.ds)


# --- Then ----------------------------------------------------------------------------------


@then("it passes")
def then_passes(case: Case) -> None:
    assert case.passed is True, "the Stanford filter should let this instance through"


@then("it is filtered")
def then_filtered(case: Case) -> None:
    assert case.passed is False, "the Stanford filter should drop this instance"


@then(parsers.parse("the rectangle {x:d},{y:d},{width:d},{height:d} is blanked"))
def then_rectangle(case: Case, x: int, y: int, width: int, height: int) -> None:
    expected = Rectangle(x, y, width, height)
    assert case.rule is not None, f"no pixel rule matched, so {expected} is not blanked"
    assert expected in case.rule.rectangles, f"rule {case.rule.name} blanks {[str(r) for r in case.rule.rectangles]}"
    case.checked.add(expected)


@then(parsers.parse("the rule also lists the rectangle {x:d},{y:d},{width:d},{height:d}, which lies outside this image"))
def then_rectangle_outside(case: Case, x: int, y: int, width: int, height: int) -> None:
    listed = Rectangle(x, y, width, height)
    assert case.rule is not None and listed in case.rule.rectangles
    assert listed.clipped(columns=case.ds.Columns, rows=case.ds.Rows) is None
    case.checked.add(listed)


@then("nothing else is blanked")
def then_nothing_else(case: Case) -> None:
    assert case.rule is not None
    extra = [str(r) for r in case.rule.rectangles if r not in case.checked]
    assert not extra, f"rule {case.rule.name} also blanks {extra}"


@then("no rectangle is blanked")
def then_no_rectangle(case: Case) -> None:
    assert case.rule is None, f"rule {case.rule.name} ({case.rule.label}) matched"


@then(parsers.parse('the rule is the one labelled "{label}"'))
def then_rule_label(case: Case, label: str) -> None:
    assert case.rule is not None and case.rule.label == label, case.rule and case.rule.label
