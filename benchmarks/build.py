"""`imgomop build` at scale: a synthetic identified warehouse of N series, built with dbt, timed.

    python benchmarks/build.py [--sizes 100000 1000000] [--seed 0] [--project-dir DIR] [--repeat 1]

For every size:
  (a) generates, directly in DuckDB with SQL (range(), hash()-based pseudo-random values), an
      identified warehouse: raw_dicom_series with N series (several series per study, several
      studies per patient, CT/MR/US/CR/DX/PT with plausible descriptions, body parts from the
      vocabulary seed, DICOM-format dates and times with a small share of invalid ones, accession
      numbers that repeat across departments, a few percent of series without an order, missing
      birth dates, alternate MRNs, ...), one representative raw_dicom_instance row per series, and
      the matching EHR tables (person ~ N/20, visit_occurrence, procedure_occurrence, condition_
      occurrence, measurement, note, concept (empty), mrn_crosswalk, imaging_order). The tables are
      created with the project's own DDL (DuckDBRawWarehouse.ensure_tables() and the EhrTable
      column dicts), so the benchmark follows schema changes. The file is cached per size, seed and
      generator/schema version under --data-dir and copied before each build;
  (b) runs `imgomop build --config <toml>` as a subprocess (IMGOMOP_DEID_KEY set to a random value;
      IMGOMOP_DBT_PROJECT_DIR set when --project-dir is given) and records wall seconds and peak
      RSS (wait4 ru_maxrss of the child: dbt and DuckDB run in that one process);
  (c) reads dbt's run_results.json for per-node timings.
Printed: the build summary of each size, a table of seconds, peak memory and series/s, the ratio
time(largest)/time(smallest) against linear growth, the largest size against the 120 s target,
and the 10 slowest dbt nodes. The figures also go to benchmarks/out/build-<timestamp>.json.
No timing is asserted anywhere; this script reports (it exits 1 only when a build fails).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from extractor.build.ehr_tables import EHR_TABLES  # noqa: E402
from extractor.warehouses.duckdb_writer import DuckDBRawWarehouse  # noqa: E402
from extractor.warehouses.schema import RAW_TABLES  # noqa: E402
from harvest import LAUNCHER_CODE  # noqa: E402  the build runs under the same rusage launcher

TARGET_SECONDS = 120.0
DEFAULT_SIZES = (100_000, 1_000_000)
MB = 1_000_000
SERIES_PER_PERSON = 20

# --- reference data of the generator ------------------------------------------------------------
# (template key, modality ('XR' = CR or DX per study), department, body part (DICOM BodyPartExamined),
#  study description, protocol, series descriptions, weight in 100 slots, illustrative procedure concept)
TEMPLATES: list[tuple] = [
    ("ct_chest", "CT", "RAD", "CHEST", "CT CHEST W/O CONTRAST", "CHEST ROUTINE",
     ["SCOUT", "AXIAL 1.25 LUNG", "AXIAL 5.0 SOFT TISSUE", "CORONAL MIP", "SAGITTAL 3.0", "DOSE REPORT"], 8, 4058335),
    ("ct_cap", "CT", "RAD", "CHESTABDPELVIS", "CT CHEST ABDOMEN PELVIS W CONTRAST", "CAP PORTAL VENOUS",
     ["SCOUT", "AXIAL 5.0 PORTAL", "AXIAL 1.25 LUNG", "CORONAL 3.0", "SAGITTAL 3.0", "DOSE REPORT"], 5, 4061009),
    ("ct_head", "CT", "RAD", "HEAD", "CT HEAD W/O CONTRAST", "ROUTINE HEAD",
     ["SCOUT", "AXIAL 5.0 BRAIN", "AXIAL 2.5 BONE", "CORONAL 3.0", "DOSE REPORT"], 6, 4125350),
    ("ct_abdpel", "CT", "RAD", "ABDOMENPELVIS", "CT ABDOMEN PELVIS W CONTRAST", "ABD PEL ROUTINE",
     ["SCOUT", "AXIAL 5.0 PORTAL", "CORONAL 3.0", "SAGITTAL 3.0", "DOSE REPORT"], 5, 4061009),
    ("cta_pe", "CT", "RAD", "CHEST", "CTA CHEST PE PROTOCOL", "PE PROTOCOL",
     ["SCOUT", "BOLUS TRACKING", "AXIAL 1.0 ANGIO", "MIP 10MM", "DOSE REPORT"], 2, 4327032),
    ("ct_calcium", "CT", "CARD", "HEART", "CT CARDIAC CALCIUM SCORE", "CALCIUM SCORE",
     ["SCOUT", "CA SCORE 3.0", "DOSE REPORT"], 2, 4143578),
    ("ct_lspine", "CT", "RAD", "LSPINE", "CT LUMBAR SPINE W/O CONTRAST", "L SPINE",
     ["SCOUT", "AXIAL 2.0 BONE", "SAGITTAL 2.0 BONE", "DOSE REPORT"], 1, 4019823),
    ("mr_brain", "MR", "RAD", "BRAIN", "MRI BRAIN W/WO CONTRAST", "BRAIN ROUTINE",
     ["LOCALIZER", "AX T2 FSE", "AX T2 FLAIR", "AX DWI", "ADC", "SAG T1 MPRAGE", "AX T1 POST GAD", "COR T1 POST"], 6, 4125529),
    ("mr_knee", "MR", "RAD", "KNEE", "MRI KNEE W/O CONTRAST", "KNEE ROUTINE",
     ["LOCALIZER", "SAG PD FS", "COR PD", "COR T1", "AX T2 FS", "SAG T2"], 4, 4079139),
    ("mr_lspine", "MR", "RAD", "LSPINE", "MRI LUMBAR SPINE W/O CONTRAST", "L SPINE ROUTINE",
     ["LOCALIZER", "SAG T1", "SAG T2", "SAG STIR", "AX T2", "AX T1"], 4, 4203710),
    ("mr_cardiac", "MR", "CARD", "HEART", "MRI CARDIAC FUNCTION AND MORPHOLOGY", "CARDIAC FUNCTION",
     ["LOCALIZER", "CINE SAX", "CINE 4CH", "CINE 2CH", "LGE SAX", "T1 MAP"], 2, 4138727),
    ("mr_prostate", "MR", "RAD", "PROSTATE", "MRI PROSTATE MULTIPARAMETRIC", "PROSTATE MP",
     ["LOCALIZER", "AX T2", "COR T2", "AX DWI B1000", "ADC", "DCE"], 2, 4301353),
    ("mr_breast", "MR", "RAD", "BREAST", "MRI BREAST BILATERAL W/WO CONTRAST", "BREAST DCE",
     ["LOCALIZER", "AX T2 FS", "AX T1 PRE", "DYN 1", "DYN 2", "SUB 1"], 2, 4203049),
    ("us_abd", "US", "RAD", "ABDOMEN", "US ABDOMEN COMPLETE", None,
     ["ABDOMEN", "LIVER", "KIDNEYS"], 6, 4037672),
    ("us_ob", "US", "OB", "UTERUS", "US OB 2ND TRIMESTER ANATOMY", None,
     ["FETAL ANATOMY", "BIOMETRY"], 4, 4038816),
    ("us_thyroid", "US", "RAD", "THYROID", "US THYROID", None, ["THYROID"], 2, 4082503),
    ("echo_tte", "US", "CARD", "HEART", "ECHO TTE COMPLETE", None,
     ["2D", "DOPPLER", "M MODE"], 4, 4230911),
    ("xr_chest", "XR", "RAD", "CHEST", "XR CHEST 2 VIEWS", "CHEST PA LAT", ["PA", "LATERAL"], 16, 4163872),
    ("xr_chest_port", "XR", "RAD", "CHEST", "XR CHEST PORTABLE", "CHEST AP", ["AP PORTABLE"], 6, 4163872),
    ("xr_knee", "XR", "RAD", "KNEE", "XR KNEE 3 VIEWS", "KNEE", ["AP", "LATERAL", "SUNRISE"], 4, 4012383),
    ("xr_hand", "XR", "RAD", "HAND", "XR HAND 3 VIEWS", "HAND", ["PA", "OBLIQUE", "LATERAL"], 3, 4084442),
    ("xr_lspine", "XR", "RAD", "LSPINE", "XR LUMBAR SPINE 2 VIEWS", "L SPINE", ["AP", "LATERAL"], 2, 4034155),
    ("pt_fdg", "PT", "NM", "WHOLEBODY", "PET CT WHOLE BODY FDG", "WB FDG",
     ["CT ATTENUATION", "PET WB AC", "PET WB NAC", "MIP"], 3, 4305790),
    ("pt_cardiac", "PT", "NM", "HEART", "PET CARDIAC RB82 REST STRESS", "RB82 REST STRESS",
     ["REST AC", "STRESS AC", "CT ATTENUATION"], 1, 4203520),
]
# Weights sum to 100 (one slot each); values that are not in the anatomic-site seed (unmapped -> concept 0)
# replace the body part in a small share of studies.
UNMAPPED_BODY_PARTS = ["TORAX", "ABD", "CHEST_ABD", "SPINE L"]

DEVICES: list[tuple] = [  # modality, manufacturer, model, software, station, institution short, field strength
    ("CT", "GE MEDICAL SYSTEMS", "Revolution CT", "revo_ct_22mw.32", "RGHCT01", "RGH", None),
    ("CT", "SIEMENS", "SOMATOM Force", "syngo CT VB20A", "RGHCT02", "RGH", None),
    ("CT", "Philips", "iCT 256", "4.1.6", "NGICCT1", "NGIC", None),
    ("CT", "CANON_MEDICAL_SYSTEMS", "Aquilion ONE", "V10.6SP0001", "NGICCT2", "NGIC", None),
    ("MR", "SIEMENS", "MAGNETOM Skyra", "syngo MR E11", "RGHMR01", "RGH", "3"),
    ("MR", "GE MEDICAL SYSTEMS", "SIGNA Premier", "MR29.1_R01", "RGHMR02", "RGH", "3"),
    ("MR", "Philips Medical Systems", "Ingenia", "5.7.1", "NGICMR1", "NGIC", "1.5"),
    ("MR", "CANON_MEDICAL_SYSTEMS", "Vantage Orian", "V6.0", "NGICMR2", "NGIC", "1.5"),
    ("US", "GE Healthcare", "LOGIQ E9", "R6.1.0", "RGHUS03", "RGH", None),
    ("US", "Philips", "EPIQ 7G", "7.0.5.244", "NGICUS1", "NGIC", None),
    ("US", "GE Vingmed Ultrasound", "Vivid E95", "204.67.0", "SAHIECHO1", "SAHI", None),
    ("CR", "FUJIFILM Corporation", "FCR PROFECT CS", "A06-20", "RGHCR01", "RGH", None),
    ("CR", "Carestream Health", "DirectView CR 975", "5.7.412", "NGICCR1", "NGIC", None),
    ("DX", "GE Healthcare", "Definium 656", "dm_Platform_release_2.2", "RGHDX01", "RGH", None),
    ("DX", "Philips Medical Systems", "DigitalDiagnost", "4.3.4", "RGHDX02", "RGH", None),
    ("DX", "SIEMENS", "Ysio Max", "VF10H", "NGICDX1", "NGIC", None),
    ("PT", "GE MEDICAL SYSTEMS", "Discovery MI", "pet_coreload.46", "RGHPET01", "RGH", None),
    ("PT", "SIEMENS", "Biograph mCT Flow", "VG60A", "NGICPET1", "NGIC", None),
]
INSTITUTIONS = {"RGH": "Riverside General Hospital", "NGIC": "Northgate Imaging Center", "SAHI": "St. Aurelia Heart Institute"}
DEPARTMENTS = {"RAD": ("RADIOLOGY", 10_000_001), "CARD": ("CARDIOLOGY", 10_004_001), "OB": ("OBSTETRICS", 10_002_001),
               "NM": ("NUCLEAR MEDICINE", 10_001_001)}  # name, first accession number: the ranges overlap
SURNAMES = ["SMITH", "JOHNSON", "MOORE", "GARCIA", "NGUYEN", "MUELLER", "KOWALSKI", "OKAFOR", "TANAKA", "SILVA",
            "ANDERSON", "CARTER", "HUGHES", "PATEL", "ROSSI", "O'BRIEN", "DUBOIS", "HANSEN", "KIM", "LOPEZ"]
GIVEN_NAMES = ["JAMES", "MARY", "SANDRA", "JUERGEN", "WEI", "FATIMA", "CARLOS", "ANNA", "TOMASZ", "AYESHA",
               "JOHN", "LINDA", "DAVID", "MARIA", "ROBERT", "SOFIA", "MICHAEL", "ELENA", "PETER", "GRACE"]
CONDITIONS = [443388, 320128, 201826, 255573, 4329847, 80180, 317576, 433736]  # illustrative OMOP condition concepts


def _sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_sql_literal(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows: list[tuple]) -> str:
    return ",\n".join("(" + ", ".join(_sql_literal(v) for v in row) + ")" for row in rows)


# --- the generator ---------------------------------------------------------------------------------


def generation_sql(n_series: int, seed: int) -> list[tuple[str, str]]:
    """(step name, SQL) in order. Every random choice is hash(key, salt, seed): reproducible."""
    n_persons = max(1, n_series // SERIES_PER_PERSON)
    multiplier = 7919 if n_persons % 7919 else 7927  # MRN permutation: a bijection mod n_persons
    assert sum(t[7] for t in TEMPLATES) == 100
    slots = list(enumerate(t[0] for t in TEMPLATES for _ in range(t[7])))  # (slot, template): weight = slots
    departments = [(code, name, first) for code, (name, first) in DEPARTMENTS.items()]
    institutions = list(INSTITUTIONS.items())
    s = seed
    return [
        ("macros", f"""
            CREATE OR REPLACE TEMP MACRO h(k, salt) AS hash(k, salt, {s});
            CREATE OR REPLACE TEMP MACRO u(k, salt) AS (hash(k, salt, {s}) % 1000000)::DOUBLE / 1000000;
            CREATE OR REPLACE TEMP MACRO pick(xs, k, salt) AS xs[1 + (hash(k, salt, {s}) % len(xs))::BIGINT];
            CREATE OR REPLACE TEMP MACRO between_(k, salt, lo, hi) AS lo + (hash(k, salt, {s}) % (hi - lo + 1))::BIGINT;
            CREATE OR REPLACE TEMP MACRO da(d) AS strftime(d, '%Y%m%d');
        """),
        ("reference tables", f"""
            CREATE OR REPLACE TEMP TABLE _template AS SELECT * FROM (VALUES {_values(TEMPLATES)})
                t(template, modality, dept, body_part, study_description, protocol, series_descriptions, weight, procedure_concept_id);
            CREATE OR REPLACE TEMP TABLE _slot AS SELECT * FROM (VALUES {_values(slots)}) t(slot, template);
            CREATE OR REPLACE TEMP TABLE _device AS
                SELECT modality, list(struct_pack(manufacturer, model, software, station, site, field_strength)) AS devices
                FROM (VALUES {_values(DEVICES)}) t(modality, manufacturer, model, software, station, site, field_strength)
                GROUP BY modality;
            CREATE OR REPLACE TEMP TABLE _department AS SELECT * FROM (VALUES {_values(departments)}) t(dept, dept_name, first_accession);
            CREATE OR REPLACE TEMP TABLE _institution AS SELECT * FROM (VALUES {_values(institutions)}) t(site, institution_name);
        """),
        ("persons", f"""
            CREATE OR REPLACE TEMP TABLE _person AS
            SELECT
                person_id,
                CASE WHEN u(person_id, 'sex') < 0.5 THEN 'F' ELSE 'M' END AS sex,
                DATE '1925-01-01' + between_(person_id, 'dob', 0, 36500)::INTEGER AS birth_date,
                format('{{:08d}}', 10000000 + ((person_id * {multiplier}) % {n_persons}) * 37 + 11) AS mrn,
                CASE WHEN u(person_id, 'mrn2') < 0.05 THEN 'NG' || format('{{:07d}}', person_id) END AS second_mrn,
                pick({_sql_literal(SURNAMES)}, person_id, 'sn') || '^' || pick({_sql_literal(GIVEN_NAMES)}, person_id, 'gn') AS patient_name
            FROM range(1, {n_persons} + 1) r(person_id)
        """),
        ("studies", f"""
            CREATE OR REPLACE TEMP TABLE _study AS
            WITH drawn AS (
                SELECT
                    study_no,
                    1 + (h(study_no, 'person') % {n_persons})::BIGINT AS person_id,
                    h(study_no, 'template') % 100 AS slot
                FROM range(1, {n_series} + 1) r(study_no)
            ),
            shaped AS (
                SELECT
                    d.study_no, d.person_id, t.template, t.dept, t.study_description AS template_description,
                    t.protocol, t.series_descriptions, t.procedure_concept_id,
                    CASE WHEN t.modality = 'XR' THEN CASE WHEN u(d.study_no, 'xr') < 0.4 THEN 'CR' ELSE 'DX' END
                         ELSE t.modality END AS modality,
                    CASE WHEN u(d.study_no, 'bp') < 0.01 THEN pick({_sql_literal(UNMAPPED_BODY_PARTS)}, d.study_no, 'bpx')
                         WHEN u(d.study_no, 'bp') < 0.03 THEN NULL ELSE t.body_part END AS body_part,
                    greatest(1, len(t.series_descriptions) - (h(d.study_no, 'nser') % 2)::INTEGER) AS n_series,
                    DATE '2005-01-01' + between_(d.study_no, 'day', 0, 7304)::INTEGER AS study_day,
                    between_(d.study_no, 'tod', 7 * 3600, 20 * 3600) AS study_seconds
                FROM drawn AS d JOIN _slot USING (slot) JOIN _template AS t USING (template)
            ),
            placed AS (
                SELECT *, sum(n_series) OVER (ORDER BY study_no ROWS UNBOUNDED PRECEDING) - n_series AS first_series
                FROM shaped
            )
            SELECT
                p.*,
                CAST(p.study_day AS TIMESTAMP) + to_seconds(p.study_seconds) AS study_ts,
                -- 3.5% of the studies have no order (outside CDs, research scans); half of those carry an accession
                u(p.study_no, 'order') >= 0.035 AS has_order,
                u(p.study_no, 'dup') < 0.001 AS duplicate_order,
                u(p.study_no, 'u1') AS r_identity,
                u(p.study_no, 'u2') AS r_dob,
                u(p.study_no, 'u3') AS r_format,
                u(p.study_no, 'u4') AS r_dates,
                u(p.study_no, 'u5') AS r_text,
                '1.2.826.0.1.3680043.10.1043.' || p.study_no AS study_uid
            FROM placed AS p
            WHERE p.first_series < {n_series}
        """),
        ("orders and identity", f"""
            CREATE OR REPLACE TEMP TABLE _study2 AS
            WITH numbered AS (
                SELECT s.*, row_number() OVER (PARTITION BY s.dept ORDER BY s.study_no) AS dept_seq
                FROM _study AS s
            )
            SELECT
                n.*,
                d.dept_name,
                -- accession numbers count per department and the ranges overlap: alone they are not unique
                CASE WHEN n.has_order THEN CAST(d.first_accession + n.dept_seq AS VARCHAR)
                     WHEN n.r_identity < 0.5 THEN 'EXT' || format('{{:09d}}', n.study_no) END AS order_accession,
                pe.mrn, pe.second_mrn, pe.birth_date, pe.sex, pe.patient_name,
                -- PatientID as the modality wrote it: the alternate MRN, leading zeros, a dash
                CASE WHEN pe.second_mrn IS NOT NULL AND n.r_identity > 0.6 THEN pe.second_mrn
                     WHEN n.r_format < 0.10 THEN '00' || pe.mrn
                     WHEN n.r_format < 0.13 THEN substr(pe.mrn, 1, 4) || '-' || substr(pe.mrn, 5)
                     ELSE pe.mrn END AS dicom_patient_id,
                -- PatientBirthDate: 2% missing, 0.3% invalid, 0.2% a typo (identity mismatch), else YYYYMMDD
                CASE WHEN n.r_dob < 0.020 THEN NULL
                     WHEN n.r_dob < 0.023 THEN '00000000'
                     WHEN n.r_dob < 0.025 THEN da(pe.birth_date + 1)
                     ELSE da(pe.birth_date) END AS dicom_birth_date,
                CASE WHEN n.r_dates < 0.001 THEN strftime(n.study_day, '%Y.%m.%d')   -- ACR-NEMA style: invalid DA
                     WHEN n.r_dates < 0.0015 THEN ''
                     WHEN n.r_dates < 0.002 THEN da(n.study_day)[1:6] || '32'
                     ELSE da(n.study_day) END AS dicom_study_date,
                CASE WHEN n.r_format > 0.98 THEN strftime(n.study_ts, '%H:%M:%S')
                     WHEN n.r_format > 0.6 THEN strftime(n.study_ts, '%H%M%S') || '.' || format('{{:06d}}', h(n.study_no, 'frac') % 1000000)
                     ELSE strftime(n.study_ts, '%H%M%S') END AS dicom_study_time
            FROM numbered AS n
            JOIN _department AS d USING (dept)
            JOIN _person AS pe USING (person_id)
        """),
        ("raw_dicom_series", f"""
            CREATE OR REPLACE TEMP TABLE _series AS
            WITH expanded AS (
                SELECT s.*, unnest(range(s.n_series)) AS k FROM _study2 AS s
            ),
            e AS (
                SELECT
                    x.*,
                    x.first_series + x.k AS series_index,
                    x.study_uid || '.' || (x.k + 1) AS series_uid,
                    x.series_descriptions[1 + x.k % len(x.series_descriptions)] AS base_description,
                    pick(dv.devices, x.study_no, 'device') AS device,
                    u(x.first_series + x.k, 's1') AS r1,
                    u(x.first_series + x.k, 's2') AS r2
                FROM expanded AS x
                JOIN _device AS dv USING (modality)
                WHERE x.first_series + x.k < {n_series}
            ),
            g AS (
                SELECT
                    e.*,
                    CASE
                        WHEN e.base_description IN ('SCOUT', 'LOCALIZER', 'DOSE REPORT') THEN NULL
                        WHEN e.modality = 'CT' THEN coalesce(
                            TRY_CAST(regexp_extract(e.base_description, '([0-9]+[.][0-9]+)', 1) AS DOUBLE),
                            pick([0.625, 1.0, 1.25, 2.5, 3.0, 5.0], e.series_index, 'st'))
                        WHEN e.modality = 'MR' THEN pick([0.9, 1.0, 3.0, 4.0, 5.0], e.series_index, 'st')
                        WHEN e.modality = 'PT' THEN pick([2.03, 3.27, 4.0], e.series_index, 'st')
                    END AS thickness,
                    CASE e.modality
                        WHEN 'CT' THEN between_(e.series_index, 'fov', 250, 500) / 512.0
                        WHEN 'MR' THEN between_(e.series_index, 'fov', 160, 400) / pick([256, 320, 384, 512], e.series_index, 'mx')
                        WHEN 'CR' THEN 0.1 + between_(e.series_index, 'ps', 0, 100) / 1000.0
                        WHEN 'DX' THEN pick([0.139, 0.143, 0.148, 0.16], e.series_index, 'ps')
                        WHEN 'PT' THEN between_(e.series_index, 'fov', 500, 700) / 192.0
                    END AS spacing,
                    CASE e.modality WHEN 'CT' THEN 512 WHEN 'MR' THEN pick([256, 320, 384, 512], e.series_index, 'mx')
                        WHEN 'US' THEN 600 WHEN 'CR' THEN 2370 WHEN 'DX' THEN 3000 WHEN 'PT' THEN 192 END AS n_rows,
                    CASE e.modality WHEN 'CT' THEN 512 WHEN 'MR' THEN pick([256, 320, 384, 512], e.series_index, 'mx')
                        WHEN 'US' THEN 800 WHEN 'CR' THEN 1950 WHEN 'DX' THEN 2500 WHEN 'PT' THEN 192 END AS n_columns
                FROM e
            ),
            c AS (
                SELECT
                    g.*,
                    CASE
                        WHEN g.base_description IN ('SCOUT', 'LOCALIZER') THEN between_(g.series_index, 'n', 1, 3)
                        WHEN g.base_description = 'DOSE REPORT' THEN 1
                        WHEN g.modality = 'CT' THEN least(900, greatest(20, round(between_(g.series_index, 'len', 200, 500) / g.thickness)::BIGINT))
                        WHEN g.modality = 'MR' THEN between_(g.series_index, 'n', 20, 200)
                        WHEN g.modality = 'PT' THEN between_(g.series_index, 'n', 150, 400)
                        WHEN g.modality = 'US' THEN between_(g.series_index, 'n', 1, 40)
                        ELSE 1
                    END AS n_instances
                FROM g
            )
            SELECT
                c.series_uid AS series_instance_uid,
                c.study_uid AS study_instance_uid,
                c.dicom_patient_id AS patient_id,
                CASE WHEN c.dicom_patient_id LIKE 'NG%' THEN 'NGIC' ELSE 'RGH' END AS issuer_of_patient_id,
                CASE WHEN c.second_mrn IS NOT NULL AND c.r_format > 0.7 THEN c.second_mrn END AS other_patient_ids,
                -- a few series whose instances disagree (0.05% on the patient: never linked)
                CASE WHEN c.r1 < 0.0005 THEN 'patient_id,patient_name'
                     WHEN c.r1 < 0.0025 THEN 'patient_name' END AS conflicting_attributes,
                c.patient_name,
                c.dicom_birth_date AS patient_birth_date,
                c.sex AS patient_sex,
                format('{{:03d}}Y', greatest(0, date_diff('year', c.birth_date, c.study_day))) AS patient_age,
                CASE WHEN c.order_accession IS NOT NULL AND NOT (c.has_order AND c.r_identity < 0.01) THEN
                    c.order_accession || CASE WHEN c.r_format BETWEEN 0.5 AND 0.53 THEN '  ' ELSE '' END
                END AS accession_number,
                CAST(c.study_no % 100000 AS VARCHAR) AS study_id,
                pick({_sql_literal(SURNAMES)}, c.study_no, 'ref') || '^' || pick({_sql_literal(GIVEN_NAMES)}, c.study_no, 'refg') || '^^^MD'
                    AS referring_physician_name,
                c.dicom_study_date AS study_date,
                c.dicom_study_time AS study_time,
                CASE WHEN c.r2 < 0.001 THEN '20' || da(c.study_day)[3:8] || '9'                     -- 9 digits: invalid
                     WHEN c.r2 < 0.05 THEN NULL                                                    -- SeriesDate absent
                     ELSE da(c.study_day) END AS series_date,
                CASE WHEN c.r2 < 0.05 THEN NULL
                     ELSE strftime(c.study_ts + to_minutes(c.k * 3), '%H%M%S') END AS series_time,
                c.modality,
                c.body_part AS body_part_examined,
                CASE WHEN c.modality IN ('CR', 'DX') AND c.base_description IN ('PA', 'AP', 'LATERAL', 'AP PORTABLE', 'OBLIQUE')
                     THEN split_part(c.base_description, ' ', 1) END AS view_position,
                CASE WHEN c.template IN ('xr_knee', 'xr_hand') THEN pick(['L', 'R'], c.study_no, 'lat') END AS laterality,
                -- free text: 1.5% of studies and 2% of series carry extra words, some of them PHI
                CASE WHEN c.r_text < 0.005 THEN c.template_description || ' DR ' || pick({_sql_literal(SURNAMES)}, c.study_no, 'doc')
                     WHEN c.r_text < 0.010 THEN c.template_description || ' ' || strftime(c.study_day, '%m/%d/%Y')
                     WHEN c.r_text < 0.015 THEN c.template_description || ' FOLLOWUP ' || c.patient_name
                     ELSE c.template_description END AS study_description,
                CASE WHEN c.r2 > 0.99 THEN c.base_description || ' RECON ' || (1 + h(c.series_index, 'rc') % 9)
                     WHEN c.r2 > 0.98 THEN c.base_description || ' ' || strftime(c.study_ts, '%H:%M')
                     ELSE c.base_description END AS series_description,
                CASE WHEN c.modality = 'US' THEN NULL ELSE coalesce(c.protocol, c.base_description) END AS protocol_name,
                CAST(CASE WHEN c.base_description = 'DOSE REPORT' THEN 999 ELSE c.k + 1 END AS VARCHAR) AS series_number,
                CASE WHEN c.template IN ('ct_cap', 'ct_abdpel', 'cta_pe') AND c.base_description NOT IN ('SCOUT', 'DOSE REPORT')
                     THEN 'OMNIPAQUE 350'
                     WHEN c.template IN ('mr_brain', 'mr_breast') AND c.base_description LIKE '%POST%' THEN 'GADAVIST' END
                    AS contrast_bolus_agent,
                c.device.manufacturer AS manufacturer,
                c.device.model AS manufacturer_model_name,
                c.device.software AS software_versions,
                c.device.station || 'SN' AS device_serial_number,
                c.device.station AS station_name,
                i.institution_name,
                c.dept_name AS institutional_department_name,
                c.n_rows AS image_rows,  -- Rows / Columns (named rows / columns in earlier schemas: both made)
                c.n_columns AS image_columns,
                c.n_rows AS rows,
                c.n_columns AS columns,
                CASE WHEN c.modality = 'US' THEN 'YBR_FULL_422' WHEN c.modality = 'CR' THEN 'MONOCHROME1' ELSE 'MONOCHROME2' END
                    AS photometric_interpretation,
                CASE WHEN c.modality = 'US' THEN 8 ELSE 16 END AS bits_allocated,
                CASE WHEN c.spacing IS NOT NULL THEN printf('%.6f', c.spacing) || '\\' || printf('%.6f', c.spacing) END AS pixel_spacing,
                CASE WHEN c.thickness IS NOT NULL THEN CAST(c.thickness AS VARCHAR) END AS slice_thickness,
                CASE WHEN c.thickness IS NOT NULL AND c.r2 < 0.6 THEN CAST(round(c.thickness * 1.1, 2) AS VARCHAR) END
                    AS spacing_between_slices,
                CASE WHEN c.modality = 'CT' AND c.base_description <> 'DOSE REPORT' THEN pick(['80', '100', '120', '120', '140'], c.series_index, 'kvp')
                     WHEN c.modality IN ('CR', 'DX') THEN CAST(between_(c.series_index, 'kvp', 60, 125) AS VARCHAR)
                     WHEN c.modality = 'PT' AND c.base_description = 'CT ATTENUATION' THEN '120' END AS kvp,
                CASE WHEN c.modality = 'MR' THEN c.device.field_strength END AS magnetic_field_strength,
                c.n_instances AS instance_count,
                c.n_instances AS file_count,
                c.n_instances * (c.n_rows * c.n_columns * CASE WHEN c.modality = 'US' THEN 3 ELSE 2 END + 4096) AS total_bytes,
                c.study_ts + to_minutes(c.k * 3) AS first_acquisition_datetime,
                c.study_ts + to_minutes(c.k * 3) + to_seconds(c.n_instances) AS last_acquisition_datetime,
                '/archive/' || c.device.site || '/' || strftime(c.study_day, '%Y/%m/%d') || '/' || c.study_uid || '/' || c.series_uid
                    || '/IM000001.dcm' AS representative_location,
                'bench-{seed}' AS first_run_id,
                'bench-{seed}' AS last_run_id,
                TIMESTAMP '2026-01-01 00:00:00' AS updated_at,
                -- carried for the instance rows
                c.n_rows * c.n_columns * CASE WHEN c.modality = 'US' THEN 3 ELSE 2 END + 4096 AS _file_size,
                c.series_index AS _series_index
            FROM c
            JOIN _institution AS i ON i.site = c.device.site
        """),
        ("ehr: imaging orders", """
            CREATE OR REPLACE TEMP TABLE _order AS
            SELECT
                s.study_no AS procedure_occurrence_id, s.study_no AS visit_occurrence_id, s.*
            FROM _study2 AS s WHERE s.has_order
            UNION ALL
            -- a duplicated order (same accession, patient and birth date, its own procedure): ambiguous
            SELECT 2000000000 + s.study_no, s.study_no, s.* FROM _study2 AS s WHERE s.has_order AND s.duplicate_order
        """),
    ]


def insert_sql(n_series: int, seed: int, generated: set[str]) -> list[tuple[str, str]]:
    """Fill the project's tables (created beforehand from its DDL) BY NAME from the temp tables.

    `generated`: the columns of the generated _series table. Raw columns the generator does not
    make stay NULL (reported as empty_columns), so a new schema column never breaks the benchmark.
    """
    n_persons = max(1, n_series // SERIES_PER_PERSON)
    series_cols = [c for c, _ in RAW_TABLES["raw_dicom_series"] if c in generated]
    instance_cols = [c for c, _ in RAW_TABLES["raw_dicom_instance"]]
    shared = [c for c in instance_cols if c in series_cols]
    instance_only = {
        "location": "representative_location",
        "file_size": "_file_size",
        "file_mtime_ns": "1767225600000000000 + _series_index",
        "transfer_syntax_uid": "'1.2.840.10008.1.2.1'",
        "pixel_data_offset": "2048 + (hash(_series_index, 'pdo', 0) % 2048)::BIGINT",
        "acquisition_datetime": "first_acquisition_datetime",
        "header_json": "NULL",
        "run_id": f"'bench-{seed}'",
        "harvested_at": "updated_at",
        "specific_character_set": "'ISO_IR 100'",
        "sop_class_uid": """CASE modality WHEN 'CT' THEN '1.2.840.10008.5.1.4.1.1.2' WHEN 'MR' THEN '1.2.840.10008.5.1.4.1.1.4'
            WHEN 'US' THEN '1.2.840.10008.5.1.4.1.1.6.1' WHEN 'CR' THEN '1.2.840.10008.5.1.4.1.1.1'
            WHEN 'DX' THEN '1.2.840.10008.5.1.4.1.1.1.1' WHEN 'PT' THEN '1.2.840.10008.5.1.4.1.1.128' END""",
        "sop_instance_uid": "series_instance_uid || '.1'",
        "acquisition_date": "strftime(first_acquisition_datetime, '%Y%m%d')",
        "acquisition_time": "strftime(first_acquisition_datetime, '%H%M%S')",
        "content_date": "strftime(first_acquisition_datetime, '%Y%m%d')",
        "content_time": "strftime(first_acquisition_datetime, '%H%M%S')",
        "instance_number": "'1'",
        "image_type": "'ORIGINAL\\PRIMARY\\AXIAL'",
        "burned_in_annotation": "CASE WHEN modality = 'US' THEN 'YES' ELSE 'NO' END",
        "number_of_frames": "CASE WHEN modality = 'US' THEN '1' END",
        "samples_per_pixel": "CASE WHEN modality = 'US' THEN 3 ELSE 1 END",
    }
    instance_select = ", ".join([f"{c}" for c in shared] + [f"{expr} AS {c}" for c, expr in instance_only.items() if c in instance_cols])
    series_select = ", ".join(series_cols)
    conditions = _sql_literal(CONDITIONS)
    return [
        ("insert raw_dicom_series", f"INSERT INTO raw_dicom_series BY NAME SELECT {series_select} FROM _series"),
        ("insert raw_dicom_instance", f"INSERT INTO raw_dicom_instance BY NAME SELECT {instance_select} FROM _series"),
        ("insert raw_harvest_run", f"""
            INSERT INTO raw_harvest_run BY NAME SELECT 'bench-{seed}' AS run_id, TIMESTAMP '2026-01-01' AS started_at,
                TIMESTAMP '2026-01-01' AS ended_at, 'synthetic (benchmarks/build.py)' AS sources, 'completed' AS status,
                count(*) AS files_seen, 0 AS files_unchanged, count(*) AS instances_added, 0 AS instances_updated,
                0 AS errors, count(*) AS series_added, 0 AS series_updated FROM _series"""),
        ("ehr: person", """
            INSERT INTO person BY NAME SELECT
                person_id, CASE sex WHEN 'F' THEN 8532 ELSE 8507 END AS gender_concept_id,
                year(birth_date) AS year_of_birth, month(birth_date) AS month_of_birth, day(birth_date) AS day_of_birth,
                CAST(birth_date AS TIMESTAMP) AS birth_datetime,
                pick([8527, 8516, 8515, 0], person_id, 'race') AS race_concept_id,
                pick([38003564, 38003564, 38003563], person_id, 'eth') AS ethnicity_concept_id,
                mrn AS person_source_value, sex AS gender_source_value, 0 AS gender_source_concept_id
            FROM _person"""),
        ("ehr: mrn_crosswalk", """
            INSERT INTO mrn_crosswalk BY NAME
            SELECT person_id, mrn, birth_date FROM _person
            UNION ALL
            SELECT person_id, second_mrn, birth_date FROM _person WHERE second_mrn IS NOT NULL"""),
        ("ehr: visit_occurrence", """
            INSERT INTO visit_occurrence BY NAME SELECT
                visit_occurrence_id, person_id,
                CASE WHEN r_text > 0.85 THEN 9201 WHEN r_text > 0.7 THEN 9203 ELSE 9202 END AS visit_concept_id,
                CAST(study_ts AS DATE) AS visit_start_date, study_ts - to_minutes(30) AS visit_start_datetime,
                CAST(study_ts AS DATE) + CASE WHEN r_text > 0.85 THEN (h(study_no, 'los') % 8)::INTEGER ELSE 0 END AS visit_end_date,
                32817 AS visit_type_concept_id, 'V' || study_no AS visit_source_value
            FROM _order WHERE procedure_occurrence_id = visit_occurrence_id"""),
        ("ehr: procedure_occurrence", """
            INSERT INTO procedure_occurrence BY NAME SELECT
                procedure_occurrence_id, person_id, procedure_concept_id,
                CAST(study_ts AS DATE) AS procedure_date, study_ts AS procedure_datetime,
                32817 AS procedure_type_concept_id, 0 AS modifier_concept_id, 1 AS quantity,
                visit_occurrence_id, upper(template) AS procedure_source_value, 0 AS procedure_source_concept_id
            FROM _order"""),
        ("ehr: note", """
            INSERT INTO note BY NAME SELECT
                study_no AS note_id, person_id, CAST(study_ts AS DATE) + 1 AS note_date, study_ts + to_hours(20) AS note_datetime,
                44814637 AS note_type_concept_id, 36206173 AS note_class_concept_id, template_description AS note_title,
                'EXAM: ' || template_description || chr(10) || 'ACCESSION: ' || order_accession || chr(10)
                    || 'FINDINGS: ' || pick(['No acute abnormality.', 'Stable appearance compared with the prior exam.',
                       'A 6 mm nodule in the right upper lobe.', 'Mild degenerative change.'], study_no, 'finding')
                    || chr(10) || 'IMPRESSION: ' || pick(['Normal study.', 'Follow-up recommended.', 'No change.'], study_no, 'imp')
                    AS note_text,
                32678 AS encoding_concept_id, 4180186 AS language_concept_id, visit_occurrence_id
            FROM _order
            WHERE procedure_occurrence_id = visit_occurrence_id AND r_format < 0.9   -- 10% of orders have no report yet
        """),
        ("ehr: imaging_order", """
            INSERT INTO imaging_order BY NAME SELECT
                CASE WHEN r_format > 0.95 THEN '0' || mrn ELSE mrn END AS mrn, birth_date,
                order_accession AS accession_number, procedure_occurrence_id, visit_occurrence_id,
                CASE WHEN r_format < 0.9 THEN study_no END AS note_id,
                dept_name AS department, modality,
                study_ts - to_minutes(between_(study_no, 'lead', 5, 60)) AS order_datetime
            FROM _order"""),
        ("ehr: condition_occurrence", f"""
            INSERT INTO condition_occurrence BY NAME SELECT
                person_id * 4 + j AS condition_occurrence_id, person_id,
                pick({conditions}, person_id * 4 + j, 'cond') AS condition_concept_id,
                DATE '2005-01-01' + between_(person_id * 4 + j, 'cday', 0, 7304)::INTEGER AS condition_start_date,
                32817 AS condition_type_concept_id, 'ICD10' AS condition_source_value
            FROM (SELECT person_id, unnest(range((h(person_id, 'nc') % 4)::INTEGER)) AS j FROM _person)"""),
        ("ehr: measurement", f"""
            INSERT INTO measurement BY NAME SELECT
                person_id AS measurement_id, person_id,
                pick([3004249, 3012888, 3027018], person_id, 'mc') AS measurement_concept_id,
                DATE '2005-01-01' + between_(person_id, 'mday', 0, 7304)::INTEGER AS measurement_date,
                32817 AS measurement_type_concept_id,
                between_(person_id, 'mv', 60, 180)::DOUBLE AS value_as_number, 8876 AS unit_concept_id,
                'mmHg' AS unit_source_value
            FROM _person WHERE person_id % 2 = 0 AND person_id <= {n_persons}"""),
    ]


GENERATOR_VERSION = hashlib.sha256(
    (inspect.getsource(generation_sql) + inspect.getsource(insert_sql) + repr(TEMPLATES) + repr(DEVICES)
     + repr(RAW_TABLES) + repr([(t.name, t.columns) for t in EHR_TABLES])).encode()
).hexdigest()[:12]


def create_tables(path: Path) -> None:
    """The project's own DDL: raw tables from DuckDBRawWarehouse, EHR tables from the EhrTable column dicts."""
    warehouse = DuckDBRawWarehouse(path)
    try:
        warehouse.ensure_tables()
        for table in EHR_TABLES:
            body = ", ".join(f"{column} {kind}" for column, kind in table.columns.items())
            warehouse.con.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({body})")
    finally:
        warehouse.con.close()


