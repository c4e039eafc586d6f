"""Stage 2 "Pixel": blank rectangles of burned-in text on every frame, then write losslessly.

`blank_regions(ds, regions, cleaning=...)` works on the in-memory dataset (never on the file it
came from) and either finishes completely or leaves the dataset as it was and raises `PixelError`
(the caller quarantines the instance).

Regions follow the CTP DicomPixelAnonymizer: `(x, y, w, h)`, x/y the top-left corner, w/h the
size, in pixels; they are clipped to the image and applied to every frame and every sample.

How each kind of input is written (never re-encoded lossy):

| input transfer syntax | how it is blanked | written as |
| --- | --- | --- |
| native: Implicit/Explicit VR Little Endian, Deflated, Explicit VR Big Endian | numpy slicing on a view of the Pixel Data bytes (no decode) | the same transfer syntax |
| RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless | decode, blank | the same transfer syntax when its encoder is installed and the re-encoded frames decode back exactly; else Explicit VR Little Endian |
| JPEG Lossless (Process 14, SV1), HTJ2K lossless | decode, blank | Explicit VR Little Endian (no encoder) |
| lossy: JPEG Baseline/Extended, JPEG-LS Near-Lossless, JPEG 2000, HTJ2K, anything else compressed | decode to RGB (colour) or grey, blank | Explicit VR Little Endian; Lossy Image Compression "01" is kept (or added when missing and the codestream is lossy) |

The blank value is "black" in the image's own colour space:

- MONOCHROME2: the minimum of the stored range (0, or -2**(BitsStored-1) when signed);
- MONOCHROME1: the maximum of the stored range (2**BitsStored-1, or 2**(BitsStored-1)-1 when signed);
- RGB: 0 in every sample;
- YBR_FULL, YBR_FULL_422: Y = 0, Cb = Cr = 2**(BitsStored-1) (128 for 8 bits). Native
  YBR_FULL_422 shares one Cb/Cr pair between two horizontally adjacent pixels, so a region is
  widened to whole pairs (even x, even width) and the widened rectangle is what is reported;
- PALETTE COLOR: the index whose palette entry is darkest (lowest 0.299R+0.587G+0.114B, the
  lowest such index on a tie); index 0 when the palette cannot be read.

Other photometric interpretations (YBR_PARTIAL_*, ARGB, CMYK, HSV) are refused with `PixelError`
(fail closed). Decoding needs pydicom's pixel-data plugins: pylibjpeg with pylibjpeg-libjpeg
(JPEG), pylibjpeg-openjpeg (JPEG 2000 decode and lossless encode), pylibjpeg-rle (fast RLE) and
pyjpegls (JPEG-LS decode and encode); Pillow also decodes JPEG baseline and JPEG 2000.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pydicom
from pydicom import uid as dicom_uid
from pydicom.encaps import generate_fragments
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.utils import compress
from pydicom.uid import UID
from pydicom.valuerep import VR

Region = tuple[int, int, int, int]

NATIVE_SYNTAXES = frozenset(
    {
        dicom_uid.ImplicitVRLittleEndian,
        dicom_uid.ExplicitVRLittleEndian,
        dicom_uid.DeflatedExplicitVRLittleEndian,
        dicom_uid.ExplicitVRBigEndian,
    }
)
# Compressed syntaxes that are lossless by definition; everything else compressed is treated as
# lossy (decoded, blanked and written uncompressed, never re-encoded).
LOSSLESS_SYNTAXES = frozenset(
    {
        dicom_uid.RLELossless,
        dicom_uid.JPEGLossless,
        dicom_uid.JPEGLosslessSV1,
        dicom_uid.JPEGLSLossless,
        dicom_uid.JPEG2000Lossless,
        dicom_uid.JPEG2000MCLossless,
        dicom_uid.HTJ2KLossless,
        dicom_uid.HTJ2KLosslessRPCL,
    }
)
# Lossless syntaxes written back as they came, when pydicom has an installed encoder for them.
REENCODED_SYNTAXES = frozenset(
    {dicom_uid.RLELossless, dicom_uid.JPEGLSLossless, dicom_uid.JPEG2000Lossless}
)
# Syntaxes whose codestream may be reversible or irreversible: read the codestream to tell.
_J2K_EITHER = frozenset({dicom_uid.JPEG2000, dicom_uid.HTJ2K, dicom_uid.JPEG2000MC})

_SUPPORTED_PI = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422"}
)
_OFFSET_TABLE_KEYWORDS = ("ExtendedOffsetTable", "ExtendedOffsetTableLengths")


class PixelError(Exception):
    """The pixel data cannot be blanked safely; the caller quarantines the instance."""

    def __init__(self, reason: str, transfer_syntax: str | None = None) -> None:
        self.reason = reason
        self.transfer_syntax = str(transfer_syntax) if transfer_syntax else None
        if self.transfer_syntax:
            name = UID(self.transfer_syntax).name
            where = f"transfer syntax {name} ({self.transfer_syntax})" if name != self.transfer_syntax else f"transfer syntax {self.transfer_syntax}"
        else:
            where = "no transfer syntax"
        super().__init__(f"{reason} [{where}]")


@dataclass(frozen=True)
class PixelResult:
    """What `blank_regions` did, for the scrub manifest."""

    regions_applied: tuple[Region, ...]  # the rectangles actually blanked (clipped, widened for YBR_FULL_422)
    frames: int
    transfer_syntax_in: str
    transfer_syntax_out: str
    decoded: bool  # True when a codec decoded the pixel data; False for the native fast path


# --- regions -------------------------------------------------------------------------------


def clip_regions(regions: Iterable[Sequence[int]], rows: int, columns: int, *, pair_align: bool = False) -> tuple[Region, ...]:
    """Clip CTP `(x, y, w, h)` rectangles to a `rows` x `columns` image; drop empty ones.

    With `pair_align`, each rectangle is widened to even x and even width (YBR_FULL_422 pixel pairs).
    """
    clipped: list[Region] = []
    for region in regions:
        if len(region) != 4:
            raise ValueError(f"a pixel region is (x, y, w, h), got {region!r}")
        x, y, w, h = (int(v) for v in region)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, columns), min(y + h, rows)
        if x1 <= x0 or y1 <= y0:
            continue
        if pair_align:
            x0 -= x0 % 2
            x1 = min(x1 + x1 % 2, columns)
        clipped.append((x0, y0, x1 - x0, y1 - y0))
    return tuple(clipped)


# --- blank values --------------------------------------------------------------------------


def blank_values(
    photometric_interpretation: str,
    bits_stored: int,
    pixel_representation: int,
    ds: pydicom.Dataset | None = None,
) -> tuple[int, ...]:
    """The per-sample value that means black for this photometric interpretation (see module doc)."""
    pi = str(photometric_interpretation).strip().upper()
    signed = pixel_representation == 1
    if pi == "MONOCHROME2":
        return (-(1 << (bits_stored - 1)) if signed else 0,)
    if pi == "MONOCHROME1":
        return (((1 << (bits_stored - 1)) - 1) if signed else (1 << bits_stored) - 1,)
    if pi == "RGB":
        return (0, 0, 0)
    if pi in ("YBR_FULL", "YBR_FULL_422"):
        mid = 1 << (bits_stored - 1)
        return (0, mid, mid)
    if pi == "PALETTE COLOR":
        return (_darkest_palette_index(ds, bits_stored),)
    raise ValueError(f"no blank value defined for PhotometricInterpretation {pi!r}")


def _darkest_palette_index(ds: pydicom.Dataset | None, bits_stored: int) -> int:
    """The index whose palette entry is darkest; 0 when the palette cannot be read."""
    if ds is None:
        return 0
    try:
        from pydicom.pixels.processing import apply_color_lut

        descriptor = ds.RedPaletteColorLookupTableDescriptor
        entries = int(descriptor[0]) or 65536
        first = int(descriptor[1])
        top = min(first + entries, 1 << bits_stored)
        if top <= first:
            return 0
        dtype = np.uint8 if bits_stored <= 8 else np.uint16
        indices = np.arange(first, top, dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rgb = apply_color_lut(indices, ds).astype(np.float64)
        luminance = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return int(first + int(np.argmin(luminance)))
    except Exception:  # noqa: BLE001 - an unreadable palette falls back to index 0, as documented
        return 0


# --- the public functions ------------------------------------------------------------------


def blank_regions(ds: pydicom.Dataset, regions: Sequence[Sequence[int]], *, cleaning: bool = False) -> PixelResult:
    """Blank every `(x, y, w, h)` region on every frame of `ds`, in place, and write losslessly.

    `cleaning`: the caller's rule is a cleaning rule, so Burned In Annotation becomes "NO" once
    at least one region was blanked. Raises `PixelError` (dataset unchanged) when the pixel data
    cannot be decoded or its description is inconsistent; `ValueError` for a malformed region.
    """
    ts = _transfer_syntax(ds)
    if "PixelData" not in ds:
        raise PixelError("the dataset has no (7FE0,0010) Pixel Data element", ts)
    rows, columns, frames, pi = _geometry(ds, ts)
    applied = clip_regions(regions, rows, columns, pair_align=(pi == "YBR_FULL_422" and ts in NATIVE_SYNTAXES))
    if not applied:
        return PixelResult((), frames, str(ts), str(ts), False)

    if ts in NATIVE_SYNTAXES:
        _blank_native(ds, ts, applied, rows, columns, frames, pi)
        decoded = False
    else:
        _blank_encapsulated(ds, ts, applied, frames)
        decoded = True
    if cleaning:
        ds.BurnedInAnnotation = "NO"
    return PixelResult(applied, frames, str(ts), str(ds.file_meta.TransferSyntaxUID), decoded)


def frame_regions_are_blank(ds: pydicom.Dataset, regions: Sequence[Sequence[int]]) -> bool:
    """True when every region (clipped to the image) holds the blank value on every frame and sample.

    Decodes the pixel data with pydicom (native data too), in the data's own colour space.
    """
    ts = _transfer_syntax(ds)
    if "PixelData" not in ds:
        raise PixelError("the dataset has no (7FE0,0010) Pixel Data element", ts)
    arr, meta = _decode(ds, ts, as_rgb=False)
    applied = clip_regions(regions, arr.shape[1], arr.shape[2])
    blank = _blank_for_meta(meta, ds, ts)
    return all(bool(np.all(arr[:, y : y + h, x : x + w, :] == blank)) for x, y, w, h in applied)


# --- helpers: dataset description ------------------------------------------------------------


def _transfer_syntax(ds: pydicom.Dataset) -> UID:
    file_meta = getattr(ds, "file_meta", None)
    ts = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if not ts:
        raise PixelError("the file meta has no (0002,0010) Transfer Syntax UID, so the pixel data cannot be interpreted")
    return UID(str(ts))


def _geometry(ds: pydicom.Dataset, ts: UID) -> tuple[int, int, int, str]:
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        raw_frames = ds.get("NumberOfFrames", 1)
        frames = int(raw_frames) if raw_frames not in (None, "") else 1
        pi = str(ds.PhotometricInterpretation).strip().upper()
        int(ds.BitsAllocated), int(ds.SamplesPerPixel)  # both required: fail here, not mid-way
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise PixelError(f"the Image Pixel module is incomplete or invalid: {exc}", ts) from exc
    frames = max(frames, 1)
    if rows <= 0 or columns <= 0:
        raise PixelError(f"Rows {rows} x Columns {columns} is not an image", ts)
    if pi not in _SUPPORTED_PI and ts in NATIVE_SYNTAXES:
        raise PixelError(f"PhotometricInterpretation {pi!r} is not supported for blanking", ts)
    return rows, columns, frames, pi


# --- native fast path ------------------------------------------------------------------------


def _blank_native(ds: pydicom.Dataset, ts: UID, regions: tuple[Region, ...], rows: int, columns: int, frames: int, pi: str) -> None:
    bits_allocated = int(ds.BitsAllocated)
    bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
    samples = int(ds.SamplesPerPixel)
    representation = int(ds.get("PixelRepresentation", 0) or 0)
    planar = int(ds.get("PlanarConfiguration", 0) or 0) if samples > 1 else 0
    if bits_stored > bits_allocated or bits_stored < 1:
        raise PixelError(f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}", ts)
    if samples not in (1, 3) or (samples == 3) != (pi in ("RGB", "YBR_FULL", "YBR_FULL_422")):
        raise PixelError(f"SamplesPerPixel {samples} does not match PhotometricInterpretation {pi}", ts)
    blank = blank_values(pi, bits_stored, representation, ds)
    source = ds.PixelData

    if bits_allocated == 1:
        ds.PixelData = _blank_bits(source, regions, rows, columns, frames, samples, blank[0], ts)
        _forget_cached_array(ds)
        return
    if bits_allocated not in (8, 16, 32, 64):
        raise PixelError(f"BitsAllocated {bits_allocated} is not supported", ts)
    order = "<" if ts.is_little_endian else ">"
    dtype = np.dtype(f"{order}{'i' if representation else 'u'}{bits_allocated // 8}")
    if pi == "YBR_FULL_422":
        if columns % 2 or planar:
            raise PixelError("native YBR_FULL_422 needs an even number of columns and PlanarConfiguration 0", ts)
        row_items = columns * 2  # Y1 Y2 Cb Cr per pair of pixels
    else:
        row_items = columns * (1 if planar else samples)
    planes = samples if planar else 1
    row_bytes = row_items * dtype.itemsize
    nbytes = frames * planes * rows * row_bytes
    _check_length(len(source), nbytes, ts)

    def shaped(flat: np.ndarray, height: int) -> np.ndarray:
        """`flat` (frames*planes, height, row) as (frames, height, columns, samples) or YBR_FULL_422 pairs."""
        if pi == "YBR_FULL_422":
            return flat.reshape(frames, height, columns // 2, 4)
        if planar:
            return np.moveaxis(flat.reshape(frames, samples, height, columns), 1, -1)
        return flat.reshape(frames, height, columns, samples)

    # Explicit VR Big Endian stores 8-bit data encoded as OW with each 16-bit word byte-swapped:
    # unswap a copy of the whole buffer, blank, swap back.
    if bits_allocated == 8 and not ts.is_little_endian and ds["PixelData"].VR == VR.OW:
        even = len(source) - len(source) % 2
        work = np.frombuffer(source, np.uint8, count=even).reshape(-1, 2)[:, ::-1].copy().reshape(-1)
        _blank_view(shaped(work[:nbytes].view(dtype), rows), regions, blank, pi)
        ds.PixelData = work.reshape(-1, 2)[:, ::-1].tobytes() + bytes(source[even:])
        _forget_cached_array(ds)
        return

    # Copy only the rows that regions touch (merged into bands) and join them with views of the
    # untouched bytes: one allocation of the output, no full copy of a large multi-frame buffer.
    blocks = np.frombuffer(source, np.uint8, count=nbytes).reshape(frames * planes, rows, row_bytes)
    bands = []
    for y0, y1 in _row_bands(regions):
        band = blocks[:, y0:y1, :].copy()
        inside = tuple((x, y - y0, w, h) for x, y, w, h in regions if y0 <= y < y1)
        _blank_view(shaped(band.view(dtype), y1 - y0), inside, blank, pi)
        bands.append((y0, y1, band))
    whole = memoryview(source)
    block_bytes = rows * row_bytes
    parts: list[Any] = []
    for block in range(frames * planes):
        start = block * block_bytes
        cursor = 0
        for y0, y1, band in bands:
            parts.append(whole[start + cursor * row_bytes : start + y0 * row_bytes])
            parts.append(memoryview(band[block]).cast("B"))
            cursor = y1
        parts.append(whole[start + cursor * row_bytes : start + block_bytes])
    parts.append(whole[nbytes:])  # trailing padding, kept as it was
    ds.PixelData = b"".join(parts)
    _forget_cached_array(ds)


def _row_bands(regions: Iterable[Region]) -> list[tuple[int, int]]:
    """The row ranges [y0, y1) that the regions cover, overlapping or adjacent ranges merged."""
    merged: list[list[int]] = []
    for _, y, _, h in sorted(regions, key=lambda r: r[1]):
        if merged and y <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], y + h)
        else:
            merged.append([y, y + h])
    return [(a, b) for a, b in merged]


def _blank_view(view: np.ndarray, regions: Iterable[Region], blank: tuple[int, ...], pi: str) -> None:
    """Write the blank value into each region of `view` (frames, rows, columns, samples).

    For YBR_FULL_422 `view` is (frames, rows, columns/2, [Y1, Y2, Cb, Cr]) and regions are pair-aligned.
    Scalars per sample: numpy fills a strided slice with a scalar far faster than with a vector.
    """
    for x, y, w, h in regions:
        if pi == "YBR_FULL_422":
            pairs = view[:, y : y + h, x // 2 : (x + w) // 2, :]
            pairs[..., 0:2] = blank[0]
            pairs[..., 2:4] = blank[1]
        elif len(set(blank)) == 1:
            view[:, y : y + h, x : x + w, :] = blank[0]
        else:
            for sample, value in enumerate(blank):
                view[:, y : y + h, x : x + w, sample] = value


def _blank_bits(source: bytes, regions: Iterable[Region], rows: int, columns: int, frames: int, samples: int, value: int, ts: UID) -> bytes:
    """Blank 1-bit data: pixels are packed little-endian-bit-first, continuously across frames."""
    if samples != 1:
        raise PixelError("1-bit pixel data with more than one sample is not supported", ts)
    total = frames * rows * columns
    nbytes = (total + 7) // 8
    _check_length(len(source), nbytes, ts)
    bits = np.unpackbits(np.frombuffer(source, np.uint8, count=nbytes), bitorder="little", count=total)
    view = bits.reshape(frames, rows, columns)
    for x, y, w, h in regions:
        view[:, y : y + h, x : x + w] = value
    packed = np.packbits(bits, bitorder="little")
    if total % 8:  # keep whatever the unused high bits of the last byte held
        keep = np.uint8((0xFF << (total % 8)) & 0xFF)
        packed[-1] = (packed[-1] & ~keep) | (source[nbytes - 1] & keep)
    return packed.tobytes() + bytes(source[nbytes:])


def _check_length(actual: int, expected: int, ts: UID) -> None:
    if actual < expected:
        raise PixelError(f"the pixel data is truncated: {actual} bytes, the Image Pixel module needs {expected}", ts)


# --- encapsulated path -----------------------------------------------------------------------


def _decode(ds: pydicom.Dataset, ts: UID, *, as_rgb: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode every frame to an array (frames, rows, columns, samples) and its description."""
    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise PixelError("pydicom has no decoder for this transfer syntax", ts) from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise PixelError(f"no pixel-data plugin to decode it is installed ({missing})", ts)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr, meta = decoder.as_array(ds, as_rgb=as_rgb)
    except Exception as exc:  # noqa: BLE001 - any decoder failure quarantines the instance
        raise PixelError(f"cannot decode the pixel data: {' '.join(str(exc).split())}", ts) from exc
    frames = int(meta.get("number_of_frames", 1) or 1)
    samples = int(meta.get("samples_per_pixel", 1) or 1)
    rows, columns = int(meta["rows"]), int(meta["columns"])
    arr = arr.reshape(frames, rows, columns, samples)
    if not arr.flags.writeable:
        arr = arr.copy()
    return arr, meta


