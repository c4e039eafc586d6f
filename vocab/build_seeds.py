"""Build the dbt concept seeds in vocab/seeds/ from the pinned OHDSI imaging vocabulary files.

Usage (from the repository root):

    python vocab/build_seeds.py [VOCAB_DATA_DIR] [--out DIR] [--check]

VOCAB_DATA_DIR defaults to ../shared/vocab-data relative to the repository root. Python 3.11
standard library only. Concept ids are never written in this file: every id is looked up in the
source CSVs by vocabulary_id / concept_class_id / concept_code, because the DICOM vocabulary
proposal renumbers its custom ids between versions. Output is deterministic (sorted rows, LF line
endings, UTF-8 without BOM), so a rebuild from the same sources reproduces the committed seeds
byte for byte; `--check` does exactly that and exits 1 when a seed differs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / ".." / "shared" / "vocab-data"
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "seeds"

CONCEPT_FILE = "dicom2omop__omop_table_staging_v5.csv"
MAPS_TO_FILE = "dicom2omop__cs_values_maps_to.csv"
MAPS_TO_VALUE_FILE = "dicom2omop__cs_values_maps_to_value.csv"
SOP_CLASS_FILE = "dicom2omop__part4_sop_class.csv"
SOURCES_README = "README.md"

DICOM_VOCABULARY = "DICOM"
ATTRIBUTE_CLASS = "DICOM Attributes"
VALUE_SET_CLASS = "DICOM Value Sets"
MODALITY_TAG = "00080060"  # (0008,0060) Modality
BODY_PART_TAG = "00180015"  # (0018,0015) Body Part Examined
MAPS_TO = "Maps to"
MAPS_TO_VALUE = "Maps to value"
UNMAPPED_CONCEPT_ID = 0
UCUM_VOCABULARY = "UCUM"

TOKEN_RE = re.compile(r"[A-Z0-9]+")
CODE_STRING_RE = re.compile(r"^[A-Z0-9_ ]{1,16}$")  # DICOM CS value representation
TAG_RE = re.compile(r"^[0-9A-F]{8}$")
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


@dataclass(frozen=True)
class Feature:
    """An acquisition parameter that imgomop stores as an image feature (one measurement row)."""

    feature_name: str
    dicom_keyword: str
    tag: str
    value_representation: str
    value_multiplicity: int
    unit_source_value: str
    unit_ucum_code: str


# The DICOM facts (keyword, tag, VR, VM, unit) come from PS3.6 / PS3.3; the concept id is looked up.
FEATURES: tuple[Feature, ...] = (
    Feature("slice_thickness", "SliceThickness", "00180050", "DS", 1, "mm", "mm"),
    Feature("kvp", "KVP", "00180060", "DS", 1, "kV", "kV"),
    Feature("pixel_spacing", "PixelSpacing", "00280030", "DS", 2, "mm", "mm"),
    Feature("magnetic_field_strength", "MagneticFieldStrength", "00180087", "DS", 1, "T", "T"),
    Feature("spacing_between_slices", "SpacingBetweenSlices", "00180088", "DS", 1, "mm", "mm"),
    Feature("rows", "Rows", "00280010", "US", 1, "pixels", "{pixels}"),
    Feature("columns", "Columns", "00280011", "US", 1, "pixels", "{pixels}"),
)

# Common words of radiology study and series descriptions (stage 2 of description redaction keeps
# only allowlisted tokens). No person names, no place names, no eponyms that are surnames.
CURATED_DESCRIPTION_WORDS = """
2D 3D 4D AB ABD ABDOMEN ABDOMINAL ABDPEL ABDPELVIS AC ACQ ACQUISITION ADC ADDITIONAL ADULT AIR
ANGIO ANGIOGRAM ANGIOGRAPHY ANKLE AORTA AORTIC AP APPENDIX ARM ARTERIAL ARTERIES ARTERIOGRAM
ARTERY ARTHROGRAM ASL ASPIRATION ATTENUATION AVERAGE AX AXI AXIAL AXILLA AXILLARY B0 B1000 B50
B500 B800 BARIUM BASELINE BEARING BILAT BILATERAL BIOPSY BLADDER BLOOD BODY BOLD BOLUS BONE BONES
BOTH BOWEL BRAIN BRAVO BREAST BREASTS BY CALCIUM CALIBRATION CANCER CAPTURE CARDIAC CAROTID CAROTIDS
CAVITY CC CERVICAL CHEST CHILD CINE CIRCLE CISS CM COCCYX COLON COLONOGRAPHY COMPARISON COMPLETE
COMPREHENSIVE CONTRAST COR CORONAL CORONARY CORRECTED CSI CSPINE CT CTA CTP CTV CUBE CYSTOGRAM DATA
DCE DECUBITUS DELAY DELAYED DENSITY DERIVED DEXA DIAGNOSTIC DIFFUSION DOPPLER DOSE
DRAINAGE DSC DTI DUAL DUPLEX DWI DX DXA ECG ECHO ED ELBOW EMBOLISM EMERGENCY ENEMA ENERGY
ENHANCED ENTEROGRAPHY EPI EQUILIBRIUM ER ERECT ESOPHAGRAM ESOPHAGUS EVAL EVALUATION EXAM
EXAMINATION EXCRETORY EXP EXPIRATION EXPIRATORY EXT EXTENSION EXTREMITIES EXTREMITY FACE FACIAL
FAST FAT FATSAT FDG FEET FEMUR FIBULA FIESTA FINGER FINGERS FLAIR FLEX FLEXION FLUORO FLUOROSCOPY
FMRI FOLLOW FOLLOWUP FOOT FOR FOREARM FRONTAL FS FSE FSPGR FU FULL GAD GADO GADOLINIUM GATED GI
GRADIENT GRE GUIDANCE GUIDED HAND HANDS HASTE HEAD HEART HELICAL HEPATIC HFS HIGH HIP HIPS HR HRCT
HSG HUMERUS IAC IMAGE IMAGES IMAGING IN INFANT INITIAL INJECTION INPATIENT INPHASE INSPIRATION
INSPIRATORY INTERVENTION INVERSION IR ITERATIVE IV IVP IVU JOINT JOINTS KEY KIDNEY KIDNEYS KNEE
KNEES KUB KV KVP LAT LATERAL LAVA LEFT LEG LEGS LIMITED LIVER LM LOC LOCALISER LOCALIZER LORDOTIC
LOW LOWER LSPINE LT LUMBAR LUNG LUNGS MAG MAGNIFICATION MAGNITUDE MAMMO MAMMOGRAM MAMMOGRAPHY MAP
MAPS MASS MATTER MAXILLOFACIAL MEDIASTINAL MEDIASTINUM MINIP MIP ML MLO MM MOCO MORTISE MOUTH MPR
MPRAGE MR MRA MRCP MRI MRS MRV MT MULTIPHASE MYELOGRAM NAC NECK NEONATAL NEPHROGRAPHIC NEURO
NEUTRAL NO NODULE NODULES NON NONCONTRAST O OBL OBLIQUE ODONTOID OF ON ONLY OP OPEN OPERATIVE OPP
OPPOSED OR ORAL ORBIT ORBITS ORIGINAL OUT OUTPATIENT OUTPHASE OUTSIDE PA PANCREAS PC PD PDW PE
PEDIATRIC PEDS PELVIC PELVIS PERF PERFUSION PET PHASE PHASES PILOT PITUITARY PLUS PORTABLE PORTAL
POST POSTCONTRAST POSTOP PRE PRECONTRAST PREOP PRIMARY PRIOR PRIORITY PROCEDURE PROCESSED PRONE
PROSTATE PROTOCOL PULMONARY RAW RAY RDSR RECON RECONS RECONSTRUCTION RECOVERY REF REFERENCE
REFORMAT REFORMATS REFORMATTED RENAL REPEAT REPORT RESOLUTION REST RIB RIBS RIGHT ROUTINE RT
RUNOFF SACRUM SAG SAGITTAL SAT SAVE SAVED SC SCAN SCANS SCAPULA SCORE SCORING SCOUT SCREEN
SCREENING SE SECONDARY SENSE SEQUENCE SEQUENTIAL SERIES SHARP SHOULDER SINUS SINUSES SKULL SLICE
SLICES SMOOTH SOFT SPACE SPECT SPECTROSCOPY SPGR SPIN SPINAL SPINE SPIRAL SPLEEN SPOT SR SSFP
SSFSE STANDARD STANDING STAT STD STEADY STIR STRESS STROKE STRUCTURED STUDY SUB SUBTRACT
SUBTRACTION SUMMARY SUPINE SURVEY SUV SVS SWALLOW SWI T1 T1W T2 T2W TANGENTIAL TEMPORAL TENSOR
TEST THICK THIN THORACIC THORAX THYROID TIBIA TIMING TISSUE TO TOE TOES TOF TOMO TOMOSYNTHESIS
TOPOGRAM TRA TRACE TRACKING TRACTOGRAPHY TRANS TRANSMISSION TRANSVERSE TRAUMA TRIPLE TRUFI TSE
TSPINE TURBO UGI ULTRASOUND UNCORRECTED UNENHANCED UNILATERAL UNPROCESSED UP UPPER UPRIGHT URGENT
UROGRAM US VCUG VEIN VEINS VENOGRAM VENOUS VESSEL VESSELS VIBE VIEW VIEWS VIRTUAL VOIDING VOLUME
VR VRT W WATER WB WEIGHT WHOLE WHOLEBODY WIN WINDOW WITH WITHOUT WO WRIST WWO X XR XRAY
ABSCESS ACUTE BEAM BLEED CBCT CHRONIC CONE DENTAL DYNAMIC FRACTURE HEMORRHAGE INFECTION INJURY
MARKER METASTASIS METS MULTI OBSTRUCTION PAIN QA QC RESTAGING SINGLE SPECIMEN STAGING STONE STONES
SURVEILLANCE TUMOR
"""

# Slice-thickness and diffusion fragments that survive the tokenizer ("1.25mm" -> 1, 25MM).
CURATED_NUMBER_TOKENS: tuple[str, ...] = (
    tuple(str(n) for n in range(21)) + ("25", "625", "1000")
    + tuple(f"{n}MM" for n in (*range(1, 11), 25, 625))
)

# Common first and last names (and surname eponyms of anatomy and radiographic views). A token
# on this list never enters the allowlist, even when a vocabulary name or the curated list has it.
NAME_EXCLUSIONS = """
AARON ABIGAIL ADAM ADAMS ALAN ALBERT ALEXANDER ALEXIS ALI ALICE ALLEN ALVAREZ AMANDA AMBER AMY
ANDERSON ANDREA ANDREW ANGELA ANN ANNA ANTHONY APRIL ARTHUR ASHLEY AUSTIN BAILEY BAKER BARBARA
BECKER BENJAMIN BENNETT BETTY BEVERLY BILL BILLY BOBBY BRADLEY BRANDON BRENDA BRIAN BRITTANY BROOKS
BROWN BRUCE BRYAN CAMPBELL CARL CAROL CAROLYN CARTER CASTILLO CATHERINE CHARLES CHARLOTTE CHAVEZ
CHEN CHERYL CHOI CHRISTIAN CHRISTINA CHRISTINE CHRISTOPHER CLARK COLLINS COOK COOPER COX CRUZ
CYNTHIA DANIEL DANIELLE DAVID DAVIS DEBORAH DEBRA DENISE DENNIS DIANA DIANE DIAZ DIXON DONALD DONNA
DORIS DOROTHY DOUGLAS DYLAN EDWARD EDWARDS ELIJAH ELIZABETH EMILY EMMA ERIC ETHAN EUGENE EVANS
EVELYN FISCHER FLORES FOSTER FRANCES FRANK GABRIEL GARCIA GARY GEORGE GERALD GLORIA GOMEZ GONZALEZ
GRACE GRAY GREEN GREGORY GREY GUO GUTIERREZ HALL HANNAH HAROLD HARRIS HE HEATHER HELEN HENRY
HERNANDEZ HILL HOWARD HU HUANG HUGHES ISABELLA JACK JACKSON JACOB JACQUELINE JAMES JANET JANICE
JASON JEAN JEFFREY JENNIFER JEREMY JERRY JESSE JESSICA JIMENEZ JOAN JOE JOHN JOHNSON JONATHAN
JONES JORDAN JOSE JOSEPH JOSHUA JOYCE JUAN JUDITH JUDY JULIA JULIE JUNE JUSTIN KAREN KATHERINE
KATHLEEN KATHRYN KAYLA KEITH KELLY KENNETH KEVIN KHAN KIM KIMBERLY KING KUMAR KYLE LARRY LAURA
LAUREN LAWRENCE LEE LEWIS LI LIN LINDA LISA LIU LOGAN LONG LOPEZ LORI LUO MA MADISON MARGARET MARIA
MARIE MARILYN MARK MARTHA MARTIN MARTINEZ MARY MASON MATTHEW MAY MEGAN MELISSA MENDOZA MEYER
MICHAEL MICHELLE MILLER MITCHELL MOORE MORALES MORGAN MORISON MORISONS MORRIS MULLER MURPHY MYERS
NANCY NATALIE NATHAN NELSON NGUYEN NICHOLAS NICOLE NOAH OLIVIA ORTIZ PAMELA PARK PARKER PATEL
PATRICIA PATRICK PAUL PEREZ PETER PETERSON PHILIP PHILLIPS PRICE RACHEL RALPH RAMIREZ RAMOS
RANDY RAYMOND REBECCA REED REYES RICHARD RICHARDSON RIVERA ROBERT ROBERTS ROBINSON RODRIGUEZ
ROGER ROGERS RONALD ROSS ROY RUIZ RUSSELL RUTH RYAN SAMANTHA SAMUEL SANCHEZ SANDERS SANDRA SARA
SARAH SATO SCHMIDT SCHNEIDER SCOTT SEAN SHAH SHARON SHIRLEY SINGH SMITH SOPHIA STEPHANIE STEPHEN
STEVEN STEWART SUN SUSAN SUZUKI TANAKA TAYLOR TERESA TERRY THERESA THOMAS THOMPSON TIMOTHY TORRES
TOWNE TURNER TYLER VICTORIA VINCENT VIRGINIA WAGNER WALKER WALTER WANG WARD WATERS WATSON WAYNE
WEBER WHITE WILLIAM WILLIAMS WILLIE WILLIS WILSON WOOD WRIGHT WU XU YANG YOUNG ZACHARY ZHANG ZHAO
ZHOU ZHU
"""


@dataclass(frozen=True)
class Concept:
    """One row of an OMOP CONCEPT table (the fields the seeds use)."""

    concept_id: int
    concept_name: str
    domain_id: str
    vocabulary_id: str
    concept_class_id: str
    standard_concept: str
    concept_code: str


class VocabularyError(ValueError):
    """A source file is missing, malformed or does not hold what a seed needs."""


# ---------------------------------------------------------------- small pure helpers


def clean_text(value: str) -> str:
    """Drop invisible format characters (zero-width spaces in the sources), normalise spaces."""
    visible = "".join(ch for ch in value if unicodedata.category(ch) != "Cf")
    return " ".join(visible.replace("\u00a0", " ").split())


def words(text: str) -> list[str]:
    """The redaction tokenizer: upper-case, split on everything that is not [A-Z0-9]."""
    return TOKEN_RE.findall(text.upper())


def word_set(block: str) -> frozenset[str]:
    return frozenset(block.split())


def curated_tokens() -> frozenset[str]:
    return word_set(CURATED_DESCRIPTION_WORDS) | frozenset(CURATED_NUMBER_TOKENS)


def name_exclusions() -> frozenset[str]:
    return word_set(NAME_EXCLUSIONS)


def vocabulary_tokens(concepts: Iterable[Concept]) -> set[str]:
    """Codes and concept-name words of vocabulary values; single letters are left to the curated list."""
    tokens: set[str] = set()
    for concept in concepts:
        tokens.update(words(concept.concept_code))
        tokens.update(words(concept.concept_name))
    return {token for token in tokens if len(token) > 1}


def allowlist(vocabulary: set[str], curated: frozenset[str], excluded: frozenset[str]) -> list[str]:
    return sorted((vocabulary | curated) - excluded)


def is_valid_uid(uid: str) -> bool:
    return len(uid) <= 64 and UID_RE.fullmatch(uid) is not None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- reading the sources


def read_rows(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV file as cleaned strings; names the file and the missing columns on error."""
    if not path.is_file():
        raise VocabularyError(f"{path}: file not found; pass the vocab-data folder as the first argument")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [clean_text(name) for name in reader.fieldnames or []]
        missing = [name for name in required if name not in header]
        if missing:
            raise VocabularyError(f"{path}: missing column(s) {missing}; found {header}")
        return [
            {clean_text(key): clean_text(value or "") for key, value in row.items() if key is not None}
            for row in reader
        ]