def generate_warehouse(path: Path, n_series: int, seed: int) -> dict:
    """Write a fresh identified warehouse of n_series series to path; return timings and figures."""
    import duckdb

    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    create_tables(path)
    con = duckdb.connect(str(path))
    steps: dict[str, float] = {}
    try:
        for name, sql in generation_sql(n_series, seed):
            t0 = time.perf_counter()
            con.execute(sql)
            steps[name] = round(time.perf_counter() - t0, 3)
        generated = {row[0] for row in con.execute("DESCRIBE _series").fetchall()}
        for name, sql in insert_sql(n_series, seed, generated):
            t0 = time.perf_counter()
            con.execute(sql)
            steps[name] = round(time.perf_counter() - t0, 3)
        con.execute("CHECKPOINT")
        counts = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in [*RAW_TABLES, *(t.name for t in EHR_TABLES)]}
        profile = _profile(con)
        empty_columns = {
            table: [c for c, _ in columns if con.execute(f"SELECT count({c}) FROM {table}").fetchone()[0] == 0]
            for table, columns in RAW_TABLES.items() if counts[table]
        }
    finally:
        con.close()
    seconds = time.perf_counter() - started
    assert counts["raw_dicom_series"] == n_series, counts
    return {"seconds": round(seconds, 2), "steps": steps, "rows": counts, "profile": profile,
            "empty_columns": empty_columns, "file_mb": round(path.stat().st_size / MB, 1)}


