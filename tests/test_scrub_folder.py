"""Folder mode of `imgomop scrub` (no warehouse) on a small demo archive.

Every input ends in exactly one outcome; sources are only read; writes are atomic (also when a
write fails half-way); a re-run skips finished inputs; output paths and the manifest leak
nothing; bad settings give clean CLI errors; the shipped profiles run; ultrasound without a
pixel rule for its device is filtered.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from conftest import TEST_DEID_KEY, invoke_cli

from extractor.demo_data import make_demo_archive
from extractor.scrub import instance, sinks
from extractor.scrub.run import EXTRACT_COLUMNS, MANIFEST_FOLDER, source_key

PSEUDONYM = re.compile(r"^2\.25\.[1-9]\d*$")
MANIFEST_PART = re.compile(r"^part-\d{8}T\d{6}Z-[0-9a-f]{8}-\d{6}\.parquet$")
# answer-key filter reason (prefix) -> the rule the manifest must name
FILTER_RULES = {
    "encapsulated PDF document": "encapsulated-document",
    "structured report": "structured-report",
    "secondary capture": "secondary-capture",
    "scanned film": "scanned-film",
}
# A pixel script that knows a CT device only: no ultrasound device has a rule in it.
NO_ULTRASOUND_SCRIPT = """\
Pixel rules for one CT scanner only; no ultrasound device is listed.

  { Modality.equals("CT") * Manufacturer.containsIgnoreCase("Nonexistent Medical") }
  (0,0,16,16)
