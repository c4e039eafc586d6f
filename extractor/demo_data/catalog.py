"""Fixed reference data of the demo archive: sites, devices and exam protocols.

Everything here is invented; the names only resemble what real archives carry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Institution:
    name: str
    short: str  # also the issuer of the site's MRNs
    address: str
    phone: str


@dataclass(frozen=True)
class Device:
    manufacturer: str
    model: str
    software: str
    station: str
    serial: str
    site: str  # Institution.short
    field_strength: float | None = None  # MR only, tesla


@dataclass(frozen=True)
class SeriesTemplate:
    description: str
    protocol: str
    instances: tuple[int, int]  # inclusive range
    slice_thickness: float | None = None
    view: str = ""  # radiography ViewPosition
    cine: bool = False  # ultrasound multi-frame


@dataclass(frozen=True)
class StudyTemplate:
    key: str
    modalities: tuple[str, ...]  # one is chosen per study (CR or DX for radiography)
    device_group: str
    description: str
    body_part: str
    department: str
    local_code: str
    series: tuple[SeriesTemplate, ...]
    synthea_concepts: tuple[int, ...] = ()  # Synthea procedure concepts that order this exam
    contrast: bool = False
    sexes: tuple[str, ...] = ("F", "M")


MAIN_SITE = Institution(
    "Riverside General Hospital", "RGH", "1200 Maple Avenue, Springfield, IL 62704", "(217) 555-0100"
)
IMAGING_CENTER = Institution(
    "Northgate Imaging Center", "NGIC", "45 Harbor Road, Lakeview, OH 44095", "(440) 555-0172"
)
HEART_CENTER = Institution(
    "St. Aurelia Heart Institute", "SAHI", "9 Cathedral Square, Fairmont, WV 26554", "(304) 555-0139"
)
OUTSIDE_HOSPITAL = Institution(
    "Lakeside Community Hospital", "LCH", "300 Shore Drive, Port Ellis, MI 49001", "(231) 555-0190"
)
INSTITUTIONS: dict[str, Institution] = {
    site.short: site for site in (MAIN_SITE, IMAGING_CENTER, HEART_CENTER, OUTSIDE_HOSPITAL)
}
# The hospital that merged into the main site; its MRNs survive as second MRNs.
MERGED_SITE_MRN_PREFIX = "NG"

DEPARTMENTS: dict[str, str] = {
    "RAD": "RADIOLOGY",
    "CARD": "CARDIOLOGY",
    "OB": "OBSTETRICS",
    "NM": "NUCLEAR MEDICINE",
}

DEVICES: dict[str, tuple[Device, ...]] = {
    "CT": (
        Device("GE MEDICAL SYSTEMS", "Revolution CT", "revo_ct_22mw.32", "RGHCT01", "CT2218831", "RGH"),
        Device("SIEMENS", "SOMATOM Force", "syngo CT VB20A", "RGHCT02", "75530", "RGH"),
        Device("Philips", "iCT 256", "4.1.6", "NGICCT1", "100412", "NGIC"),
        Device("CANON_MEDICAL_SYSTEMS", "Aquilion ONE", "V10.6SP0001", "NGICCT2", "4BA1892034", "NGIC"),
    ),
    "MR": (
        Device("SIEMENS", "MAGNETOM Skyra", "syngo MR E11", "RGHMR01", "45112", "RGH", 3.0),
        Device("GE MEDICAL SYSTEMS", "SIGNA Premier", "MR29.1_R01", "RGHMR02", "000000MR0871", "RGH", 3.0),
        Device("Philips Medical Systems", "Ingenia", "5.7.1", "NGICMR1", "42021", "NGIC", 1.5),
        Device("CANON_MEDICAL_SYSTEMS", "Vantage Orian", "V6.0", "NGICMR2", "MRA1723", "NGIC", 1.5),
    ),
    "US": (
        Device("GE Healthcare", "LOGIQ E9", "R6.1.0", "RGHUS03", "LE9-210554", "RGH"),
        Device("Philips", "EPIQ 7G", "7.0.5.244", "NGICUS1", "US71904412", "NGIC"),
        Device("Canon Medical Systems", "Aplio i800", "V6.0SP0003", "RGHUS05", "99A1821", "RGH"),
    ),
    "ECHO": (
        Device("GE Vingmed Ultrasound", "Vivid E95", "204.67.0", "SAHIECHO1", "VE95-6021", "SAHI"),
        Device("Philips", "EPIQ CVx", "9.0.3.122", "SAHIECHO2", "US81122901", "SAHI"),
    ),
    "CR": (
        Device("FUJIFILM Corporation", "FCR PROFECT CS", "A06-20", "RGHCR01", "31120745", "RGH"),
        Device("Carestream Health", "DirectView CR 975", "5.7.412", "NGICCR1", "CR975-0031", "NGIC"),
    ),
    "DX": (
        Device("GE Healthcare", "Definium 656", "dm_Platform_release_2.2", "RGHDX01", "656HD1192", "RGH"),
        Device("Philips Medical Systems", "DigitalDiagnost", "4.3.4", "RGHDX02", "DD4-11920", "RGH"),
        Device("SIEMENS", "Ysio Max", "VF10H", "NGICDX1", "30187", "NGIC"),
        Device("Canon Inc.", "CXDI-710C Wireless", "3.10.0", "NGICDX2", "CXDI0041", "NGIC"),
    ),
    "PT": (
        Device("GE MEDICAL SYSTEMS", "Discovery MI", "pet_coreload.46", "RGHPET01", "DMI11029", "RGH"),
        Device("SIEMENS", "Biograph mCT Flow", "VG60A", "NGICPET1", "1104", "NGIC"),
    ),
    "WORKSTATION": (
        Device("GE MEDICAL SYSTEMS", "Advantage Workstation", "AW4.7", "RGHAW01", "AW470231", "RGH"),
        Device("Philips", "IntelliSpace Portal", "11.1.0", "NGICISP1", "ISP-0093", "NGIC"),
    ),
    "FILM_DIGITIZER": (Device("VIDAR", "DiagnosticPRO Advantage", "5.1.2", "RGHFILM01", "DPA-10234", "RGH"),),
    "DOCUMENT_SCANNER": (Device("Hyland Software", "OnBase Scan", "18.0.1", "RGHSCAN01", "OB-77120", "RGH"),),
    "REPORTING": (Device("Nuance", "PowerScribe 360", "4.0 SP2", "RGHPS01", "PS360-0007", "RGH"),),
}


def _series(description: str, protocol: str, low: int, high: int, **kwargs: object) -> SeriesTemplate:
    return SeriesTemplate(description, protocol, (low, high), **kwargs)  # type: ignore[arg-type]


def _radiograph(key: str, name: str, body_part: str, concept: int, views: tuple[str, ...]) -> StudyTemplate:
    return StudyTemplate(
        key=key,
        modalities=("CR", "DX"),
        device_group="",  # the modality chosen (CR or DX) names the device group
        description=f"XR {name} {len(views)} VIEW{'S' if len(views) > 1 else ''}",
        body_part=body_part,
        department="RAD",
        local_code=f"XR{body_part[:4]}{len(views)}",
        series=tuple(_series(f"{name} {view}", f"{name} {view}", 1, 1, view=view) for view in views),
        synthea_concepts=(concept,),
    )


TEMPLATES: dict[str, StudyTemplate] = {
    template.key: template
    for template in (
        StudyTemplate(
            "CT_CHEST",
            ("CT",),
            "CT",
            "CT CHEST W CONTRAST",
            "CHEST",
            "RAD",
            "CTCHWC",
            (
                _series("AXIAL 5.0 STND", "CHEST ROUTINE", 5, 6, slice_thickness=5.0),
                _series("AXIAL 0.625 LUNG", "CHEST ROUTINE", 5, 7, slice_thickness=0.625),
            ),
            contrast=True,
        ),
        StudyTemplate(
            "CT_CHEST_ABDOMEN",
            ("CT",),
            "CT",
            "CT CHEST ABDOMEN W CONTRAST",
            "CHESTABDOMEN",
            "RAD",
            "CTCAWC",
            (
                _series("AXIAL 5.0 SOFT TISSUE", "CHEST ABD PORTAL", 5, 6, slice_thickness=5.0),
                _series("AXIAL 1.0 LUNG", "CHEST ABD PORTAL", 5, 7, slice_thickness=1.0),
            ),
            synthea_concepts=(4302356,),
            contrast=True,
        ),
        StudyTemplate(
            "CT_HEAD",
            ("CT",),
            "CT",
            "CT HEAD WO CONTRAST",
            "HEAD",
            "RAD",
            "CTHDWO",
            (
                _series("AXIAL 5MM BRAIN", "HEAD ROUTINE", 5, 6, slice_thickness=5.0),
                _series("AXIAL 0.625 BONE", "HEAD ROUTINE", 5, 7, slice_thickness=0.625),
            ),
        ),
        StudyTemplate(
            "CT_ABDOMEN",
            ("CT",),
            "CT",
            "CT ABDOMEN PELVIS W CONTRAST",
            "ABDOMEN",
            "RAD",
            "CTAPWC",
            (_series("AXIAL 3.0 PORTAL VENOUS", "ABD PELVIS PORTAL", 5, 8, slice_thickness=3.0),),
            contrast=True,
        ),
        StudyTemplate(
            "MR_BRAIN",
            ("MR",),
            "MR",
            "MR BRAIN WO CONTRAST",
            "BRAIN",
            "RAD",
            "MRBRWO",
            (
                _series("AX T2 FSE", "BRAIN ROUTINE", 4, 5, slice_thickness=5.0),
                _series("SAG T1 MPRAGE", "BRAIN VOLUMETRY", 4, 6, slice_thickness=1.0),
            ),
            synthea_concepts=(44784284,),
        ),
        StudyTemplate(
            "MR_KNEE",
            ("MR",),
            "MR",
            "MR KNEE WO CONTRAST",
            "KNEE",
            "RAD",
            "MRKNWO",
            (
                _series("COR PD FS", "KNEE ROUTINE", 4, 5, slice_thickness=3.0),
                _series("SAG T2 FS", "KNEE ROUTINE", 4, 5, slice_thickness=3.0),
            ),
        ),
        StudyTemplate(
            "MR_LSPINE",
            ("MR",),
            "MR",
            "MR LUMBAR SPINE WO CONTRAST",
            "LSPINE",
            "RAD",
            "MRLSWO",
            (_series("SAG T2 TSE", "LSPINE ROUTINE", 4, 6, slice_thickness=4.0),),
        ),
        StudyTemplate(
            "US_ABDOMEN",
            ("US",),
            "US",
            "US ABDOMEN RUQ",
            "ABDOMEN",
            "RAD",
            "USABRUQ",
            (_series("ABDOMEN", "ABDOMEN", 1, 3),),
            synthea_concepts=(42535580,),
        ),
        StudyTemplate(
            "US_OB",
            ("US",),
            "US",
            "US OB FETAL VIABILITY",
            "PELVIS",
            "OB",
            "USOBVIA",
            (_series("OB", "OB 1ST TRIMESTER", 1, 2),),
            synthea_concepts=(4060626, 4150653),
            sexes=("F",),
        ),
        StudyTemplate(
            "US_ECHO",
            ("US",),
            "ECHO",
            "ECHO TTE COMPLETE",
            "HEART",
            "CARD",
            "ECHOTTE",
            (
                _series("APICAL 4CH CINE", "ADULT TTE", 1, 1, cine=True),
                _series("PLAX", "ADULT TTE", 1, 2),
            ),
        ),
        StudyTemplate(
            "PT_WHOLEBODY",
            ("PT",),
            "PT",
            "PET CT FDG SKULL BASE TO MID THIGH",
            "WHOLEBODY",
            "NM",
            "PETWB",
            (_series("PET WB AC", "FDG WHOLEBODY", 2, 3, slice_thickness=3.27),),
        ),
        _radiograph("XR_CHEST", "CHEST", "CHEST", 4163872, ("PA", "LL")),
        _radiograph("XR_HUMERUS", "HUMERUS", "ARM", 4047491, ("AP", "LL")),
        _radiograph("XR_WRIST", "WRIST", "WRIST", 4243062, ("PA", "LL", "OBL")),
        _radiograph("XR_CLAVICLE", "CLAVICLE", "CLAVICLE", 4058899, ("AP",)),
        _radiograph("XR_ANKLE", "ANKLE", "ANKLE", 4024289, ("AP", "LL", "OBL")),
        _radiograph("XR_KNEE", "KNEE", "KNEE", 4252419, ("AP", "LL")),
        _radiograph("XR_PELVIS", "PELVIS", "PELVIS", 4145310, ("AP",)),
    )
}

# Exams that Synthea orders, found through its procedure concepts.
TEMPLATE_BY_SYNTHEA_CONCEPT: dict[int, StudyTemplate] = {
    concept: template for template in TEMPLATES.values() for concept in template.synthea_concepts
}

# Exams given to patients on top of their Synthea ones, in this rotation, so that every
# modality appears even in a small archive.
ROTATION: tuple[str, ...] = (
    "CT_CHEST",
    "MR_BRAIN",
    "US_ECHO",
    "PT_WHOLEBODY",
    "XR_CHEST",
    "CT_HEAD",
    "US_ABDOMEN",
    "MR_KNEE",
    "XR_KNEE",
    "US_OB",
    "XR_ANKLE",
    "MR_LSPINE",
    "CT_ABDOMEN",
    "XR_WRIST",
)

# Outside films brought by the patient and digitized at the main site: images no order asked for.
FILM_TEMPLATE = StudyTemplate(
    "FILM_OUTSIDE",
    ("OT",),
    "FILM_DIGITIZER",
    "OUTSIDE FILM DIGITIZED",
    "CHEST",
    "RAD",
    "FILMDIG",
    (_series("SCANNED FILM", "FILM DIGITIZATION", 1, 2),),
)