def _profile(con) -> dict:
    """What the generated data looks like (so a reader can judge its realism)."""
    q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
    (studies, persons), = q("SELECT count(DISTINCT study_instance_uid), count(DISTINCT patient_id) FROM raw_dicom_series")
    (no_order,), = q("""SELECT count(*) FROM raw_dicom_series s WHERE NOT EXISTS (
        SELECT 1 FROM imaging_order o WHERE o.accession_number = trim(s.accession_number)) AND s.accession_number IS NOT NULL""")
    (repeated,), = q("SELECT count(*) FROM (SELECT accession_number FROM imaging_order GROUP BY 1 HAVING count(DISTINCT department) > 1)")
    return {
        "studies": studies,
        "distinct_patient_ids": persons,
        "series_per_study": round(q("SELECT count(*) FROM raw_dicom_series")[0][0] / studies, 2),
        "modalities": dict(q("SELECT modality, count(*) FROM raw_dicom_series GROUP BY 1 ORDER BY 2 DESC")),
        "series_without_accession": q("SELECT count(*) FROM raw_dicom_series WHERE accession_number IS NULL")[0][0],
        "series_with_an_accession_no_order_has": no_order,
        "series_without_birth_date": q("SELECT count(*) FROM raw_dicom_series WHERE patient_birth_date IS NULL")[0][0],
        "series_with_invalid_study_date": q(
            "SELECT count(*) FROM raw_dicom_series WHERE try_strptime(nullif(trim(study_date), ''), '%Y%m%d') IS NULL")[0][0],
        "accession_numbers_in_several_departments": repeated,
        "distinct_study_descriptions": q("SELECT count(DISTINCT study_description) FROM raw_dicom_series")[0][0],
        "distinct_series_descriptions": q("SELECT count(DISTINCT series_description) FROM raw_dicom_series")[0][0],
    }