"""


@dataclass(frozen=True)
class Scrubbed:
    out: Path
    output: str
    manifest: list[dict]
    before: dict[str, str]
    after: dict[str, str]


def _digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() + f":{path.stat().st_mtime_ns}"
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def manifest_parts(out: Path) -> set[str]:
    return {part.name for part in (out / MANIFEST_FOLDER).glob("part-*.parquet")}


def read_manifest(out: Path, parts: set[str] | None = None) -> list[dict]:
    """The rows of the manifest parts (all, or the named ones: run ids do not sort by time)."""
    rows: list[dict] = []
    for name in sorted(manifest_parts(out) if parts is None else parts):
        rows += pq.read_table(out / MANIFEST_FOLDER / name).to_pylist()
    return rows


def answer_key(archive) -> dict:
    return json.loads(archive.answer_key.read_text())


def copy_subset(archive, dest: Path, per_modality: dict[str, int]) -> list[tuple[Path, dict]]:
    """The first files of each modality (in path order), copied with their archive paths."""
    chosen: list[tuple[Path, dict]] = []
    taken: dict[str, int] = {}
    for entry in sorted(answer_key(archive)["files"], key=lambda f: f["file"]):
        modality = entry["modality"]
        if taken.get(modality, 0) >= per_modality.get(modality, 0):
            continue
        taken[modality] = taken.get(modality, 0) + 1
        target = dest / entry["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(archive.root / entry["file"], target)
        chosen.append((target, entry))
    return chosen


def run_cli(*args: str):
    """Run imgomop in-process and return the click Result (for commands expected to fail)."""
    from typer.testing import CliRunner

    from extractor.cli import app

    return CliRunner().invoke(app, list(args))


def relative_output(output: str, out: Path) -> str:
    prefix = str(out) + os.sep
    assert output.startswith(prefix), output
    return output[len(prefix) :]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_demo_archive(tmp_path_factory.mktemp("scrub-folder") / "demo", seed=1, patients=10)


@pytest.fixture(autouse=True)
def deid_key(monkeypatch):
    monkeypatch.setenv("IMGOMOP_DEID_KEY", TEST_DEID_KEY)


@pytest.fixture(scope="module")
def scrubbed(archive, tmp_path_factory) -> Scrubbed:
    out = tmp_path_factory.mktemp("scrub-folder-out") / "extract"
    before = _digests(archive.dicom_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGOMOP_DEID_KEY", TEST_DEID_KEY)
        output = invoke_cli("scrub", str(archive.dicom_dir), "--out", str(out), "--workers", "2")
    return Scrubbed(out, output, read_manifest(out), before, _digests(archive.dicom_dir))


def test_every_input_ends_in_exactly_one_outcome(scrubbed, archive):
    key = answer_key(archive)
    inputs = {source_key(str(p.resolve()), TEST_DEID_KEY): p for p in archive.dicom_dir.rglob("*") if p.is_file()}
    assert len(inputs) == archive.dicom_files + archive.non_dicom_files
    keys = [row["source_key"] for row in scrubbed.manifest]
    assert len(keys) == len(set(keys)), "an input has more than one manifest row"
    assert set(keys) == set(inputs)
    by_file = {str(inputs[row["source_key"]].relative_to(archive.root)): row for row in scrubbed.manifest}

    for name in key["non_dicom_files"]:
        row = by_file[name]
        assert (row["outcome"], row["error_class"], row["output"]) == ("quarantined", "NotDicom", None), name
    for entry in key["files"]:
        row = by_file[entry["file"]]
        if entry["should_filter"]:
            expected = next(rule for reason, rule in FILTER_RULES.items() if entry["filter_reason"].startswith(reason))
            assert (row["outcome"], row["rule"], row["output"]) == ("filtered", expected, None), entry["file"]
        else:
            assert row["outcome"] == "deidentified", (entry["file"], row)
            assert row["error_class"] is None and row["bytes_out"] > 0 and row["transfer_syntax_out"]
            if entry["needs_pixel_scrub"]:
                assert row["rule"] and json.loads(row["regions"]), (entry["file"], row)

    written = {Path(row["output"]) for row in scrubbed.manifest if row["outcome"] == "deidentified"}
    on_disk = {p for p in scrubbed.out.rglob("*.dcm")}
    assert written == on_disk
    for path in sorted(written):
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert "imgomop pre-irb v1" in str(ds.DeidentificationMethod)
    summary = scrubbed.output
    assert f"{sum(1 for r in scrubbed.manifest if r['outcome'] == 'deidentified')} deidentified" in summary


def test_sources_are_never_modified(scrubbed):
    assert scrubbed.after == scrubbed.before  # same files, same bytes, same modification times


def test_no_partial_files_are_left(scrubbed):
    leftovers = [p for p in scrubbed.out.rglob("*") if p.name.startswith(".partial-")]
    assert leftovers == []


def test_output_paths_and_manifest_leak_nothing(scrubbed, archive):
    key = answer_key(archive)
    source_uids = {f[k] for f in key["files"] for k in ("study_uid", "series_uid", "sop_uid")}
    identifiers = {f[k] for f in key["files"] for k in ("patient_mrn", "accession") if f[k]}
    names = {p["value"] for p in key["phi"] if p["category"] == "name"}
    folder_names = {
        part
        for p in archive.dicom_dir.rglob("*")
        for part in p.relative_to(archive.dicom_dir).parts
        if re.search(r"[A-Za-z]", Path(part).stem) and len(Path(part).stem) >= 4
    }
    assert {"pacs", "router", "cd_import", "README.txt"} <= folder_names  # the check has teeth

    paths = [str(p.relative_to(scrubbed.out)) for p in scrubbed.out.rglob("*") if p.is_file()]
    for path in paths:
        parts = Path(path).parts
        if parts[0] == MANIFEST_FOLDER:
            assert len(parts) == 2 and MANIFEST_PART.match(parts[1]), path
        else:
            assert len(parts) == 3 and parts[2].endswith(".dcm"), path
            for part in (parts[0], parts[1], parts[2].removesuffix(".dcm")):
                assert PSEUDONYM.match(part) and part not in source_uids, path

    assert set(scrubbed.manifest[0]) == set(EXTRACT_COLUMNS)  # no location, no source UID, no error text
    values = []
    for row in scrubbed.manifest:
        for column, value in row.items():
            if value is None:
                continue
            values.append(relative_output(value, scrubbed.out) if column == "output" else str(value))
    text = "\n".join(values)
    for needle in sorted(source_uids | identifiers | names | folder_names):
        assert needle not in text, f"{needle!r} appears in the manifest"
    for path in paths:
        for needle in sorted(identifiers | names | folder_names):
            assert needle not in path, f"{needle!r} appears in output path {path}"


@pytest.mark.parametrize(
    "failure", ["while writing", "before the rename", "while writing unnamed", "while copying unnamed", "before the link"]
)
def test_a_failed_write_leaves_no_partial_file(failure, archive, tmp_path, monkeypatch):
    """Both ways of writing atomically: an unnamed file linked into place, and (where the system
    has no unnamed files) a named temporary file renamed."""
    chosen = copy_subset(archive, tmp_path / "in", {"CT": 2, "MR": 1})
    out = tmp_path / "out"
    seen: list[Path] = []
    real_replace, real_writev, real_link, real_copy = os.replace, os.writev, os.link, sinks._copy_file_range
    unnamed = failure in ("while writing unnamed", "while copying unnamed", "before the link")

    def is_output_unnamed(fd: int) -> bool:
        target = os.readlink(f"/proc/self/fd/{fd}")
        return target.startswith(str(out)) and "(deleted)" in target and f"/{MANIFEST_FOLDER}/" not in target

    def is_output_partial(path: Path) -> bool:
        return path.name.startswith(".partial-") and out in path.parents and path.parent.name != MANIFEST_FOLDER

    def failing_replace(src, dst, *args, **kwargs):
        if is_output_partial(Path(src)):
            assert Path(src).stat().st_size > 0  # the temporary file is there, written in full
            seen.append(Path(src))
            raise OSError(5, "Input/output error (simulated)")
        return real_replace(src, dst, *args, **kwargs)

    def is_output(fd: int) -> bool:
        return is_output_unnamed(fd) if unnamed else is_output_partial(Path(os.readlink(f"/proc/self/fd/{fd}")))

    def failing_writev(fd, buffers):
        if is_output(fd):
            seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
            real_writev(fd, [bytes(buffers[0])[: len(buffers[0]) // 2]])
            raise OSError(28, "No space left on device (simulated)")
        return real_writev(fd, buffers)

    def failing_copy(source, fd, count, offset):
        if is_output(fd):
            seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
            real_copy(source, fd, count // 2, offset)
            raise OSError(28, "No space left on device (simulated)")
        return real_copy(source, fd, count, offset)

    def failing_link(src, dst, *args, **kwargs):
        if str(src).startswith("/proc/self/fd/") and is_output_unnamed(int(str(src).rsplit("/", 1)[1])):
            seen.append(Path(dst))
            raise OSError(5, "Input/output error (simulated)")
        return real_link(src, dst, *args, **kwargs)

    with monkeypatch.context() as patch:
        if not unnamed:
            patch.setattr(sinks, "_O_TMPFILE", 0)  # as on a system without unnamed files
        if failure in ("while writing", "while writing unnamed"):
            patch.setattr(os, "writev", failing_writev)
        elif failure == "before the rename":
            patch.setattr(os, "replace", failing_replace)
        elif failure == "while copying unnamed":
            patch.setattr(sinks, "_copy_file_range", failing_copy)
        else:
            patch.setattr(os, "link", failing_link)
        invoke_cli("scrub", str(tmp_path / "in"), "--out", str(out), "--workers", "1")

    assert len(seen) == len(chosen)  # every instance failed after its temporary file was created
    assert unnamed or not [p for p in seen if p.exists()]
    assert not [p for p in out.rglob("*") if p.name.startswith(".partial-") or p.suffix == ".dcm"]
    rows = read_manifest(out)
    assert [(r["outcome"], r["error_class"], r["output"]) for r in rows] == [("quarantined", "OSError", None)] * len(chosen)

    # the failed instances are tried again, and now succeed
    first_run = manifest_parts(out)
    invoke_cli("scrub", str(tmp_path / "in"), "--out", str(out), "--workers", "1")
    retried = read_manifest(out, manifest_parts(out) - first_run)
    assert sorted(r["outcome"] for r in retried) == ["deidentified"] * len(chosen)
    assert len(list(out.rglob("*.dcm"))) == len(chosen)
    assert not [p for p in out.rglob("*") if p.name.startswith(".partial-")]


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ('name = "broken"\nversion = 1\nbase = "basic"\n\n[attributes]\nPatientName = { action = "scramble" }\n', 6, "bad action 'scramble'"),
        ('name = "broken"\nversion = 1\nbase = basic\noptions = []\n', 3, "not valid TOML"),
    ],
    ids=["bad-action", "toml-syntax"],
)
def test_a_bad_profile_is_a_clean_cli_error_naming_file_and_line(content, line, problem, archive, tmp_path):
    profile = tmp_path / "site-profile.toml"
    profile.write_text(content)
    out = tmp_path / "out"
    result = run_cli("scrub", str(archive.dicom_dir), "--out", str(out), "--profile", str(profile))
    assert result.exit_code == 2, result.output
    assert f"error: {profile}:{line}: " in result.stderr
    assert problem in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing was written before the profile was checked


def test_a_missing_key_is_a_clear_error(archive, tmp_path, monkeypatch):
    monkeypatch.delenv("IMGOMOP_DEID_KEY")
    out = tmp_path / "out"
    result = run_cli("scrub", str(archive.dicom_dir), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "IMGOMOP_DEID_KEY is not set" in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("profile", ["strict-allowlist", "post-irb-limited"])
def test_shipped_profiles_run(profile, archive, tmp_path):
    chosen = copy_subset(archive, tmp_path / "in", {"CT": 2, "MR": 2, "US": 2, "DX": 1, "CR": 1, "PT": 1, "SR": 1, "DOC": 1})
    out = tmp_path / "out"
    invoke_cli("scrub", str(tmp_path / "in"), "--out", str(out), "--profile", profile, "--workers", "2")
    rows = {r["source_key"]: r for r in read_manifest(out)}
    assert len(rows) == len(chosen)
    for path, entry in chosen:
        row = rows[source_key(str(path.resolve()), TEST_DEID_KEY)]
        expected = "filtered" if entry["should_filter"] else "deidentified"
        assert row["outcome"] == expected, (entry["file"], row)
        if expected == "deidentified":
            ds = pydicom.dcmread(row["output"])
            assert ds.PatientIdentityRemoved == "YES"
            assert f"imgomop {profile} v1" in str(ds.DeidentificationMethod)
            assert ds.SOPInstanceUID != entry["sop_uid"] and PSEUDONYM.match(ds.SOPInstanceUID)


def test_ultrasound_of_a_device_without_pixel_rule_is_filtered(archive, tmp_path):
    chosen = copy_subset(archive, tmp_path / "in", {"US": 6, "CT": 1})
    assert {e["manufacturer"] for _, e in chosen if e["modality"] == "US"}  # devices the script does not list
    script = tmp_path / "ct-only.script"
    script.write_text(NO_ULTRASOUND_SCRIPT)
    out = tmp_path / "out"
    invoke_cli("scrub", str(tmp_path / "in"), "--out", str(out), "--pixel-script", str(script), "--workers", "1")
    rows = {r["source_key"]: r for r in read_manifest(out)}
    for path, entry in chosen:
        row = rows[source_key(str(path.resolve()), TEST_DEID_KEY)]
        if entry["modality"] == "US":
            assert (row["outcome"], row["rule"], row["output"]) == ("filtered", "ultrasound-without-pixel-rule", None)
        else:
            assert row["outcome"] == "deidentified"
    assert len(list(out.rglob("*.dcm"))) == 1


def test_a_rerun_skips_finished_inputs(scrubbed, archive):
    """Runs last: it adds a manifest part to the shared extract."""
    finished = sum(1 for r in scrubbed.manifest if r["outcome"] in ("deidentified", "filtered"))
    quarantined = len(scrubbed.manifest) - finished
    outputs_before = _digests(scrubbed.out)
    first_run = manifest_parts(scrubbed.out)
    output = invoke_cli("scrub", str(archive.dicom_dir), "--out", str(scrubbed.out), "--workers", "2")
    assert f"{finished} already done (skipped)" in output
    outputs_after = _digests(scrubbed.out)
    new = sorted(set(outputs_after) - set(outputs_before))
    assert {k: v for k, v in outputs_after.items() if k in outputs_before} == outputs_before  # nothing rewritten
    assert all(Path(name).parent.name == MANIFEST_FOLDER for name in new)  # only the retry's manifest part
    retried = read_manifest(scrubbed.out, manifest_parts(scrubbed.out) - first_run)
    assert len(retried) == quarantined  # only the quarantined (non-DICOM) inputs were tried again
    assert {r["error_class"] for r in retried} == {"NotDicom"}


def test_a_file_name_that_is_not_utf8_is_scrubbed_and_skipped_by_a_rerun(tmp_path):
    """Linux file names are bytes: a Latin-1 name is read by its bytes, and its manifest key (a hash
    of its location, as the warehouse keeps it) lets a re-run find it done."""
    from pydicom.data import get_testdata_file

    folder = os.fsencode(tmp_path / "in") + b"/M\xfcller"
    os.makedirs(folder)
    shutil.copyfile(get_testdata_file("CT_small.dcm"), folder + b"/CT \xe9t\xe9.dcm")
    out = tmp_path / "out"
    first = invoke_cli("scrub", str(tmp_path / "in"), "--out", str(out), "--workers", "1")
    again = invoke_cli("scrub", str(tmp_path / "in"), "--out", str(out), "--workers", "1")
    assert "1 deidentified" in first
    assert "1 already done (skipped)" in again
    assert len(list(out.rglob("*.dcm"))) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_what_is_neither_file_nor_folder_is_quarantined_not_skipped(tmp_path, workers):
    """A broken link, a FIFO (which a plain open would wait on for ever) and a socket each get a
    manifest row, as the harvest gives them an error row; a link to a file is scrubbed through."""
    import socket

    from pydicom.data import get_testdata_file

    source = tmp_path / "in"
    source.mkdir()
    shutil.copyfile(get_testdata_file("CT_small.dcm"), source / "ct.dcm")
    (source / "broken.dcm").symlink_to(tmp_path / "unmounted" / "mr.dcm")
    os.mkfifo(source / "fifo")
    out = tmp_path / "out"
    with socket.socket(socket.AF_UNIX) as unix_socket:
        unix_socket.bind(str(source / "socket"))
        invoke_cli("scrub", str(source), "--out", str(out), "--workers", workers)
    names = {source_key(str(source.resolve() / name), TEST_DEID_KEY): name for name in os.listdir(source)}
    rows = {names[r["source_key"]]: (r["outcome"], r["error_class"]) for r in read_manifest(out)}
    assert rows == {
        "ct.dcm": ("deidentified", None),
        "broken.dcm": ("quarantined", "FileNotFoundError"),
        "fifo": ("quarantined", "NotAFile"),
        "socket": ("quarantined", "OSError"),
    }


# explicit and implicit little endian, RLE, JPEG 2000 (one with a sequence delimiter inside a
# fragment), and big endian (never copied raw: the full path)
PIXEL_COPY_FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
                    "JPEG2000-embedded-sequence-delimiter.dcm", "MR_small_bigendian.dcm"]


def _as_original_ct(ds: pydicom.Dataset) -> pydicom.Dataset:
    """An instance no default filter rule removes, with its pixel data as it was."""
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Modality = "CT"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()  # the MR files share one
    return ds


def test_untouched_pixel_data_travels_byte_for_byte_and_nothing_after_it_survives(tmp_path):
    """Without a pixel rule the source's pixel element is copied; an element after it forces a full rewrite."""
    from pydicom.data import get_testdata_file

    from extractor.scrub.instance import read_header, trailing_pixel_element

    inputs = tmp_path / "in"
    inputs.mkdir()
    sources = {}
    for name in PIXEL_COPY_FILES:
        sources[name] = _as_original_ct(pydicom.dcmread(get_testdata_file(name)))
        sources[name].save_as(inputs / name)
        data = (inputs / name).read_bytes()
        raw_copy = trailing_pixel_element(data, read_header(data)[1], str(sources[name].file_meta.TransferSyntaxUID))
        assert (raw_copy is None) == (name == "MR_small_bigendian.dcm"), name  # padding after pixels is fine
    # a private group after the pixel data (7FE1 is above 7FE0): must go, so the raw copy must not apply
    trailing = _as_original_ct(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    trailing.private_block(0x7FE1, "ACME TRAILER", create=True).add_new(0x01, "LO", "SMITH^TRAILING")
    trailing.save_as(inputs / "trailing.dcm")
    data = (inputs / "trailing.dcm").read_bytes()
    _, offset = read_header(data)
    assert trailing_pixel_element(data, offset, str(trailing.file_meta.TransferSyntaxUID)) is None
    sources["trailing.dcm"] = trailing

    out = tmp_path / "out"
    invoke_cli("scrub", str(inputs), "--out", str(out), "--workers", "1")
    rows = read_manifest(out)
    assert len(rows) == len(sources) and all(r["outcome"] == "deidentified" for r in rows), rows
    outputs = [pydicom.dcmread(p) for p in out.rglob("*.dcm") if MANIFEST_FOLDER not in p.parts]
    for name, source in sources.items():
        matches = [ds for ds in outputs if ds.PixelData == source.PixelData]
        assert matches, f"{name}: no output holds its pixel data unchanged"
        scrubbed = matches[0]
        assert scrubbed.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
        assert scrubbed.PatientIdentityRemoved == "YES" and scrubbed.SOPInstanceUID != source.SOPInstanceUID
        if name != "JPEG2000-embedded-sequence-delimiter.dcm":  # its codestream is not decodable at the source either
            assert scrubbed.pixel_array.shape == source.pixel_array.shape  # decodes: the element arrived whole
    assert not any(b"SMITH^TRAILING" in p.read_bytes() for p in out.rglob("*.dcm"))


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm",
                                  "image_dfl.dcm", "rtplan.dcm", "SC_rgb_rle.dcm"])
