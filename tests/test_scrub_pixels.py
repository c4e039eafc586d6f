"""Stage 2 "Pixel": blank rectangles on every frame, for every transfer syntax pydicom's bundled files use.

Every bundled file with pixel data is blanked, written with dcmwrite, read back and decoded:
inside the regions every frame and sample holds the blank value, outside every pixel equals the
decoded original (exactly: native and lossless inputs stay exact, lossy inputs are written
uncompressed so they equal their decoded original). A file pydicom cannot decode must raise
PixelError. Reference decoding goes through pydicom's own decoders, not the module under test.
"""

from __future__ import annotations

import copy
import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid as dicom_uid
from pydicom.pixels import pack_bits
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.processing import apply_color_lut
from pydicom.pixels.utils import set_pixel_data
from pydicom.uid import UID

from extractor.scrub.pixels import (
    LOSSLESS_SYNTAXES,
    NATIVE_SYNTAXES,
    REENCODED_SYNTAXES,
    PixelError,
    PixelResult,
    blank_regions,
    clip_regions,
    frame_regions_are_blank,
)

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def _bundled_pixel_files() -> list[str]:
    names = []
    for path in sorted(TEST_FILES.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = _read(path)
        except Exception:  # noqa: BLE001 - not a DICOM file
            continue
        if "PixelData" in ds:
            names.append(path.relative_to(TEST_FILES).as_posix())
    return names


BUNDLED = _bundled_pixel_files()


def _is_lossy(ts: UID) -> bool:
    return ts not in NATIVE_SYNTAXES and ts not in LOSSLESS_SYNTAXES


def _decode(ds: pydicom.Dataset, *, as_rgb: bool = False) -> tuple[np.ndarray, dict]:
    """pydicom's decode as (frames, rows, columns, samples) and its description."""
    ts = UID(ds.file_meta.TransferSyntaxUID)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr, meta = get_decoder(ts).as_array(ds, as_rgb=as_rgb)
    frames = int(meta.get("number_of_frames") or 1)
    return arr.reshape(frames, int(meta["rows"]), int(meta["columns"]), int(meta["samples_per_pixel"])), meta


def _reference(ds: pydicom.Dataset) -> np.ndarray | None:
    """The original decoded as the scrubber will see it, or None when pydicom cannot decode it."""
    try:
        ts = UID(ds.file_meta.TransferSyntaxUID)
        return _decode(ds, as_rgb=_is_lossy(ts))[0]
    except Exception:  # noqa: BLE001
        return None


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _pydicom_can_write(path: Path) -> bool:
    try:
        pydicom.dcmwrite(io.BytesIO(), _read(path))
        return True
    except Exception:  # noqa: BLE001 - e.g. an implicit-VR body in an explicit-VR file
        return False


def _outside_mask(shape: tuple[int, ...], regions: tuple) -> np.ndarray:
    inside = np.zeros(shape[:3], dtype=bool)
    for x, y, w, h in regions:
        inside[:, y : y + h, x : x + w] = True
    return ~inside


def _test_regions(rows: int, columns: int) -> list[tuple[int, int, int, int]]:
    # one inside, odd x on purpose (YBR_FULL_422 pairs); one hanging over the top-right corner
    return [(columns // 4 + 1, rows // 4, max(columns // 2, 1), max(rows // 3, 1)), (columns - columns // 5 - 1, -5, columns, rows // 4 + 6)]


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_file_is_blanked_on_every_frame_and_unchanged_elsewhere(name: str) -> None:
    path = TEST_FILES / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    ds = _read(path)
    reference = _reference(ds)
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
    except Exception:  # noqa: BLE001 - no usable Image Pixel module
        rows = columns = 16
    regions = _test_regions(rows, columns)

    if reference is None:
        before = ds.get("PixelData")
        with pytest.raises(PixelError):
            blank_regions(ds, regions, cleaning=True)
        assert ds.get("PixelData") == before, "a failed blank must leave the dataset as it was"
        assert "BurnedInAnnotation" not in ds or ds.BurnedInAnnotation == _read(path).get("BurnedInAnnotation")
        return

    ts_in = UID(ds.file_meta.TransferSyntaxUID)
    sop_instance = ds.get("SOPInstanceUID")
    result = blank_regions(ds, regions, cleaning=True)

    assert isinstance(result, PixelResult)
    assert result.transfer_syntax_in == ts_in
    assert result.frames == reference.shape[0]
    assert result.regions_applied, "the test regions overlap every image"
    ts_out = UID(result.transfer_syntax_out)
    assert not _is_lossy(ts_out), f"{name}: written as lossy {ts_out.name}"
    if ts_in in NATIVE_SYNTAXES:
        assert ts_out == ts_in and result.decoded is False
    elif ts_in in REENCODED_SYNTAXES:
        assert ts_out in (ts_in, dicom_uid.ExplicitVRLittleEndian) and result.decoded
    else:
        assert ts_out == dicom_uid.ExplicitVRLittleEndian and result.decoded
    if _is_lossy(ts_in):
        assert ds.get("LossyImageCompression") in ("01", None)
    assert ds.BurnedInAnnotation == "NO"
    assert ds.get("SOPInstanceUID") == sop_instance
    assert (int(ds.Rows), int(ds.Columns)) == (rows, columns)

    out = _roundtrip(ds) if _pydicom_can_write(path) else ds
    assert UID(out.file_meta.TransferSyntaxUID) == ts_out
    decoded, _ = _decode(out)
    assert decoded.shape == reference.shape
    outside = _outside_mask(decoded.shape, result.regions_applied)
    assert np.array_equal(decoded[outside], reference[outside]), f"{name}: pixels outside the regions changed"
    assert frame_regions_are_blank(out, result.regions_applied)
    assert frame_regions_are_blank(out, regions)  # the requested rectangles, clipped, are inside the applied ones
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, "the source file must never be modified"


# --- blank values ------------------------------------------------------------------------------


def _blank_and_decode(ds: pydicom.Dataset, regions) -> tuple[np.ndarray, PixelResult, pydicom.Dataset]:
    result = blank_regions(ds, regions, cleaning=True)
    out = _roundtrip(ds)
    return _decode(out)[0], result, out


def test_monochrome1_is_blanked_to_the_maximum_of_the_stored_range() -> None:
    ds = _read(TEST_FILES / "dicomdirtests/77654033/CR1/6154")
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 12
    decoded, _, _ = _blank_and_decode(ds, [(2, 3, 5, 4)])
    assert np.all(decoded[:, 3:7, 2:7] == 4095)


def test_monochrome2_signed_is_blanked_to_the_minimum_of_the_stored_range() -> None:
    ds = _read(TEST_FILES / "CT_small.dcm")
    assert ds.PixelRepresentation == 1 and ds.BitsStored == 16
    decoded, _, _ = _blank_and_decode(ds, [(10, 10, 20, 20)])
    assert np.all(decoded[:, 10:30, 10:30] == -32768)

    ds = _read(TEST_FILES / "CT_small.dcm")
    arr = ds.pixel_array.clip(-2048, 2047).astype(np.int16)
    set_pixel_data(ds, arr, "MONOCHROME2", 12, generate_instance_uid=False)
    decoded, _, _ = _blank_and_decode(ds, [(10, 10, 20, 20)])
    assert np.all(decoded[:, 10:30, 10:30] == -2048)
    assert np.array_equal(decoded[0, 40:, 40:, 0], arr[40:, 40:])


def test_rgb_is_blanked_to_black_in_every_sample() -> None:
    decoded, _, _ = _blank_and_decode(_read(TEST_FILES / "examples_rgb_color.dcm"), [(5, 6, 50, 40)])
    assert np.all(decoded[:, 6:46, 5:55, :] == 0)


def test_native_ybr_full_422_blanks_whole_pixel_pairs_to_y0_and_neutral_chroma() -> None:
    ds = _read(TEST_FILES / "SC_ybr_full_422_uncompressed.dcm")
    reference = _decode(ds)[0]
    decoded, result, out = _blank_and_decode(ds, [(27, 10, 10, 5)])
    assert result.regions_applied == ((26, 10, 12, 5),)  # widened to even x and even width
    assert out.PhotometricInterpretation == "YBR_FULL_422"
    assert np.all(decoded[:, 10:15, 26:38, 0] == 0)
    assert np.all(decoded[:, 10:15, 26:38, 1:] == 128)
    outside = _outside_mask(decoded.shape, result.regions_applied)
    assert np.array_equal(decoded[outside], reference[outside])


def test_palette_color_uses_the_darkest_palette_entry() -> None:
    ds = _read(TEST_FILES / "examples_palette.dcm")
    decoded, _, out = _blank_and_decode(ds, [(100, 100, 50, 50)])
    values = np.unique(decoded[:, 100:150, 100:150])
    assert values.size == 1
    rgb = apply_color_lut(np.arange(256, dtype=np.uint8), out).astype(float)
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    assert luminance[int(values[0])] == luminance.min()


def test_one_bit_data_packed_across_frames_is_blanked_per_frame() -> None:
    ds = _read(TEST_FILES / "liver_1frame.dcm")
    frames = (np.random.default_rng(1).integers(0, 2, (3, 5, 7)) | np.eye(5, 7, dtype=int)).astype(np.uint8)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 5, 7, 3  # 105 bits: frames start mid-byte
    ds.PixelData = pack_bits(frames)
    decoded, result, _ = _blank_and_decode(ds, [(1, 1, 3, 2)])
    assert result.frames == 3
    assert np.all(decoded[:, 1:3, 1:4, 0] == 0)
    outside = _outside_mask(decoded.shape, result.regions_applied)
    assert np.array_equal(decoded[outside], frames[..., None][outside])


def test_planar_configuration_1_is_blanked_in_every_plane() -> None:
    ds = _read(TEST_FILES / "examples_rgb_color.dcm")
    arr = ds.pixel_array
    ds.PlanarConfiguration = 1
    ds.PixelData = np.ascontiguousarray(np.moveaxis(arr, -1, 0)).tobytes()
    decoded, result, _ = _blank_and_decode(ds, [(10, 20, 30, 40)])
    assert np.all(decoded[:, 20:60, 10:40, :] == 0)
    outside = _outside_mask(decoded.shape, result.regions_applied)
    assert np.array_equal(decoded[outside], arr[None][outside])


# --- multi-frame ---------------------------------------------------------------------------------


def _us_cine(frames: int = 6) -> pydicom.Dataset:
    """A native 640x480 RGB ultrasound cine built from the bundled JPEG 2000 US frame."""
    ds = _read(TEST_FILES / "examples_jpeg2k.dcm")
    frame = ds.pixel_array
    cine = np.stack([np.roll(frame, 7 * i, axis=1) for i in range(frames)])
    set_pixel_data(ds, cine, "RGB", 8, generate_instance_uid=False)
    return ds


@pytest.mark.parametrize("name", ["SC_rgb_rle_2frame.dcm", "SC_rgb_rle_16bit_2frame.dcm", "rtdose.dcm", "rtdose_expb.dcm", "examples_ybr_color.dcm"])
def test_bundled_multiframe_is_blanked_on_every_frame(name: str) -> None:
    ds = _read(TEST_FILES / name)
    frames = int(ds.NumberOfFrames)
    assert frames > 1
    decoded, result, out = _blank_and_decode(ds, [(1, 1, 4, 3)])
    assert result.frames == frames == decoded.shape[0] == int(out.NumberOfFrames)
    assert frame_regions_are_blank(out, [(1, 1, 4, 3)])
    black = decoded[0, 1, 1]
    assert black.max() == 0 or out.PhotometricInterpretation != "RGB"
    for index in range(frames):
        assert np.all(decoded[index, 1:4, 1:5] == black), f"frame {index} not blanked"


def test_native_us_cine_is_blanked_on_every_frame_and_stays_native() -> None:
    ds = _us_cine()
    reference = ds.pixel_array.copy()
    decoded, result, out = _blank_and_decode(ds, [(0, 0, 640, 48), (500, 430, 140, 50)])
    assert result.decoded is False and result.frames == 6
    assert result.regions_applied == ((0, 0, 640, 48), (500, 430, 140, 50))
    assert UID(out.file_meta.TransferSyntaxUID) == dicom_uid.ExplicitVRLittleEndian
    assert np.all(decoded[:, :48] == 0) and np.all(decoded[:, 430:480, 500:640] == 0)
    outside = _outside_mask(decoded.shape, result.regions_applied)
    assert np.array_equal(decoded[outside], reference[outside])


# --- transfer syntaxes ---------------------------------------------------------------------------


def _encoder_ready(ts: UID) -> bool:
    encoder = get_encoder(ts)
    return encoder is not None and encoder.is_available


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MR_small_RLE.dcm", dicom_uid.RLELossless),
        ("MR_small_jpeg_ls_lossless.dcm", dicom_uid.JPEGLSLossless),
        ("MR_small_jp2klossless.dcm", dicom_uid.JPEG2000Lossless),
        ("GDCMJ2K_TextGBR.dcm", dicom_uid.JPEG2000Lossless),
        ("rtdose_rle.dcm", dicom_uid.ExplicitVRLittleEndian),  # 32-bit: no RLE encoder profile
        ("SC_rgb_jpeg_gdcm.dcm", dicom_uid.ExplicitVRLittleEndian),  # JPEG Lossless SV1: no encoder
        ("JPGExtended.dcm", dicom_uid.ExplicitVRLittleEndian),
        ("SC_rgb_dcmtk_+eb+cy+np.dcm", dicom_uid.ExplicitVRLittleEndian),
        ("JPEGLSNearLossless_08.dcm", dicom_uid.ExplicitVRLittleEndian),
        ("693_J2KI.dcm", dicom_uid.ExplicitVRLittleEndian),
        ("image_dfl.dcm", dicom_uid.DeflatedExplicitVRLittleEndian),
        ("MR_small_bigendian.dcm", dicom_uid.ExplicitVRBigEndian),
        ("MR_small_implicit.dcm", dicom_uid.ImplicitVRLittleEndian),
    ],
)
def test_output_transfer_syntax(name: str, expected: UID) -> None:
    ds = _read(TEST_FILES / name)
    ts_in = UID(ds.file_meta.TransferSyntaxUID)
    if _reference(ds) is None:
        pytest.skip(f"no installed plugin decodes {ts_in.name}")
    if expected == ts_in and ts_in in REENCODED_SYNTAXES and not _encoder_ready(ts_in):
        pytest.skip(f"no installed plugin encodes {ts_in.name}")
    result = blank_regions(ds, [(0, 0, 8, 8)])
    assert UID(result.transfer_syntax_out) == expected
    assert UID(_roundtrip(ds).file_meta.TransferSyntaxUID) == expected


def test_lossy_ybr_jpeg_is_written_as_rgb_uncompressed_and_marked_lossy() -> None:
    ds = _read(TEST_FILES / "SC_rgb_dcmtk_+eb+cy+np.dcm")
    if _reference(ds) is None:
        pytest.skip("no JPEG decoder installed")
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    blank_regions(ds, [(0, 0, 10, 10)])
    assert ds.PhotometricInterpretation == "RGB" and ds.PlanarConfiguration == 0
    assert ds.LossyImageCompression == "01"
    assert not ds["PixelData"].is_undefined_length
    assert "ExtendedOffsetTable" not in ds


def test_jpeg_ls_near_lossless_without_the_lossy_flag_gets_it() -> None:
    ds = _read(TEST_FILES / "JPEGLSNearLossless_08.dcm")
    if _reference(ds) is None:
        pytest.skip("no JPEG-LS decoder installed")
    assert "LossyImageCompression" not in ds
    blank_regions(ds, [(0, 0, 4, 4)])
    assert ds.LossyImageCompression == "01"


def test_lossless_jpeg2000_ybr_rct_keeps_its_colour_transform() -> None:
    ds = _read(TEST_FILES / "examples_jpeg2k.dcm")
    if _reference(ds) is None or not _encoder_ready(dicom_uid.JPEG2000Lossless):
        pytest.skip("no JPEG 2000 codec installed")
    blank_regions(ds, [(0, 0, 640, 40)])
    out = _roundtrip(ds)
    assert out.PhotometricInterpretation == "YBR_RCT"
    assert UID(out.file_meta.TransferSyntaxUID) == dicom_uid.JPEG2000Lossless
    assert frame_regions_are_blank(out, [(0, 0, 640, 40)])


# --- regions -------------------------------------------------------------------------------------


def test_regions_are_clipped_to_the_image() -> None:
    assert clip_regions([(-10, -10, 30, 30)], 64, 64) == ((0, 0, 20, 20),)
    assert clip_regions([(60, 62, 50, 50)], 64, 64) == ((60, 62, 4, 2),)
    assert clip_regions([(70, 0, 5, 5), (0, 0, 0, 5), (0, 0, 5, -1)], 64, 64) == ()
    assert clip_regions([(3, 0, 2, 1)], 4, 8, pair_align=True) == ((2, 0, 4, 1),)


def test_partly_outside_region_is_clipped_and_blanked() -> None:
    ds = _read(TEST_FILES / "MR_small.dcm")
    decoded, result, out = _blank_and_decode(ds, [(50, -8, 40, 20)])
    assert result.regions_applied == ((50, 0, 14, 12),)
    assert np.all(decoded[:, 0:12, 50:64] == -32768)
    assert frame_regions_are_blank(out, [(50, -8, 40, 20)])


def test_no_region_inside_the_image_leaves_the_dataset_alone() -> None:
    ds = _read(TEST_FILES / "MR_small_RLE.dcm")
    before = ds.PixelData
    result = blank_regions(ds, [(100, 100, 10, 10)], cleaning=True)
    assert result.regions_applied == () and result.decoded is False
    assert result.transfer_syntax_out == result.transfer_syntax_in == dicom_uid.RLELossless
    assert ds.PixelData is before
    assert "BurnedInAnnotation" not in ds


def test_burned_in_annotation_is_set_only_for_a_cleaning_rule() -> None:
    ds = _read(TEST_FILES / "CT_small.dcm")
    ds.BurnedInAnnotation = "YES"
    blank_regions(ds, [(0, 0, 10, 10)])
    assert ds.BurnedInAnnotation == "YES"
    blank_regions(ds, [(0, 0, 10, 10)], cleaning=True)
    assert ds.BurnedInAnnotation == "NO"


def test_frame_regions_are_blank_is_false_for_an_unblanked_image() -> None:
    ds = _read(TEST_FILES / "CT_small.dcm")
    assert not frame_regions_are_blank(ds, [(30, 30, 20, 20)])
    blank_regions(ds, [(30, 30, 20, 20)])
    assert frame_regions_are_blank(ds, [(30, 30, 20, 20)])
    assert not frame_regions_are_blank(ds, [(30, 30, 21, 20)])


# --- errors --------------------------------------------------------------------------------------


def test_truncated_native_pixel_data_raises_pixel_error_naming_the_transfer_syntax() -> None:
    ds = _read(TEST_FILES / "MR_truncated.dcm")
    with pytest.raises(PixelError) as raised:
        blank_regions(ds, [(0, 0, 10, 10)])
    assert "truncated" in str(raised.value)
    assert "Explicit VR Little Endian" in str(raised.value)
    assert raised.value.transfer_syntax == dicom_uid.ExplicitVRLittleEndian


def test_truncated_compressed_pixel_data_raises_pixel_error() -> None:
    ds = _read(TEST_FILES / "MR_small_RLE.dcm")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    before = ds.PixelData
    with pytest.raises(PixelError) as raised:
        blank_regions(ds, [(0, 0, 10, 10)], cleaning=True)
    assert "RLE Lossless" in str(raised.value)
    assert ds.PixelData is before and UID(ds.file_meta.TransferSyntaxUID) == dicom_uid.RLELossless
    assert "BurnedInAnnotation" not in ds


def test_missing_pixel_data_or_unsupported_colour_space_raises_pixel_error() -> None:
    ds = _read(TEST_FILES / "CT_small.dcm")
    del ds.PixelData
    with pytest.raises(PixelError, match="no \\(7FE0,0010\\) Pixel Data"):
        blank_regions(ds, [(0, 0, 1, 1)])
    ds = _read(TEST_FILES / "examples_rgb_color.dcm")
    ds.PhotometricInterpretation = "YBR_PARTIAL_422"
    with pytest.raises(PixelError, match="YBR_PARTIAL_422"):
        blank_regions(ds, [(0, 0, 1, 1)])


def test_blanking_works_on_a_copy_without_touching_another_dataset() -> None:
    original = _read(TEST_FILES / "examples_rgb_color.dcm")
    working = copy.deepcopy(original)
    blank_regions(working, [(0, 0, 50, 50)])
    assert original.PixelData != working.PixelData
    assert not frame_regions_are_blank(original, [(0, 0, 50, 50)])
