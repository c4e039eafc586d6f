"""Text around the images: radiology reports (OMOP NOTE rows) and scanned requisitions (PDF)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from .answer_key import PhiValue
from .catalog import StudyTemplate
from .orders import Order

NOTE_FILE = "ehr/note.csv"
NOTE_COLUMNS = (
    "note_id",
    "person_id",
    "note_date",
    "note_datetime",
    "note_type_concept_id",
    "note_class_concept_id",
    "note_title",
    "note_text",
    "encoding_concept_id",
    "language_concept_id",
    "visit_occurrence_id",
    "note_source_value",
)
NOTE_TYPE_EHR = 32817
NOTE_CLASS_UNMAPPED = 0  # Synthea's concept table has no LOINC document class to point at
ENCODING_UTF8 = 32678
LANGUAGE_ENGLISH = 4180186

# (clinical history, findings, impression) per exam template key, else per body part
CLINICAL_TEXT: dict[str, tuple[str, str, str]] = {
    "US_OB": (
        "Vaginal bleeding in first trimester.",
        "Single live intrauterine gestation. Crown-rump length 2.4 cm, consistent with 9 weeks 1 day. "
        "Fetal heart rate 158 beats per minute.",
        "Viable intrauterine pregnancy.",
    ),
    "CHEST": (
        "Cough and shortness of breath.",
        "Lungs are clear. No pleural effusion or pneumothorax. Heart size is normal. "
        "A 4 mm nodule in the right upper lobe is unchanged.",
        "No acute cardiopulmonary process. Stable 4 mm pulmonary nodule.",
    ),
    "CHESTABDOMEN": (
        "Staging of known malignancy.",
        "Spiculated 2.1 cm mass in the left upper lobe. Mediastinal lymph nodes up to 14 mm. "
        "Liver, adrenal glands and kidneys without focal lesion.",
        "Left upper lobe mass suspicious for primary lung carcinoma with mediastinal adenopathy.",
    ),
    "HEAD": (
        "Headache after fall.",
        "No intracranial hemorrhage, mass effect or midline shift. Ventricles are normal in size.",
        "No acute intracranial abnormality.",
    ),
    "BRAIN": (
        "Memory decline, volumetric assessment.",
        "Mild generalized volume loss. Scattered T2 hyperintensities in the periventricular white matter.",
        "Mild chronic small vessel ischemic change. No acute infarct.",
    ),
    "ABDOMEN": (
        "Right upper quadrant pain.",
        "Gallbladder contains several shadowing stones without wall thickening. Common bile duct 4 mm.",
        "Cholelithiasis without sonographic evidence of acute cholecystitis.",
    ),
    "PELVIS": (
        "Pelvic pain.",
        "No acute fracture or dislocation. Sacroiliac joints are preserved.",
        "No acute osseous abnormality.",
    ),
    "HEART": (
        "Dyspnea on exertion.",
        "Left ventricular ejection fraction estimated at 55 percent. No regional wall motion abnormality. "
        "Mild mitral regurgitation.",
        "Normal left ventricular systolic function. Mild mitral regurgitation.",
    ),
    "WHOLEBODY": (
        "Restaging of lung carcinoma.",
        "FDG avid left upper lobe mass, SUVmax 9.8. FDG avid mediastinal nodes. No distant uptake.",
        "Hypermetabolic left upper lobe primary with nodal disease. No distant metastasis.",
    ),
    "KNEE": (
        "Knee pain after twisting injury.",
        "Horizontal tear of the posterior horn of the medial meniscus. Cruciate ligaments intact. "
        "Small effusion.",
        "Medial meniscal tear.",
    ),
    "LSPINE": (
        "Low back pain radiating to the left leg.",
        "Disc bulge at L4-L5 with mild left foraminal narrowing. No canal stenosis.",
        "Mild degenerative change at L4-L5.",
    ),
}
DEFAULT_CLINICAL_TEXT = (
    "Pain after injury.",
    "No fracture or dislocation. Soft tissues are unremarkable.",
    "No acute osseous abnormality.",
)


def clinical_text(template: StudyTemplate) -> tuple[str, str, str]:
    return CLINICAL_TEXT.get(template.key) or CLINICAL_TEXT.get(template.body_part, DEFAULT_CLINICAL_TEXT)


def report_signed_at(order: Order) -> dt.datetime:
    signed = order.ordered_at + dt.timedelta(hours=4, minutes=order.note_id % 50)
    return min(signed, dt.datetime.combine(order.ordered_at.date(), dt.time(23, 55)))


@dataclass(frozen=True)
class Note:
    row: dict[str, object]
    phi: list[PhiValue]


def radiology_note(order: Order) -> Note:
    """One report per order, its text mixing clinical words with the patient's and physicians' identifiers."""
    patient = order.patient
    history, findings, impression = clinical_text(order.exam.template)
    signed_at = report_signed_at(order)
    phi = {
        "name": [patient.name.display, order.referring.name.display, order.reading.name.display],
        "id": [order.mrn, order.accession],
        "date": [
            patient.birth_date.isoformat(),
            order.ordered_at.strftime("%Y-%m-%d %H:%M"),
            signed_at.strftime("%Y-%m-%d %H:%M"),
        ],
    }
    text = "\n".join(
        [
            f"EXAM: {order.description}",
            f"DATE OF SERVICE: {order.ordered_at:%Y-%m-%d %H:%M}",
            f"PATIENT: {patient.name.display}   MRN: {order.mrn}   DOB: {patient.birth_date.isoformat()}",
            f"ACCESSION: {order.accession}",
            f"REFERRING PHYSICIAN: Dr. {order.referring.name.display}",
            f"CLINICAL HISTORY: {history}",
            f"FINDINGS: {findings}",
            f"IMPRESSION: {impression}",
            f"Electronically signed by Dr. {order.reading.name.display} on {signed_at:%Y-%m-%d %H:%M}.",
        ]
    )
    location = f"note_text[note_id={order.note_id}]"
    values = [
        PhiValue(value, category, NOTE_FILE, location)
        for category, category_values in phi.items()
        for value in category_values
    ]
    row: dict[str, object] = {
        "note_id": order.note_id,
        "person_id": patient.person_id,
        "note_date": signed_at.date().isoformat(),
        "note_datetime": signed_at.isoformat(sep=" "),
        "note_type_concept_id": NOTE_TYPE_EHR,
        "note_class_concept_id": NOTE_CLASS_UNMAPPED,
        "note_title": f"{order.description} REPORT",
        "note_text": text,
        "encoding_concept_id": ENCODING_UTF8,
        "language_concept_id": LANGUAGE_ENGLISH,
        "visit_occurrence_id": order.exam.visit_occurrence_id,
        "note_source_value": "RAD REPORT",
    }
    return Note(row, values)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def simple_pdf(lines: Sequence[str]) -> bytes:
    """A valid one-page PDF showing lines of ASCII text in Helvetica (uncompressed, so tests can find it)."""
    commands = ["BT", "/F1 12 Tf", "72 740 Td", "16 TL"]
    commands += [f"({_pdf_escape(line)}) Tj T*" for line in lines]
    commands.append("ET")
    stream = "\n".join(commands).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)