def test_encode_file_writes_what_dcmwrite_writes(name):
    """The scrubber's file encoder against pydicom's own, on every encoding it meets."""
    from pydicom.data import get_testdata_file

    from extractor.scrub.instance import encode_file
    from extractor.scrub.metadata.apply import regenerate_file_meta

    ds = pydicom.dcmread(get_testdata_file(name))
    regenerate_file_meta(ds, strict=False)
    reference = io.BytesIO()
    pydicom.dcmwrite(reference, ds, enforce_file_format=True)
    assert encode_file(ds) == reference.getvalue()


def test_folder_sink_links_unnamed_files_and_replaces_an_existing_one(tmp_path):
    sink = sinks.FolderSink(tmp_path / "out")
    sink.write("a/b.dcm", b"first", memoryview(b" part"))
    sink.write("a/b.dcm", b"second")  # a file left by an interrupted run is replaced (by the rename)
    sink.write("a/c.dcm", b"")
    assert (tmp_path / "out/a/b.dcm").read_bytes() == b"second"
    assert (tmp_path / "out/a/c.dcm").read_bytes() == b""
    assert sorted(p.name for p in (tmp_path / "out/a").iterdir()) == ["b.dcm", "c.dcm"]
    if sinks._O_TMPFILE:
        assert sink._unnamed is True  # Linux: the unnamed files worked, and still do after the replace