def to_int(value: str, path: Path, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise VocabularyError(f"{path}: column {column} holds {value!r}, not an integer concept id") from None


def load_concepts(path: Path) -> dict[int, Concept]:
    columns = ("concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
               "standard_concept", "concept_code")
    concepts: dict[int, Concept] = {}
    for row in read_rows(path, columns):
        concept = Concept(
            concept_id=to_int(row["concept_id"], path, "concept_id"),
            concept_name=row["concept_name"],
            domain_id=row["domain_id"],
            vocabulary_id=row["vocabulary_id"],
            concept_class_id=row["concept_class_id"],
            standard_concept=row["standard_concept"],
            concept_code=row["concept_code"],
        )
        if concept.concept_id in concepts:
            raise VocabularyError(f"{path}: concept_id {concept.concept_id} appears twice")
        concepts[concept.concept_id] = concept
    return concepts


def load_relationship(path: Path, relationship_id: str) -> dict[int, list[int]]:
    """concept_id_1 -> [concept_id_2, ...] for one relationship_id, targets sorted."""
    pairs: dict[int, list[int]] = {}
    for row in read_rows(path, ("concept_id_1", "concept_id_2", "relationship_id")):
        if row["relationship_id"] != relationship_id:
            continue
        source = to_int(row["concept_id_1"], path, "concept_id_1")
        pairs.setdefault(source, []).append(to_int(row["concept_id_2"], path, "concept_id_2"))
    return {source: sorted(set(targets)) for source, targets in pairs.items()}


def find_concept(concepts: Mapping[int, Concept], vocabulary_id: str, concept_class_id: str, code: str) -> Concept:
    """The one concept with this vocabulary, class and code; an error when there is none or several."""
    found = [c for c in concepts.values()
             if c.vocabulary_id == vocabulary_id and c.concept_class_id == concept_class_id and c.concept_code == code]
    if len(found) != 1:
        raise VocabularyError(
            f"{CONCEPT_FILE}: expected one {vocabulary_id} / {concept_class_id} concept with concept_code "
            f"{code!r}, found {len(found)}; is this the pinned vocabulary version?")
    return found[0]


def attribute_values(concepts: Mapping[int, Concept], maps_to_value: Mapping[int, list[int]], tag: str) -> list[Concept]:
    """The value-set concepts of one DICOM attribute (attribute --Maps to value--> value)."""
    attribute = find_concept(concepts, DICOM_VOCABULARY, ATTRIBUTE_CLASS, tag)
    values = [concepts[i] for i in maps_to_value.get(attribute.concept_id, []) if i in concepts]
    values = [v for v in values if v.concept_class_id == VALUE_SET_CLASS]
    if not values:
        raise VocabularyError(f"{MAPS_TO_VALUE_FILE}: no '{MAPS_TO_VALUE}' rows for attribute {tag} "
                              f"({attribute.concept_name}, concept_id {attribute.concept_id})")
    bad = [v.concept_code for v in values if not CODE_STRING_RE.fullmatch(v.concept_code)]
    if bad:
        raise VocabularyError(f"{CONCEPT_FILE}: values of {tag} that are not DICOM code strings: {bad}")
    return sorted(values, key=lambda v: v.concept_code)


def parse_sources_readme(path: Path) -> dict[str, dict[str, str]]:
    """file name -> repository, path, commit and date, from the '| file | from | ... |' table."""
    cell_re = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+), (?P<path>.+?), commit (?P<commit>[0-9a-f]{7,40}) "
                         r"\((?P<date>\d{4}-\d{2}-\d{2})\)$")
    sources: dict[str, dict[str, str]] = {}
    previous: dict[str, str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or (not cells[0].endswith(".csv") and ".csv," not in cells[0]):
            continue
        origin = cells[1]
        if origin == "same" and previous is not None:
            pinned = previous
        else:
            match = cell_re.match(origin)
            if match is None:
                raise VocabularyError(f"{path}: cannot read the source of {cells[0]!r}: {origin!r}")
            pinned = match.groupdict()
        for name in (n.strip() for n in cells[0].split(",")):
            sources[name] = pinned
        previous = pinned
    if not sources:
        raise VocabularyError(f"{path}: no '| file | from | ... |' table found")
    return sources


# ---------------------------------------------------------------- building the seed rows

Row = dict[str, str | int]


def modality_rows(modalities: Sequence[Concept]) -> list[Row]:
    return [
        {"modality": c.concept_code, "concept_id": c.concept_id, "concept_name": c.concept_name,
         "vocabulary_id": c.vocabulary_id, "concept_class_id": c.concept_class_id, "concept_code": c.concept_code}
        for c in modalities
    ]


def anatomic_site_rows(body_parts: Sequence[Concept], maps_to: Mapping[int, list[int]]) -> list[Row]:
    rows: list[Row] = []
    for c in body_parts:
        targets = maps_to.get(c.concept_id, [])
        if len(targets) > 1:
            raise VocabularyError(f"{MAPS_TO_FILE}: {c.concept_code} (concept_id {c.concept_id}) maps to "
                                  f"several concepts {targets}; choose one before building the seed")
        rows.append({
            "body_part_examined": c.concept_code,
            "anatomic_site_concept_id": targets[0] if targets else UNMAPPED_CONCEPT_ID,
            "dicom_concept_id": c.concept_id,
            "dicom_concept_name": c.concept_name,
            "vocabulary_id": c.vocabulary_id,
            "concept_code": c.concept_code,
        })
    return rows


def feature_rows(concepts: Mapping[int, Concept]) -> list[Row]:
    rows: list[Row] = []
    for f in FEATURES:
        concept = find_concept(concepts, DICOM_VOCABULARY, ATTRIBUTE_CLASS, f.tag)
        if concept.concept_name.replace(" ", "") != f.dicom_keyword:
            raise VocabularyError(f"{CONCEPT_FILE}: tag {f.tag} is {concept.concept_name!r}, "
                                  f"expected the attribute {f.dicom_keyword}")
        rows.append({
            "feature_name": f.feature_name, "dicom_keyword": f.dicom_keyword, "tag": f.tag,
            "concept_id": concept.concept_id, "concept_name": concept.concept_name,
            "vocabulary_id": concept.vocabulary_id, "concept_code": concept.concept_code,
            "value_representation": f.value_representation, "value_multiplicity": f.value_multiplicity,
            "unit_source_value": f.unit_source_value, "unit_ucum_code": f.unit_ucum_code,
            "unit_vocabulary_id": UCUM_VOCABULARY,
            # No UCUM concepts are in the pinned sources; the dbt models resolve the unit through a
            # loaded CONCEPT table (vocabulary_id UCUM, concept_code unit_ucum_code), else 0.
            "unit_concept_id": UNMAPPED_CONCEPT_ID,
        })
    return rows


def sop_class_rows(path: Path) -> list[Row]:
    rows: dict[str, Row] = {}
    for row in read_rows(path, ("SOP Class Name", "SOP Class UID", "Truncated SOP Class Name")):
        uid = row["SOP Class UID"].replace(" ", "")
        if not is_valid_uid(uid):
            raise VocabularyError(f"{path}: {uid!r} ({row['SOP Class Name']}) is not a valid DICOM UID")
        if uid in rows:
            raise VocabularyError(f"{path}: SOP Class UID {uid} appears twice")
        rows[uid] = {"sop_class_uid": uid, "sop_class_name": row["SOP Class Name"],
                     "sop_class_short_name": row["Truncated SOP Class Name"]}
    return list(rows.values())


def version_rows(data_dir: Path, sources: Mapping[str, Mapping[str, str]], used_by: Mapping[str, Sequence[str]]) -> list[Row]:
    rows: list[Row] = []
    for name, pinned in sources.items():
        path = data_dir / name
        if not path.is_file():
            raise VocabularyError(f"{path}: listed in {SOURCES_README} but missing")
        rows.append({
            "source_file": name, "source_repository": pinned["repo"], "source_path": pinned["path"],
            "source_commit": pinned["commit"], "source_commit_date": pinned["date"],
            "sha256": sha256_file(path), "used_by_seeds": " ".join(sorted(used_by.get(name, []))),
        })
    return rows


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class Seed:
    name: str
    columns: tuple[str, ...]
    rows: list[Row]
    sort_key: tuple[str, ...]


def render_csv(seed: Seed) -> str:
    """The seed as CSV text: header, rows sorted by sort_key, LF line endings."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=seed.columns, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    for row in sorted(seed.rows, key=lambda r: tuple(str(r[k]) for k in seed.sort_key)):
        writer.writerow(row)
    return buffer.getvalue()


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_seeds(data_dir: Path) -> tuple[list[Seed], dict[str, list[str]]]:
    """All seeds from the source folder, plus a report of what could not be mapped."""
    concepts = load_concepts(data_dir / CONCEPT_FILE)
    maps_to_value = load_relationship(data_dir / MAPS_TO_VALUE_FILE, MAPS_TO_VALUE)
    maps_to = load_relationship(data_dir / MAPS_TO_FILE, MAPS_TO)
    modalities = attribute_values(concepts, maps_to_value, MODALITY_TAG)
    body_parts = attribute_values(concepts, maps_to_value, BODY_PART_TAG)

    vocab_tokens = vocabulary_tokens([*modalities, *body_parts])
    excluded = name_exclusions()
    sites = anatomic_site_rows(body_parts, maps_to)
    used_by = {
        CONCEPT_FILE: ["dicom_modality_concept", "dicom_anatomic_site_concept", "image_feature_concept",
                       "description_allowlist"],
        MAPS_TO_VALUE_FILE: ["dicom_modality_concept", "dicom_anatomic_site_concept", "description_allowlist"],
        MAPS_TO_FILE: ["dicom_anatomic_site_concept"],
        SOP_CLASS_FILE: ["dicom_sop_class"],
    }
    seeds = [
        Seed("dicom_modality_concept",
             ("modality", "concept_id", "concept_name", "vocabulary_id", "concept_class_id", "concept_code"),
             modality_rows(modalities), ("modality",)),
        Seed("dicom_anatomic_site_concept",
             ("body_part_examined", "anatomic_site_concept_id", "dicom_concept_id", "dicom_concept_name",
              "vocabulary_id", "concept_code"),
             sites, ("body_part_examined",)),
        Seed("image_feature_concept",
             ("feature_name", "dicom_keyword", "tag", "concept_id", "concept_name", "vocabulary_id", "concept_code",
              "value_representation", "value_multiplicity", "unit_source_value", "unit_ucum_code",
              "unit_vocabulary_id", "unit_concept_id"),
             feature_rows(concepts), ("feature_name",)),
        Seed("dicom_sop_class", ("sop_class_uid", "sop_class_name", "sop_class_short_name"),
             sop_class_rows(data_dir / SOP_CLASS_FILE), ("sop_class_uid",)),
        Seed("description_allowlist", ("token",),
             [{"token": t} for t in allowlist(vocab_tokens, curated_tokens(), excluded)], ("token",)),
        Seed("vocabulary_version",
             ("source_file", "source_repository", "source_path", "source_commit", "source_commit_date",
              "sha256", "used_by_seeds"),
             version_rows(data_dir, parse_sources_readme(data_dir / SOURCES_README), used_by), ("source_file",)),
    ]
    report = {
        "body parts without a standard (Maps to) concept": sorted(
            str(r["body_part_examined"]) for r in sites if r["anatomic_site_concept_id"] == UNMAPPED_CONCEPT_ID),
        "image features without a unit concept (no UCUM in the sources)": [f.feature_name for f in FEATURES],
        "allowlist tokens removed as names": sorted((vocab_tokens | curated_tokens()) & excluded),
    }
    return seeds, report


def check(seeds: Sequence[Seed], out_dir: Path) -> list[str]:
    """Names of seeds whose committed CSV differs from a fresh build."""
    stale = []
    for seed in seeds:
        path = out_dir / f"{seed.name}.csv"
        if not path.is_file() or path.read_text(encoding="utf-8") != render_csv(seed):
            stale.append(seed.name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"the vocab-data folder (default: {DEFAULT_DATA_DIR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help=f"seed folder (default: {DEFAULT_OUT_DIR})")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed seed differs")
    args = parser.parse_args(argv)
    try:
        seeds, report = build_seeds(args.data_dir.resolve())
    except VocabularyError as error:
        print(f"build_seeds: {error}", file=sys.stderr)
        return 2
    if args.check:
        stale = check(seeds, args.out)
        for name in stale:
            print(f"build_seeds: {args.out / (name + '.csv')} is out of date; run python vocab/build_seeds.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for seed in seeds:
        write_atomic(args.out / f"{seed.name}.csv", render_csv(seed))
        print(f"{seed.name}.csv: {len(seed.rows)} rows")
    for what, items in report.items():
        print(f"{what} ({len(items)}): {' '.join(items) or '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