def _blank_for_meta(meta: dict[str, Any], ds: pydicom.Dataset, ts: UID) -> np.ndarray:
    pi = str(meta["photometric_interpretation"]).strip().upper()
    bits_stored = int(meta.get("bits_stored") or meta["bits_allocated"])
    try:
        values = blank_values(pi, bits_stored, int(meta.get("pixel_representation", 0) or 0), ds)
    except ValueError as exc:
        raise PixelError(f"decoded PhotometricInterpretation {pi!r} is not supported for blanking", ts) from exc
    return np.array(values)


def _blank_encapsulated(ds: pydicom.Dataset, ts: UID, regions: tuple[Region, ...], frames: int) -> None:
    lossy = ts not in LOSSLESS_SYNTAXES
    # Lossy colour data is decoded to RGB (the decoders' colour conversion); lossless data stays
    # in its own colour space so it can be written back exactly.
    arr, meta = _decode(ds, ts, as_rgb=lossy)
    if arr.shape[0] != frames:
        raise PixelError(f"decoded {arr.shape[0]} frames, NumberOfFrames says {frames}", ts)
    blank = _blank_for_meta(meta, ds, ts).astype(arr.dtype)
    for x, y, w, h in regions:
        arr[:, y : y + h, x : x + w, :] = blank

    if lossy:
        was_lossy = _codestream_is_lossy(ds, ts)
        _store_native(ds, arr, meta)
        if was_lossy and "LossyImageCompression" not in ds:
            ds.LossyImageCompression = "01"
        return
    if ts in REENCODED_SYNTAXES and _reencode(ds, ts, arr, meta):
        return
    _store_native(ds, arr, meta)