def cached_warehouse(data_dir: Path, n_series: int, seed: int, regenerate: bool) -> tuple[Path, dict]:
    """The generated warehouse for (size, seed, generator version), generated when missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"raw-{n_series}-seed{seed}-{GENERATOR_VERSION}.duckdb"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and not regenerate:
        meta = json.loads(meta_path.read_text())
        meta["cached"] = True
        return path, meta
    for old in data_dir.glob(f"raw-{n_series}-seed{seed}-*"):
        old.unlink()
    meta = generate_warehouse(path, n_series, seed)
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    meta["cached"] = False
    return path, meta


# --- running and measuring the build --------------------------------------------------------------


@dataclass
class BuildRun:
    label: str
    series: int
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    returncode: int
    parse: str  # full: dbt parsed the project from scratch; partial: it reused the saved manifest
    summary: str
    stderr_tail: str
    loadavg_before: list[float] = field(default_factory=list)
    loadavg_after: list[float] = field(default_factory=list)
    nodes: list[dict] = field(default_factory=list)
    dbt_seconds: float | None = None  # dbt's own elapsed time (run_results.json)
    project_dir: str | None = None
    attempts: list[dict] = field(default_factory=list)  # every repeat: seconds, cpu_seconds, max_rss_mb, load

    @property
    def series_per_s(self) -> float:
        return self.series / self.seconds

    def median(self, figure: str) -> float:
        return statistics.median(a[figure] for a in self.attempts) if self.attempts else getattr(self, figure)


def child_env(mode: str, out_dir: Path) -> tuple[dict[str, str], str]:
    """The environment of the build: bytecode cached as an installed package has it (unless mode 'env')."""
    env = dict(os.environ)
    env.pop("IMGOMOP_DBT_PROJECT_DIR", None)
    env["DO_NOT_TRACK"] = "1"  # dbt's anonymous usage events: no network calls in a timed run
    if mode == "env" or not env.get("PYTHONDONTWRITEBYTECODE"):
        return env, "as inherited"
    env.pop("PYTHONDONTWRITEBYTECODE")
    env["PYTHONPYCACHEPREFIX"] = str(out_dir / "pycache")
    return env, (f"PYTHONDONTWRITEBYTECODE is set here; the build caches bytecode in {out_dir / 'pycache'} "
                 "(PYTHONPYCACHEPREFIX), warmed by the first build, as an installed package has it")


def run_build(imgomop: str, raw: Path, workdir: Path, series: int, project_dir: Path | None, key: str,
              env: dict[str, str], label: str, fresh_target: bool = False) -> BuildRun:
    """Copy the generated warehouse into workdir, then time `imgomop build` on it as a child process.

    The same workdir (same paths, same dbt target folder) serves every build, so after the first one
    dbt parses partially, as a warehouse refreshed in place does; fresh_target forces a full parse.
    """
    warehouse = workdir / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    target = warehouse / "dbt" / "target"
    if fresh_target and target.exists():
        shutil.rmtree(target)
    parse = "partial" if (target / "partial_parse.msgpack").exists() else "full"
    for stale in warehouse.glob("*.duckdb*"):
        stale.unlink()
    identified = warehouse / "identified.duckdb"
    shutil.copyfile(raw, identified)
    (target / "run_results.json").unlink(missing_ok=True)
    config = workdir / "imgomop.toml"
    config.write_text(
        "[warehouse]\ntarget = \"duckdb\"\n\n[warehouse.duckdb]\n"
        f"identified = \"{identified}\"\ndeidentified = \"{warehouse / 'deidentified.duckdb'}\"\n"
    )
    env = {**env, "IMGOMOP_DEID_KEY": key}
    if project_dir is not None:
        env["IMGOMOP_DBT_PROJECT_DIR"] = str(project_dir)
    load_before = list(os.getloadavg())
    usage_file = workdir / "rusage.json"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        returncode = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER_CODE, str(usage_file), imgomop, "build", "--config", str(config)],
            cwd=workdir, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
        ).returncode
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    usage = json.loads(usage_file.read_text())
    rss_unit = 1 if sys.platform == "darwin" else 1024
    run = BuildRun(
        label=label, series=series, seconds=round(wall, 2), cpu_seconds=round(usage["cpu"], 2),
        max_rss_mb=round(usage["maxrss"] * rss_unit / MB, 1), returncode=returncode,
        parse=parse, summary=stdout.strip(), stderr_tail=stderr[-3000:],
        loadavg_before=[round(x, 2) for x in load_before], loadavg_after=[round(x, 2) for x in os.getloadavg()],
        project_dir=str(project_dir) if project_dir else None,
    )
    run.nodes, run.dbt_seconds = node_timings(target / "run_results.json")
    return run


def node_timings(run_results: Path) -> tuple[list[dict], float | None]:
    """Per-node execution seconds from dbt's run_results.json, slowest first; dbt's elapsed time."""
    if not run_results.exists():
        return [], None
    data = json.loads(run_results.read_text())
    nodes = []
    for r in data.get("results", []):
        unique_id = r.get("unique_id", "")
        nodes.append({"node": unique_id.split(".", 2)[-1] if unique_id.startswith("model.") else unique_id,
                      "type": unique_id.split(".", 1)[0], "status": r.get("status"),
                      "seconds": round(r.get("execution_time") or 0.0, 2)})
    return sorted(nodes, key=lambda n: -n["seconds"]), data.get("elapsed_time")


# --- reporting -------------------------------------------------------------------------------------


def _fmt(v, spec=",.1f") -> str:
    return "-" if v is None else format(v, spec)


def results_table(runs: list[BuildRun], generation: dict[int, dict]) -> str:
    width = max(24, *(len(r.label) for r in runs))
    head = (f"{'build':<{width}} {'series':>10} {'generate s':>10} {'build s':>8} {'dbt s':>7} {'CPU s':>7} "
            f"{'median s':>8} {'median CPU':>10} {'peak RSS MB':>11} {'series/s':>9} {'load 1m':>7} {'status':>6}")
    lines = [head, "-" * len(head)]
    for r in runs:
        lines.append(f"{r.label:<{width}} {r.series:>10,} {_fmt(generation.get(r.series, {}).get('seconds')):>10} "
                     f"{r.seconds:>8.1f} {_fmt(r.dbt_seconds):>7} {r.cpu_seconds:>7.1f} {r.median('seconds'):>8.1f} "
                     f"{r.median('cpu_seconds'):>10.1f} {r.max_rss_mb:>11,.0f} {r.series_per_s:>9,.0f} "
                     f"{r.loadavg_before[0] if r.loadavg_before else 0:>7.1f} {'ok' if r.returncode == 0 else 'FAILED':>6}")
    lines.append("build s, dbt s, CPU s, peak RSS: the fastest repeat; median s / median CPU: over the repeats; "
                 "load 1m: load average before the build")
    return "\n".join(lines)


def top_nodes(run: BuildRun, n: int = 10) -> str:
    if not run.nodes:
        return "(no run_results.json)"
    total = sum(x["seconds"] for x in run.nodes)
    lines = [f"{'seconds':>8} {'share':>6}  node ({run.series:,} series; node times add up to {total:.1f} s, "
             f"run on 2 dbt threads in {_fmt(run.dbt_seconds)} s)"]
    for x in run.nodes[:n]:
        lines.append(f"{x['seconds']:>8.2f} {x['seconds'] / total:>6.1%}  {x['type']} {x['node']} [{x['status']}]")
    by_type: dict[str, float] = {}
    for x in run.nodes:
        by_type[x["type"]] = by_type.get(x["type"], 0.0) + x["seconds"]
    lines.append("by type: " + ", ".join(f"{t} {s:.1f} s" for t, s in sorted(by_type.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


def growth_lines(base: BuildRun | None, small: BuildRun, large: BuildRun) -> tuple[list[str], dict]:
    size_ratio = large.series / small.series
    ratio = large.seconds / small.seconds
    cpu_ratio = large.cpu_seconds / small.cpu_seconds
    figures = {"size_ratio": size_ratio, "time_ratio": round(ratio, 3), "cpu_ratio": round(cpu_ratio, 3),
               "rss_ratio": round(large.max_rss_mb / small.max_rss_mb, 3), "within_linear": ratio <= size_ratio}
    lines = [
        f"time({large.series:,}) / time({small.series:,}) = {ratio:.2f}x for {size_ratio:.0f}x the series "
        f"(linear: {size_ratio:.0f}x) -> {'within' if ratio <= size_ratio else 'WORSE than'} linear growth; "
        f"CPU {cpu_ratio:.2f}x; peak RSS {figures['rss_ratio']:.2f}x",
    ]
    if base is not None and small.seconds > base.seconds:
        marginal = (large.seconds - base.seconds) / (small.seconds - base.seconds)
        figures["marginal_time_ratio"] = round(marginal, 3)
        lines.append(f"without the fixed cost ({base.seconds:.1f} s at {base.series:,} series): "
                     f"{marginal:.2f}x for {size_ratio:.0f}x the series "
                     f"-> {'within' if marginal <= size_ratio else 'WORSE than'} linear")
    return lines, figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="series counts (default 100000 1000000)")
    parser.add_argument("--baseline-size", type=int, default=1000,
                        help="a tiny build first, twice (full parse, then partial): the fixed cost (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=HERE / "out" / "build-data",
                        help="where generated warehouses are cached (default benchmarks/out/build-data)")
    parser.add_argument("--work-dir", type=Path, default=None, help="where builds run (default: a temporary folder)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "out", help="where the JSON result is written")
    parser.add_argument("--project-dir", type=Path, default=None,
                        help="build with this dbt project folder instead (IMGOMOP_DBT_PROJECT_DIR), e.g. a scratch copy")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=DIR",
                        help="also build every size with the dbt project in DIR (a scratch copy with changed models), "
                             "interleaved with the main project, and report the ratios (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="builds per size; the fastest counts")
    parser.add_argument("--regenerate", action="store_true", help="generate the warehouses even when cached")
    parser.add_argument("--generate-only", action="store_true", help="only generate (and profile) the warehouses")
    parser.add_argument("--bytecode", choices=("cached", "env"), default="cached",
                        help="cached: the build reuses byte-compiled modules as an installed package does (default); "
                             "env: it inherits the environment as is")
    parser.add_argument("--imgomop", default=None, help="the imgomop command (default: next to this Python, else on PATH)")
    args = parser.parse_args(argv)

    imgomop = args.imgomop or str(Path(sys.executable).with_name("imgomop"))
    if not Path(imgomop).exists():
        imgomop = shutil.which("imgomop") or sys.exit("imgomop is not installed next to this Python nor on PATH")
    sizes = sorted(set(args.sizes))
    all_sizes = sorted(set(sizes) | ({args.baseline_size} if args.baseline_size else set()))
    key = secrets.token_hex(32)  # a random key per run: never written anywhere

    generation: dict[int, dict] = {}
    raw_paths: dict[int, Path] = {}
    for n in all_sizes:
        path, meta = cached_warehouse(args.data_dir, n, args.seed, args.regenerate)
        generation[n], raw_paths[n] = meta, path
        how = "cached from an earlier run" if meta["cached"] else f"generated in {meta['seconds']:.1f} s"
        print(f"warehouse {n:,} series: {path} ({meta['file_mb']:,.0f} MB, {how})")
        print("  rows: " + ", ".join(f"{t} {c:,}" for t, c in meta["rows"].items()))
        print("  profile: " + json.dumps(meta["profile"]))
        if any(meta["empty_columns"].values()):
            print("  columns left NULL: " + json.dumps(meta["empty_columns"]))
    if args.generate_only:
        return 0

    args.out_dir.mkdir(parents=True, exist_ok=True)
    env, env_note = child_env(args.bytecode, args.out_dir)
    print(f"bytecode: {env_note}")
    work_root = args.work_dir or Path(tempfile.mkdtemp(prefix="imgomop-build-bench-"))
    projects: list[tuple[str, Path | None]] = [("repo" if args.project_dir is None else "project", args.project_dir)]
    for spec in args.variant:
        name, _, folder = spec.partition("=")
        if not folder or not (Path(folder) / "dbt_project.yml").exists():
            sys.exit(f"--variant {spec}: give NAME=DIR with DIR a dbt project folder (holding dbt_project.yml)")
        projects.append((name, Path(folder).resolve()))

    def build(project: tuple[str, Path | None], n: int, label: str, fresh_target: bool = False) -> BuildRun:
        name, folder = project
        label = label if len(projects) == 1 else f"{name}: {label}"
        print(f"\n{label}: building {n:,} series ...", flush=True)
        # one work folder per project: its own dbt target, so each parses partially after its first build
        run = run_build(imgomop, raw_paths[n], work_root / f"build-{name}", n, folder, key, env, label, fresh_target)
        print(run.summary or "(no summary)")
        print(f"-> {run.seconds:.1f} s, CPU {run.cpu_seconds:.1f} s, peak RSS {run.max_rss_mb:,.0f} MB, {run.parse} parse")
        if run.returncode != 0:
            print(f"imgomop build FAILED with exit code {run.returncode}:\n{run.stderr_tail}")
        return run

    runs: list[BuildRun] = []
    base = None
    for i, project in enumerate(projects):
        if args.baseline_size and i == 0:
            runs.append(build(project, args.baseline_size, "fixed cost, full parse", fresh_target=True))
            base = build(project, args.baseline_size, "fixed cost, partial parse")
            runs.append(base)
        else:  # compile bytecode and save dbt's parse, as a warehouse refreshed in place has them
            build(project, args.baseline_size or min(sizes), "warm-up (not counted)", fresh_target=True)
    measured: dict[str, list[BuildRun]] = {name: [] for name, _ in projects}
    for n in sizes:
        attempts: dict[str, list[BuildRun]] = {name: [] for name, _ in projects}
        for i in range(args.repeat):  # interleaved: every project sees the same machine load
            for project in projects:
                attempts[project[0]].append(build(project, n, f"run {i + 1} of {args.repeat}"))
        for name, tries in attempts.items():
            best = min(tries, key=lambda r: (r.returncode != 0, r.seconds))
            best.attempts = [{"seconds": r.seconds, "cpu_seconds": r.cpu_seconds, "max_rss_mb": r.max_rss_mb,
                              "dbt_seconds": r.dbt_seconds, "returncode": r.returncode,
                              "loadavg_before": r.loadavg_before} for r in tries]
            best.label = (f"{name}: " if len(projects) > 1 else "") + f"{n:,} series" + (
                f" (best of {args.repeat})" if args.repeat > 1 else "")
            measured[name].append(best)
    for name, _ in projects:
        runs += measured[name]
    if args.work_dir is None:
        shutil.rmtree(work_root, ignore_errors=True)

    print("\n" + results_table(runs, generation))
    main_runs = measured[projects[0][0]]
    small, large = main_runs[0], main_runs[-1]
    growth: dict = {}
    if len(main_runs) > 1:
        lines, growth = growth_lines(base, small, large)
        print("\n".join(lines))
    meets = large.returncode == 0 and large.seconds <= TARGET_SECONDS
    print(f"{large.series:,} series: {large.seconds:.1f} s against the {TARGET_SECONDS:.0f} s target -> "
          f"{'meets' if meets else 'MISSES'} it ({large.seconds / TARGET_SECONDS:.2f}x the target)")
    variants: dict = {}
    for name, folder in projects[1:]:
        for ref, var in zip(main_runs, measured[name]):
            figures = {"series": ref.series, "time_ratio": round(var.seconds / ref.seconds, 3),
                       "median_time_ratio": round(var.median("seconds") / ref.median("seconds"), 3),
                       "median_cpu_ratio": round(var.median("cpu_seconds") / ref.median("cpu_seconds"), 3),
                       "rss_ratio": round(var.max_rss_mb / ref.max_rss_mb, 3), "dbt_project": str(folder)}
            variants.setdefault(name, []).append(figures)
            print(f"{name} / {projects[0][0]} at {ref.series:,} series: fastest {figures['time_ratio']:.2f}x "
                  f"({var.seconds:.1f} s vs {ref.seconds:.1f} s), median {figures['median_time_ratio']:.2f}x, "
                  f"median CPU {figures['median_cpu_ratio']:.2f}x "
                  f"({var.median('cpu_seconds'):.1f} s vs {ref.median('cpu_seconds'):.1f} s), "
                  f"peak RSS {figures['rss_ratio']:.2f}x")
    if any(r.loadavg_before and r.loadavg_before[0] > (os.cpu_count() or 1) for r in runs):
        print("note: the 1-minute load average was above the CPU count during some builds (other work on the "
              "machine): wall times are inflated; CPU seconds are the steadier figure")
    for name, _ in projects:
        print(f"\nslowest dbt nodes at the largest size{', ' + name if len(projects) > 1 else ''}:\n"
              + top_nodes(measured[name][-1]))

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out_dir / f"build-{stamp}.json"
    out.write_text(json.dumps({
        "timestamp": stamp,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)},
        "command": " ".join([Path(sys.executable).name, *(sys.argv if argv is None else [__file__, *argv])]),
        "project_dir": str(args.project_dir) if args.project_dir else "dbt_project (the repository's)",
        "bytecode": env_note,
        "seed": args.seed,
        "generator_version": GENERATOR_VERSION,
        "generation": {str(n): generation[n] for n in all_sizes},
        "builds": [{**asdict(r), "series_per_s": round(r.series_per_s, 1)} for r in runs],
        "growth": growth,
        "variants": variants,
        "target_seconds": TARGET_SECONDS,
        "largest_meets_target": meets,
    }, indent=2, default=str))
    print(f"\nresults: {out}")
    return 0 if all(r.returncode == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
