"""Differential test of the harvest reader: the fast byte walker against pydicom.

For every file under pydicom's bundled test_files folder (recursively) and every file of the
bad-input corpus (tests/bad_dicom.py), `read_instance` (fast path, falling back to pydicom) is
compared with the pydicom reference (`_read_general` + `_check_row`: `pydicom.dcmread(...,
stop_before_pixels=True, force=True)` turned into a row).

- both succeed: every harvested column is equal (pixel_data_offset aside, which pydicom's
  header-only read does not know; where the fast path reports it, it must be where pydicom's
  full parse finds the (7FE0,0010) tag);
- both fail: with the same error class (a zero-byte file is EmptyFile for the fast path);
- they differ: only when the fast path reports TruncatedHeader / TruncatedPixelData for a file
  that `truncation_reason` (pydicom only) confirms really is truncated.
Anything else the fast path raises, other than HarvestError, is a failure.
"""

from __future__ import annotations

import io
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate

from bad_dicom import (
    TEST_FILES,
    build_corpus,
    build_fallback_truncations,
    build_mislabelled,
    damaged,
    pydicom_pixel_data_offset,
    to_bytes,
    truncation_reason,
    with_and_without,
)
from extractor.harvest import reader
from extractor.harvest.reader import PIXEL_TAG_BYTES, HarvestError, _check_row, _read_general, read_instance

TRUNCATION_CLASSES = {"TruncatedHeader", "TruncatedPixelData"}

# The corpus is written once, at collection, so that every file is its own test id.
_CORPUS_DIR = tempfile.TemporaryDirectory(prefix="imgomop-differential-")
_CORPUS_ROOT = Path(_CORPUS_DIR.name)
CORPUS = (
    build_corpus(_CORPUS_ROOT / "corpus")
    + build_fallback_truncations(_CORPUS_ROOT / "fallback")
    + build_mislabelled(_CORPUS_ROOT / "mislabelled")
)
BUNDLED = sorted(p for p in TEST_FILES.rglob("*") if p.is_file())


def fast(data: bytes) -> tuple[str, Any]:
    try:
        return "ok", read_instance(io.BytesIO(data), len(data))
    except HarvestError as exc:
        return exc.error_class, exc.message
    # any other exception propagates: read_instance must turn every bad input into HarvestError