def _output_digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.dcm"))}


def test_pixel_bytes_copied_in_the_kernel_equal_those_written_from_memory(archive, tmp_path, monkeypatch):
    """Untouched pixel data is copied file to file (copy_file_range); where the kernel cannot,
    or Python has no such call, the bytes read are written: the files are the same either way,
    and whether the inputs are read or mapped (every file mapped, small ones too)."""
    copy_subset(archive, tmp_path / "in", {"CT": 2, "MR": 2, "CR": 1})
    monkeypatch.setenv("IMGOMOP_DEID_KEY", TEST_DEID_KEY)
    copied: list[int] = []
    real_copy = sinks._copy_file_range

    def counting_copy(source, fd, count, offset):
        copied.append(count)
        return real_copy(source, fd, count, offset)

    def refused(source, fd, count, offset):
        raise OSError(18, "Invalid cross-device link (simulated)")

    digests = []
    for name, copy, map_from in [("kernel", counting_copy, None), ("refused", refused, None), ("none", None, None),
                                 ("mapped", counting_copy, 1), ("read", counting_copy, 1 << 40)]:
        with monkeypatch.context() as patch:
            patch.setattr(sinks, "_copy_file_range", copy)
            if map_from is not None:
                patch.setattr(instance, "MAP_FROM_BYTES", map_from)
            invoke_cli("scrub", str(tmp_path / "in"), "--out", str(tmp_path / name), "--workers", "1")
        digests.append(_output_digests(tmp_path / name))
    assert copied and min(copied) > 10_000  # the pixel data went through the kernel copy
    assert digests[0] and all(d == digests[0] for d in digests)