def _reencode(ds: pydicom.Dataset, ts: UID, arr: np.ndarray, meta: dict[str, Any]) -> bool:
    """Encode `arr` with the input's lossless syntax; True when the result decodes back exactly."""
    encoder = get_encoder(ts)
    if encoder is None or not encoder.is_available:
        return False
    original = _snapshot(ds)
    frames, rows, columns, samples = arr.shape
    shaped = arr.reshape((frames, rows, columns) if samples == 1 else arr.shape)
    if frames == 1:
        shaped = shaped[0]
    try:
        # The decoders hand back colour-by-pixel data; YBR_RCT stays the target colour space so the
        # JPEG 2000 encoder applies the reversible transform again.
        if samples > 1:
            ds.PlanarConfiguration = 0
        if str(ds.PhotometricInterpretation) != "YBR_RCT":
            ds.PhotometricInterpretation = str(meta["photometric_interpretation"])
        ds.BitsStored = int(meta.get("bits_stored") or ds.BitsStored)
        ds.PixelRepresentation = int(meta.get("pixel_representation", ds.PixelRepresentation))
        for keyword in _OFFSET_TABLE_KEYWORDS:
            if keyword in ds:
                del ds[keyword]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compress(ds, ts, shaped, generate_instance_uid=False)
            check, _ = _decode(ds, ts, as_rgb=False)
        if check.shape == arr.shape and np.array_equal(check, arr):
            _forget_cached_array(ds)
            return True
    except Exception:  # noqa: BLE001 - an encoder that refuses this image falls back to native
        pass
    _restore(ds, original)
    return False


