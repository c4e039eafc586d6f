"""`imgomop scrub INPUT --out gs://bucket/prefix` against gcp-storage-emulator (see conftest.gcs_emulator).

google-cloud-storage follows STORAGE_EMULATOR_HOST with anonymous credentials, so the production
BucketSink runs unchanged. Covered: uploads of the de-identified files and of the manifest parts,
listing the manifest parts to resume, downloads. Not covered (the emulator does not enforce them):
generation preconditions.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq
import pydicom
import pytest
from conftest import TEST_DEID_KEY, invoke_cli

from extractor.demo_data import make_demo_archive
from extractor.scrub.run import EXTRACT_COLUMNS, MANIFEST_FOLDER, source_key

BUCKET = "test-bucket"
PREFIX = "extract"
DESTINATION = f"gs://{BUCKET}/{PREFIX}"
PSEUDONYM = re.compile(r"^2\.25\.[1-9]\d*$")
MANIFEST_PART = re.compile(r"^part-\d{8}T\d{6}Z-[0-9a-f]{8}-\d{6}\.parquet$")
# 20 DICOM files: the header-only path, the pixel path (ultrasound) and filtered classes
PER_MODALITY = {"CT": 4, "MR": 4, "US": 4, "DX": 2, "CR": 2, "PT": 1, "SR": 1, "DOC": 1, "OT": 1}


@dataclass(frozen=True)
class BucketExtract:
    client: object
    folder: Path
    inputs: list[tuple[Path, dict]]
    answer_key: dict
    output: str


def copy_subset(archive, dest: Path) -> list[tuple[Path, dict]]:
    """The first files of each modality (in path order), copied with their archive paths."""
    chosen: list[tuple[Path, dict]] = []
    taken: dict[str, int] = {}
    for entry in sorted(json.loads(archive.answer_key.read_text())["files"], key=lambda f: f["file"]):
        modality = entry["modality"]
        if taken.get(modality, 0) >= PER_MODALITY.get(modality, 0):
            continue
        taken[modality] = taken.get(modality, 0) + 1
        target = dest / entry["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((archive.root / entry["file"]).read_bytes())
        chosen.append((target, entry))
    return chosen


def blobs(client) -> dict[str, object]:
    return {blob.name: blob for blob in client.list_blobs(BUCKET, prefix=f"{PREFIX}/")}


def manifest_rows(client) -> list[dict]:
    rows: list[dict] = []
    for name, blob in sorted(blobs(client).items()):
        if name.startswith(f"{PREFIX}/{MANIFEST_FOLDER}/"):
            rows += pq.read_table(io.BytesIO(blob.download_as_bytes())).to_pylist()
    return rows


@pytest.fixture(scope="module")
def extract(gcs_emulator, tmp_path_factory) -> BucketExtract:
    from google.cloud import storage

    root = tmp_path_factory.mktemp("scrub-bucket")
    archive = make_demo_archive(root / "demo", seed=1, patients=10)
    inputs = copy_subset(archive, root / "in")
    assert len(inputs) == 20
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
        mp.setenv("IMGOMOP_DEID_KEY", TEST_DEID_KEY)
        client = storage.Client(project="imgomop-test")
        if not client.bucket(BUCKET).exists():
            client.create_bucket(BUCKET)
        output = invoke_cli("scrub", str(root / "in"), "--out", DESTINATION, "--workers", "2")
        yield BucketExtract(client, root / "in", inputs, json.loads(archive.answer_key.read_text()), output)


def test_every_deidentified_file_is_an_object_pydicom_reads(extract):
    rows = {row["source_key"]: row for row in manifest_rows(extract.client)}
    assert len(rows) == len(extract.inputs)  # one row per input
    objects = blobs(extract.client)
    dicom_objects = {name for name in objects if name.endswith(".dcm")}
    written = set()
    for path, entry in extract.inputs:
        row = rows[source_key(str(path.resolve()), TEST_DEID_KEY)]
        if entry["should_filter"]:
            assert (row["outcome"], row["output"]) == ("filtered", None), entry["file"]
            assert row["rule"]
            continue
        assert row["outcome"] == "deidentified", (entry["file"], row)
        assert row["output"].startswith(f"{DESTINATION}/")
        name = row["output"].removeprefix(f"gs://{BUCKET}/")
        assert name in objects
        blob = objects[name]
        assert blob.size == row["bytes_out"]
        assert blob.content_type == "application/dicom"
        ds = pydicom.dcmread(io.BytesIO(blob.download_as_bytes()))
        assert ds.PatientIdentityRemoved == "YES"
        study, series, sop = PurePosixPath(name).parts[1:]
        assert (study, series, sop) == (ds.StudyInstanceUID, ds.SeriesInstanceUID, f"{ds.SOPInstanceUID}.dcm")
        assert ds.SOPInstanceUID != entry["sop_uid"]
        if entry["needs_pixel_scrub"]:
            assert json.loads(row["regions"]), entry["file"]
        written.add(name)
    assert written == dicom_objects  # nothing else was uploaded
    assert f"{len(written)} deidentified" in extract.output


def test_object_names_leak_nothing(extract):
    key = extract.answer_key
    source_uids = {f[k] for f in key["files"] for k in ("study_uid", "series_uid", "sop_uid")}
    names = {p["value"] for p in key["phi"] if p["category"] == "name"}
    folders = {part for path, _ in extract.inputs for part in path.parts[-6:]}
    for name in blobs(extract.client):
        parts = PurePosixPath(name).parts
        assert parts[0] == PREFIX
        if parts[1] == MANIFEST_FOLDER:
            assert len(parts) == 3 and MANIFEST_PART.match(parts[2]), name
            continue
        assert len(parts) == 4 and parts[3].endswith(".dcm"), name
        for part in (parts[1], parts[2], parts[3].removesuffix(".dcm")):
            assert PSEUDONYM.match(part), name  # only 2.25 pseudonyms
            assert part not in source_uids, name
        assert not [n for n in names if n in name]
        assert not [f for f in folders if len(f) >= 4 and f in name]


def test_manifest_parts_are_in_the_bucket_without_identifiers(extract):
    objects = blobs(extract.client)
    parts = [blob for name, blob in objects.items() if name.startswith(f"{PREFIX}/{MANIFEST_FOLDER}/")]
    assert parts
    key = extract.answer_key
    needles = (
        {f[k] for f in key["files"] for k in ("study_uid", "series_uid", "sop_uid", "patient_mrn", "accession") if f[k]}
        | {p["value"] for p in key["phi"] if p["category"] == "name"}
        | {str(path) for path, _ in extract.inputs}
        | {entry["file"] for _, entry in extract.inputs}
    )
    for blob in parts:
        table = pq.read_table(io.BytesIO(blob.download_as_bytes()))
        assert set(table.column_names) == set(EXTRACT_COLUMNS)
        assert not {"location", "series_instance_uid", "scrubbed_series_uid", "error"} & set(table.column_names)
        text = "\n".join(str(v) for row in table.to_pylist() for v in row.values() if v is not None)
        assert not [n for n in needles if n in text]


def test_a_rerun_resumes_from_the_bucket_and_writes_nothing(extract, monkeypatch, gcs_emulator):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.setenv("IMGOMOP_DEID_KEY", TEST_DEID_KEY)
    before = {name: blob.generation for name, blob in blobs(extract.client).items()}
    output = invoke_cli("scrub", str(extract.folder), "--out", DESTINATION, "--workers", "2")
    assert f"{len(extract.inputs)} already done (skipped)" in output
    after = {name: blob.generation for name, blob in blobs(extract.client).items()}
    assert after == before  # no new object, nothing overwritten