def test_a_source_cut_short_while_it_is_copied_is_quarantined(archive, tmp_path, monkeypatch):
    """Pixel data is copied from the source in the kernel; a source that shrank since it was read
    (or mapped) must not be completed from memory, nor crash the run: the instance is quarantined."""
    copy_subset(archive, tmp_path / "in", {"CT": 1})
    monkeypatch.setenv("IMGOMOP_DEID_KEY", TEST_DEID_KEY)
    real_copy = sinks._copy_file_range

    def short_source(source, fd, count, offset):
        return real_copy(source, fd, min(count, 100), offset) if count > 100 else 0

    monkeypatch.setattr(sinks, "_copy_file_range", short_source)
    invoke_cli("scrub", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--workers", "1")
    rows = read_manifest(tmp_path / "out")
    assert [(r["outcome"], r["error_class"], r["output"]) for r in rows] == [("quarantined", "OSError", None)]
    assert not [p for p in (tmp_path / "out").rglob("*.dcm")]


def test_spread_interleaves_stretches_and_keeps_every_chunk_once():
    from extractor.scrub.run import spread

    chunks = [[f"job{i}"] for i in range(7)]
    assert spread(chunks, 2) == [chunks[i] for i in (0, 4, 1, 5, 2, 6, 3)]  # the two halves, taken in turn
    assert sorted(spread(chunks, 3)) == sorted(chunks) and spread(chunks, 1) == chunks and spread(chunks[:1], 4) == chunks[:1]
