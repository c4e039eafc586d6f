"""Acquired images: CT, MR, PET, CR/DX radiographs and ultrasound (single-frame and cine).

Pixel data comes from pydicom's real test images (see pixels.py); the headers carry the technique
attributes a cohort query looks for: slice thickness, kVp, field strength, pixel spacing, views.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from . import pixels
from .headers import (
    Instance,
    add_image_comment,
    add_private_block,
    banner_lines,
    burn,
    ds_number,
    make_uid,
    set_gray_pixels,
    set_rgb_pixels,
    tm,
)


def set_plane(
    ds: Dataset, item: Instance, orientation: str, field_of_view: float, columns: int, thickness: float
) -> None:
    orientations = {
        "AX": [1, 0, 0, 0, 1, 0],
        "SAG": [0, 1, 0, 0, 0, -1],
        "COR": [1, 0, 0, 0, 0, -1],
    }
    spacing = field_of_view / columns
    location = -(item.number - 1) * thickness
    ds.FrameOfReferenceUID = make_uid(item.seed, "frame-of-reference", item.study.index, item.series.number)
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = orientations[orientation]
    ds.ImagePositionPatient = [
        ds_number(-field_of_view / 2),
        ds_number(-field_of_view / 2),
        ds_number(location),
    ]
    ds.SliceLocation = ds_number(location)
    ds.SliceThickness = ds_number(thickness)
    ds.SpacingBetweenSlices = ds_number(thickness)
    ds.PixelSpacing = [ds_number(spacing), ds_number(spacing)]


CT_WINDOWS = {"LUNG": ("-600", "1500"), "BONE": ("500", "2000"), "STANDARD": ("40", "400")}


def build_ct(ds: Dataset, item: Instance) -> None:
    template, study = item.series.template, item.study
    assert template is not None and template.slice_thickness is not None
    head = study.template.body_part == "HEAD"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    set_plane(ds, item, "AX", 240.0 if head else 360.0, 256, template.slice_thickness)
    ds.KVP = "120" if head else "100"
    ds.XRayTubeCurrent = str(180 + item.number * 3)
    ds.ExposureTime = "500"
    kernel = next((name for name in ("BONE", "LUNG") if name in template.description), "STANDARD")
    ds.ConvolutionKernel = kernel
    ds.PatientPosition = "HFS" if head else "FFS"
    if study.template.contrast:
        ds.ContrastBolusAgent = "OMNIPAQUE 350"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = CT_WINDOWS[kernel]
    add_private_block(ds, item)
    add_image_comment(ds, item)
    set_gray_pixels(ds, pixels.slice_variant(pixels.ct_matrix(), item.number, item.np_rng, 8.0), 16)


MR_SEQUENCES = {  # weighting: (ScanningSequence, SequenceVariant, MRAcquisitionType, TR, TE)
    "T1": (["GR", "IR"], ["SK", "SP", "MP"], "3D", "2300", "2.98"),
    "T2": (["SE"], ["SK", "OSP"], "2D", "4000", "90"),
    "PD": (["SE"], ["SK"], "2D", "3000", "30"),
}


def build_mr(ds: Dataset, item: Instance) -> None:
    template, device = item.series.template, item.series.device
    assert template is not None and template.slice_thickness is not None
    weighting = next((key for key in MR_SEQUENCES if key in template.description), "T2")
    scanning, variant, acquisition_type, repetition, echo = MR_SEQUENCES[weighting]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    set_plane(ds, item, template.description.split()[0], 220.0, 192, template.slice_thickness)
    ds.ScanningSequence = scanning
    ds.SequenceVariant = variant
    ds.ScanOptions = "FS" if "FS" in template.description else ""
    ds.MRAcquisitionType = acquisition_type
    ds.RepetitionTime = repetition
    ds.EchoTime = echo
    ds.MagneticFieldStrength = ds_number(device.field_strength or 1.5)
    ds.ImagingFrequency = ds_number(42.577 * (device.field_strength or 1.5))
    ds.ImagedNucleus = "1H"
    ds.PatientPosition = "HFS"
    ds.WindowCenter, ds.WindowWidth = "600", "1600"
    add_private_block(ds, item)
    add_image_comment(ds, item)
    set_gray_pixels(ds, pixels.slice_variant(pixels.mr_matrix(), item.number, item.np_rng, 6.0), 16)


def build_pt(ds: Dataset, item: Instance) -> None:
    template, study, rec = item.series.template, item.study, item.recorder
    assert template is not None and template.slice_thickness is not None
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    set_plane(ds, item, "AX", 700.0, 128, template.slice_thickness)
    ds.SeriesType = ["WHOLE BODY", "IMAGE"]
    ds.Units = "BQML"
    ds.CountsSource = "EMISSION"
    ds.CorrectedImage = ["ATTN", "DECY", "SCAT", "NORM"]
    ds.DecayCorrection = "START"
    ds.AttenuationCorrectionMethod = "CTAC"
    ds.ReconstructionMethod = "OSEM 3i21s"
    ds.NumberOfSlices = item.series.instances
    ds.ImageIndex = item.number
    ds.FrameReferenceTime = "0"
    ds.ActualFrameDuration = "180000"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "0.5"
    ds.PatientPosition = "FFS"
    injected_at = study.started_at - dt.timedelta(minutes=62)
    path = "RadiopharmaceuticalInformationSequence[0]"
    drug = Dataset()
    drug.Radiopharmaceutical = "Fludeoxyglucose F^18^"
    rec.set(drug, "RadiopharmaceuticalStartTime", tm(injected_at), "time", within=path)
    rec.set(
        drug, "RadiopharmaceuticalStartDateTime", injected_at.strftime("%Y%m%d%H%M%S"), "date", within=path
    )
    drug.RadionuclideTotalDose = "370000000"
    drug.RadionuclideHalfLife = "6586.2"
    drug.RadionuclidePositronFraction = "0.9673"
    nuclide = Dataset()
    nuclide.CodeValue = "C-111A1"
    nuclide.CodingSchemeDesignator = "SRT"
    nuclide.CodeMeaning = "^18^Fluorine"
    drug.RadionuclideCodeSequence = DicomSequence([nuclide])
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([drug])
    add_private_block(ds, item)
    set_gray_pixels(ds, pixels.slice_variant(pixels.pet_matrix(), item.number, item.np_rng, 20.0), 16)


def build_radiograph(ds: Dataset, item: Instance) -> None:
    template, study = item.series.template, item.study
    assert template is not None
    chest = study.template.body_part == "CHEST"
    image = pixels.radiograph_matrix()
    if template.view in ("LL", "OBL"):
        image = image[:, ::-1]
    image = pixels.slice_variant(np.ascontiguousarray(image), item.number, item.np_rng, 4.0)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = template.view
    ds.PatientOrientation = ["A", "F"] if template.view != "LL" else ["P", "F"]
    ds.KVP = "120" if chest else "60"
    ds.ExposureTime = "12" if chest else "40"
    ds.XRayTubeCurrent = "320" if chest else "100"
    ds.DistanceSourceToDetector = "1800" if chest else "1000"
    ds.ImagerPixelSpacing = ["0.3", "0.3"]
    ds.PixelSpacing = ["0.3", "0.3"]
    ds.BurnedInAnnotation = "NO"
    ds.WindowCenter, ds.WindowWidth = "450", "790"
    if item.series.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    set_gray_pixels(ds, image, 12)


def add_ultrasound_region(ds: Dataset, rows: int, columns: int) -> None:
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 54
    region.RegionLocationMaxX1 = columns - 1
    region.RegionLocationMaxY1 = rows - 1
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = 0.03
    region.PhysicalDeltaY = 0.03
    ds.SequenceOfUltrasoundRegions = DicomSequence([region])


def build_us(ds: Dataset, item: Instance) -> None:
    echo = item.study.template.body_part == "HEART"
    if echo:
        frame = pixels.echo_frames()[item.number % pixels.ECHO_FRAMES]
    else:
        frame = pixels.ultrasound_frame()
    frames = pixels.slice_variant(frame, item.number, item.np_rng, 2.0)[np.newaxis]
    left, right = banner_lines(item)
    burn(item, frames, left, "top-left")
    burn(item, frames, right, "top-right")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIOLOGY" if echo else "ABDOMINAL"]
    add_ultrasound_region(ds, *frames.shape[1:3])
    set_rgb_pixels(ds, frames[0])


def build_us_cine(ds: Dataset, item: Instance) -> None:
    frames = pixels.echo_frames()
    left, right = banner_lines(item)
    burn(item, frames, left, "top-left")  # the same text on every frame
    burn(item, frames, right, "top-right")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIOLOGY"]
    ds.NumberOfFrames = str(frames.shape[0])
    ds.FrameTime = "33.333"
    ds.FrameIncrementPointer = Tag(0x0018, 0x1063)
    ds.CineRate = "30"
    ds.RecommendedDisplayFrameRate = "30"
    ds.HeartRate = "72"
    add_ultrasound_region(ds, *frames.shape[1:3])
    set_rgb_pixels(ds, frames)