def _store_native(ds: pydicom.Dataset, arr: np.ndarray, meta: dict[str, Any]) -> None:
    """Replace the pixel data with `arr` as Explicit VR Little Endian, colour-by-pixel."""
    frames, rows, columns, samples = arr.shape
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    data = little.tobytes()
    if len(data) % 2:
        data += b"\x00"
    bits_allocated = arr.dtype.itemsize * 8
    bits_stored = int(meta.get("bits_stored") or bits_allocated)
    for keyword in _OFFSET_TABLE_KEYWORDS:
        if keyword in ds:
            del ds[keyword]
    pi = str(meta["photometric_interpretation"])
    # A decoder hands back full-resolution samples: 4:2:2 data is no longer subsampled.
    ds.PhotometricInterpretation = "YBR_FULL" if pi == "YBR_FULL_422" else pi
    ds.SamplesPerPixel = samples
    if samples > 1:
        ds.PlanarConfiguration = 0
    elif "PlanarConfiguration" in ds:
        del ds.PlanarConfiguration
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0 if arr.dtype.kind == "u" else 1
    ds.PixelData = data
    element = ds["PixelData"]
    element.VR = VR.OB if bits_allocated <= 8 else VR.OW
    element.is_undefined_length = False
    ds.file_meta.TransferSyntaxUID = dicom_uid.ExplicitVRLittleEndian
    _forget_cached_array(ds)


