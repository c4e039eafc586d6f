"""Thumbnails for the review: one frame of a DICOM image as an 8-bit PNG, blanked regions outlined.

How a frame becomes something a reviewer can read:

- multi-frame: the middle frame (only that frame is decoded);
- colour (RGB, YBR_* decoded to RGB by pydicom, PALETTE COLOR through its palette): scaled to
  8 bits from BitsStored;
- greyscale: the Modality LUT or RescaleSlope/RescaleIntercept first, then the file's first
  WindowCenter/WindowWidth (DICOM linear window) when it has one, else a 1st-99th percentile
  window; MONOCHROME1 is inverted so that low values are white, as the file means them.

For a side-by-side pair the scrubbed image is drawn with the original's window, so the only
visible difference is what the scrub changed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

THUMBNAIL_SIZE = 256  # longest side, in pixels
OUTLINE = (255, 48, 48)  # blanked regions: a red frame
Region = tuple[int, int, int, int]  # x, y, width, height (CTP DicomPixelAnonymizer)


class ImageError(ValueError):
    """The pixel data cannot be shown; the message says why."""


@dataclass(frozen=True)
class Window:
    low: float
    high: float
    source: str  # "file" (WindowCenter/Width) or "percentile"


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray  # uint8, H x W (grey) or H x W x 3 (colour)
    window: Window | None  # None for colour images
    frame: int  # zero-based frame shown
    frames: int


def frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def render(ds: Dataset, window: Window | None = None) -> Rendered:
    """The frame a reviewer sees, as 8 bits; `window` overrides the file's own (greyscale only)."""
    if "PixelData" not in ds:
        raise ImageError("no Pixel Data")
    frames = frame_count(ds)
    frame = frames // 2
    try:
        raw = pixel_array(ds, index=frame if frames > 1 else None)
    except Exception as exc:  # noqa: BLE001 - any decoder failure: the report says so and goes on
        raise ImageError(f"pixel data cannot be decoded: {type(exc).__name__}: {exc}") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        return Rendered(_colour_to_uint8(apply_color_lut(raw, ds), 16 if raw.dtype != np.uint8 else 8), None, frame, frames)
    if raw.ndim == 3:
        return Rendered(_colour_to_uint8(raw, int(ds.get("BitsStored") or 8)), None, frame, frames)
    values = np.asarray(apply_modality_lut(raw, ds), dtype=np.float64)
    chosen = window or file_window(ds) or percentile_window(values)
    grey = apply_window(values, chosen)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Rendered(grey, chosen, frame, frames)


def file_window(ds: Dataset) -> Window | None:
    """The first WindowCenter/WindowWidth pair of the file, if it has a usable one."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    return Window(center - width / 2, center + width / 2, "file")


def _first(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def percentile_window(values: np.ndarray) -> Window:
    low, high = (float(v) for v in np.percentile(values, [1, 99]))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        high = low + 1
    return Window(low, high, "percentile")


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    scaled = (values - window.low) / (window.high - window.low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _colour_to_uint8(rgb: np.ndarray, bits: int) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    top = float(2**bits - 1) if bits > 8 else 255.0
    return np.clip(np.rint(rgb.astype(np.float64) / top * 255.0), 0, 255).astype(np.uint8)


def thumbnail_png(image: np.ndarray, regions: list[Region], size: int = THUMBNAIL_SIZE) -> bytes:
    """A PNG no larger than size x size, with each region (in image pixels) outlined."""
    picture = Image.fromarray(image).convert("RGB")
    scale = min(1.0, size / max(picture.width, picture.height))
    if scale < 1.0:
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))), Image.LANCZOS)
    draw = ImageDraw.Draw(picture)
    for x, y, w, h in regions:
        box = [x * scale, y * scale, (x + w) * scale - 1, (y + h) * scale - 1]
        draw.rectangle(box, outline=OUTLINE, width=2)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
