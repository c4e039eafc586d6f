"""Pixel data: real images from pydicom's bundled test files, resized to demo matrices, with burned-in text.

Never call pydicom's get_testdata_file for a name that is not bundled: it tries to download.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
ECHO_FRAMES = 6
TEXT_LINE_HEIGHT = 12
TEXT_MARGIN = 4


def read_base(name: str) -> pydicom.Dataset:
    path = TEST_FILES / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: pydicom test file missing; the demo archive needs pydicom's bundled data"
        )
    return pydicom.dcmread(path)


@cache
def _ct_slice() -> np.ndarray:
    return read_base("CT_small.dcm").pixel_array.astype(np.int16)  # 128x128, stored values, intercept -1024


@cache
def _mr_slice() -> np.ndarray:
    return read_base("MR_small.dcm").pixel_array.astype(np.int16)  # 64x64


@cache
def _radiograph() -> np.ndarray:
    return read_base("examples_overlay.dcm").pixel_array.astype(np.uint16)  # 300x484, 12 bits stored


@cache
def _ultrasound_frame() -> np.ndarray:
    frame = read_base("examples_rgb_color.dcm").pixel_array.copy()  # 240x320 RGB
    frame[:54, :, :] = 0  # the vendor's own annotation band (site name, IDs); ours replaces it
    return frame


@cache
def _echo_frames() -> np.ndarray:
    # JPEG baseline, decoded by Pillow to RGB
    frames = read_base("examples_ybr_color.dcm").pixel_array[:ECHO_FRAMES].copy()  # (6, 240, 320, 3)
    frames[:, :34, :66, :] = 0  # the vendor's patient label
    return frames


def ct_slice() -> np.ndarray:
    return _ct_slice().copy()


def mr_slice() -> np.ndarray:
    return _mr_slice().copy()


def radiograph() -> np.ndarray:
    return _radiograph().copy()


def ultrasound_frame() -> np.ndarray:
    return _ultrasound_frame().copy()


def echo_frames() -> np.ndarray:
    return _echo_frames().copy()


def resize_gray(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    resized = Image.fromarray(image.astype(np.float32)).resize((columns, rows), Image.BILINEAR)
    return np.rint(np.asarray(resized)).astype(image.dtype)


def resize_rgb(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((columns, rows), Image.BILINEAR))


def slice_variant(image: np.ndarray, position: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A neighbouring slice of one real image: shifted a little, with noise, so every instance differs."""
    shifted = np.roll(image, shift=(position % 3 - 1, position // 3 % 3 - 1), axis=(0, 1))
    noisy = shifted.astype(np.float32) + rng.normal(0.0, noise, image.shape).astype(np.float32)
    info = np.iinfo(image.dtype)
    return np.clip(np.rint(noisy), info.min, info.max).astype(image.dtype)


def window_to_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (image.astype(np.float32) - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def gray_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., np.newaxis], 3, axis=-1)


# The demo matrices: small, but sizes real scanners produce. Cached; callers must not modify them.


@cache
def ct_matrix() -> np.ndarray:
    return resize_gray(ct_slice(), 256, 256)


@cache
def mr_matrix() -> np.ndarray:
    return resize_gray(mr_slice(), 192, 192)


@cache
def radiograph_matrix() -> np.ndarray:
    return resize_gray(radiograph(), 288, 352)


@cache
def pet_matrix() -> np.ndarray:
    soft_tissue = window_to_uint8(ct_slice(), 900, 1300).astype(np.float32)
    blurred = resize_gray(resize_gray(soft_tissue, 32, 32), 128, 128)
    return (blurred * 40).astype(np.uint16)


@cache
def _font() -> ImageFont.ImageFont:
    # The bitmap font is built into Pillow: identical pixels on every machine.
    return ImageFont.load_default_imagefont()


@dataclass(frozen=True)
class BurnedText:
    text: str
    rect: tuple[int, int, int, int]  # x, y, width, height


def burn_text(frames: np.ndarray, lines: Sequence[str], corner: str = "top-left") -> list[BurnedText]:
    """Draw lines of white text on a black panel in one corner of every frame, in place.

    frames: (frames, rows, columns) or (frames, rows, columns, 3), uint8. corner: top-left, top-right,
    bottom-left or bottom-right. Returns each line with the rectangle its text covers.
    """
    rows, columns = frames.shape[1:3]
    ink = Image.new("L", (columns, rows), 0)
    draw = ImageDraw.Draw(ink)
    font = _font()
    burned = []
    for number, text in enumerate(lines):
        width = int(draw.textlength(text, font=font))
        x = TEXT_MARGIN if corner.endswith("left") else columns - TEXT_MARGIN - width
        if corner.startswith("top"):
            y = TEXT_MARGIN + number * TEXT_LINE_HEIGHT
        else:
            y = rows - TEXT_MARGIN - (len(lines) - number) * TEXT_LINE_HEIGHT
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.text((x, y), text, fill=255, font=font)
        burned.append(BurnedText(text, (left, top, right - left, bottom - top)))
    x0 = max(0, min(b.rect[0] for b in burned) - 2)
    y0 = max(0, min(b.rect[1] for b in burned) - 2)
    x1 = min(columns, max(b.rect[0] + b.rect[2] for b in burned) + 2)
    y1 = min(rows, max(b.rect[1] + b.rect[3] for b in burned) + 2)
    frames[:, y0:y1, x0:x1] = 0
    frames[:, np.asarray(ink) > 0] = 255
    return burned