def reference(data: bytes) -> tuple[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            row = _read_general(io.BytesIO(data))
            _check_row(row)
            return "ok", row
        except HarvestError as exc:
            return exc.error_class, exc.message
        except Exception as exc:  # noqa: BLE001 - pydicom itself gave up on the file
            return "PydicomError", f"{type(exc).__name__}: {exc}"


def compare(data: bytes, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast_outcome, fast_value = fast(data)
    ref_outcome, ref_value = reference(data)

    if fast_outcome == "ok" and ref_outcome == "ok":
        fast_row = {k: v for k, v in fast_value.items() if k != "pixel_data_offset"}
        ref_row = {k: v for k, v in ref_value.items() if k != "pixel_data_offset"}
        differing = {k: (fast_row.get(k), ref_row.get(k)) for k in fast_row.keys() | ref_row.keys() if fast_row.get(k) != ref_row.get(k)}
        assert not differing, f"{name}: columns differ (fast, pydicom): {differing}"
        offset = fast_value.get("pixel_data_offset")
        if offset is not None:
            assert offset == pydicom_pixel_data_offset(data), f"{name}: pixel_data_offset {offset}"
        return

    if fast_outcome != "ok" and ref_outcome != "ok":
        if fast_outcome == "EmptyFile":
            assert data == b"" and ref_outcome == "NotDicom", name
        elif fast_outcome in TRUNCATION_CLASSES and ref_outcome not in TRUNCATION_CLASSES:
            assert truncation_reason(data), f"{name}: fast path says {fast_outcome} ({fast_value}) but the file is not truncated"
        else:
            assert fast_outcome == ref_outcome, f"{name}: fast {fast_outcome} ({fast_value}) vs pydicom {ref_outcome} ({ref_value})"
        return

    assert fast_outcome in TRUNCATION_CLASSES, (
        f"{name}: fast path {fast_outcome} ({fast_value if fast_outcome != 'ok' else 'row'}) "
        f"but pydicom {ref_outcome} ({ref_value if ref_outcome != 'ok' else 'row'})"
    )
    reason = truncation_reason(data)
    assert reason, f"{name}: fast path says {fast_outcome} ({fast_value}) but pydicom finds the file complete"


@pytest.fixture(params=["c-accelerator", "pure-python"])
def walker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the C accelerator of the walker, and again without it."""
    if request.param == "pure-python":
        monkeypatch.setattr(reader, "_fast_forward", None)
    return request.param


@pytest.mark.parametrize("path", BUNDLED, ids=[str(p.relative_to(TEST_FILES)) for p in BUNDLED])
def test_bundled_test_file(path: Path, walker: str) -> None:
    compare(path.read_bytes(), str(path.relative_to(TEST_FILES)))


def test_the_pixel_data_of_an_icon_image_is_not_the_file_s(walker: str) -> None:
    """An icon image (0088,0200, after every harvested attribute) holds encapsulated pixel data of
    its own inside a sequence item: the file's pixel data is the top-level element after it."""
    ds = pydicom.dcmread(TEST_FILES / "SC_rgb_jpeg_gdcm.dcm")
    icon = Dataset()
    icon.Rows, icon.Columns, icon.SamplesPerPixel, icon.BitsAllocated = 4, 4, 1, 8
    icon.PixelData = encapsulate([bytes(range(16))])
    icon["PixelData"].VR, icon["PixelData"].is_undefined_length = "OB", True
    ds.IconImageSequence = [icon]
    data = to_bytes(ds)
    icon_offset = data.find(PIXEL_TAG_BYTES)
    assert 0 < icon_offset < pydicom_pixel_data_offset(data)
    compare(data, "icon image")
    assert read_instance(io.BytesIO(data), len(data))["pixel_data_offset"] == pydicom_pixel_data_offset(data)


@pytest.mark.parametrize("bad", CORPUS, ids=[b.case for b in CORPUS])
def test_bad_corpus_file(bad, walker: str) -> None:  # noqa: ANN001 - BadFile
    compare(bad.path.read_bytes(), bad.case)


def test_the_c_accelerator_is_built() -> None:
    """`pip install .` compiles extractor/harvest/_walk.c (setup.py); without it harvest is slower."""
    assert reader._fast_forward is not None, "extractor.harvest._walk is missing: install with a C compiler (gcc)"


def _outcome_with_and_without_accelerator(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    return with_and_without(monkeypatch, reader, "_fast_forward", lambda: fast(data))


def test_the_accelerator_changes_nothing_on_damaged_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random byte flips and cuts of real files: the same row, or the same error and message, either way."""
    rng = random.Random(20261123)
    bases = [p for p in BUNDLED if p.suffix == ".dcm" and p.stat().st_size < 600_000]
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(1500):
            with_c, without_c = _outcome_with_and_without_accelerator(damaged(rng, rng.choice(bases).read_bytes()), monkeypatch)
            assert with_c == without_c
            compared += 1
    assert compared == 1500


def test_the_differential_covers_the_whole_bundled_folder() -> None:
    assert len(BUNDLED) >= 170
    assert {"CT_small.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm", "MR_truncated.dcm"} <= {p.name for p in BUNDLED}
    assert any(p.parent.name == "dicomdirtests" for p in BUNDLED)


@pytest.mark.parametrize("bad", CORPUS, ids=[b.case for b in CORPUS])
def test_truncation_oracle_agrees_with_the_corpus_labels(bad) -> None:  # noqa: ANN001 - BadFile
    """The oracle that licenses a disagreement must itself be right about the corpus."""
    reason = truncation_reason(bad.path.read_bytes())
    assert bool(reason) == bad.truncated, f"{bad.case}: oracle says {reason!r}"


def test_truncation_oracle_on_the_bundled_files() -> None:
    truncated = {str(p.relative_to(TEST_FILES)) for p in BUNDLED if truncation_reason(p.read_bytes())}
    assert truncated == {"MR_truncated.dcm", "rtplan_truncated.dcm"}


def test_plain_datetimes_parse_as_the_untidy_parser_reads_them() -> None:
    """The fast path for well-formed DT text must give what the general clean-up gives."""
    rng = random.Random(7)
    texts = ["20240101", "2024010112", "202401011230", "20240101123059", "20240101123059.5", "20240230", "20241301120000"]
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([8, 9, 10, 11, 12, 13, 14, 15, 16])))
        fraction = "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 8))) if rng.random() < 0.4 else ""
        texts.append(rng.choice(["2024", "1999", "0000"]) + rng.choice(["0101", "1231", "0229", "1301", "0000"]) + digits[8:] + fraction)
    for text in texts:
        assert reader.parse_dicom_datetime(text) == reader._parse_untidy_datetime(text), text
    assert reader.parse_dicom_datetime("20240101123059.25") == reader.datetime(2024, 1, 1, 12, 30, 59, 250000)