def _codestream_is_lossy(ds: pydicom.Dataset, ts: UID) -> bool:
    """True unless a JPEG 2000 / HTJ2K codestream declares the reversible 5-3 wavelet."""
    if ts not in _J2K_EITHER:
        return True
    try:
        items = generate_fragments(ds.PixelData)
        next(items)  # the Basic Offset Table item
        first = next(items)
    except Exception:  # noqa: BLE001
        return True
    return _j2k_wavelet(bytes(first[:4096])) != 1


def _j2k_wavelet(codestream: bytes) -> int | None:
    """The COD marker's wavelet transform: 0 irreversible 9-7, 1 reversible 5-3; None if not found."""
    start = codestream.find(b"\xff\x4f\xff\x51")
    if start < 0:
        return None
    pos = start + 2
    while pos + 4 <= len(codestream):
        marker = codestream[pos : pos + 2]
        length = int.from_bytes(codestream[pos + 2 : pos + 4], "big")
        if marker == b"\xff\x52":
            index = pos + 13  # Lcod(2) Scod(1) SGcod(4) levels, cb width, cb height, cb style, transform
            return codestream[index] if index < len(codestream) else None
        if marker in (b"\xff\x90", b"\xff\x93") or length < 2:
            return None
        pos += 2 + length
    return None


_IMAGE_PIXEL_KEYWORDS = (
    "PixelData",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsStored",
    "BitsAllocated",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    *_OFFSET_TABLE_KEYWORDS,
)


def _snapshot(ds: pydicom.Dataset) -> dict[str, Any]:
    # Copies: setting ds.Keyword = value mutates the existing element object in place.
    return {
        "elements": {k: copy.copy(ds[k]) for k in _IMAGE_PIXEL_KEYWORDS if k in ds},
        "ts": ds.file_meta.TransferSyntaxUID,
    }


def _restore(ds: pydicom.Dataset, snapshot: dict[str, Any]) -> None:
    for keyword in _IMAGE_PIXEL_KEYWORDS:
        if keyword in snapshot["elements"]:
            ds.add(snapshot["elements"][keyword])
        elif keyword in ds:
            del ds[keyword]
    ds.file_meta.TransferSyntaxUID = snapshot["ts"]
    _forget_cached_array(ds)


def _forget_cached_array(ds: pydicom.Dataset) -> None:
    """Drop pydicom's cached pixel_array so a later read sees the blanked data."""
    if hasattr(ds, "_pixel_array"):
        ds._pixel_array = None
        ds._pixel_id = {}
