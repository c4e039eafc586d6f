"""The fast header path writes exactly what the pydicom path writes (a differential test).

``scrub_instance(..., reference=True)`` is the pydicom path all the way: dcmread, the walker over
every element, pydicom's writer. The default path first tries the raw path (extractor.scrub.raw:
no Dataset of the whole header), else reads the header with extractor.scrub.header, settles most
elements by tag (extractor.scrub.metadata.settled) and writes raw elements as their bytes. For every file pydicom bundles and every file of a demo archive, under every shipped
profile, in folder mode and with cohort-mode parameters, both must end in the same outcome and
write byte-identical files. Where the fast reader or writer does not handle a file it hands it to
pydicom; the test also checks that it does handle the common files, so it cannot pass by
declining everything.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from bad_dicom import damaged
from conftest import TEST_DEID_KEY

from extractor.demo_data import make_demo_archive
from extractor.scrub.header import encode_file_fast, plain_string, plain_text, read_header_fast
from extractor.scrub import instance, raw
from extractor.scrub.instance import ScrubJob, ScrubSettings, compile_settings, encode_file, read_header, scrub_instance
from extractor.scrub.metadata import regenerate_file_meta, shipped_profile_names
from extractor.scrub.metadata.apply import byte_transparent
from extractor.scrub.metadata.settled import _OUTCOMES
from extractor.scrub.settings import ALLOWLIST, DEFAULT_PIXEL_SCRIPTS, PROFILES_DIR

PYDICOM_FILES = sorted(p for p in (Path(pydicom.__file__).parent / "data" / "test_files").rglob("*") if p.is_file())
COHORT_PARAMETERS = (("PatientID", "P000123"), ("PatientName", "SUBJECT^123"), ("AccessionNumber", "A77"),
                     ("StudyDescription", "CT CHEST"), ("SeriesDescription", "AXIAL"))


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> list[Path]:
    archive = make_demo_archive(tmp_path_factory.mktemp("header") / "demo", seed=3, patients=10)
    return sorted(p for p in archive.dicom_dir.rglob("*") if p.is_file())


def _settings(profile: str, out: Path) -> ScrubSettings:
    return ScrubSettings(
        profile_path=str(PROFILES_DIR / f"{profile}.toml"),
        destination=str(out),
        key=TEST_DEID_KEY,
        allowlist_path=str(ALLOWLIST),
        pixel_scripts=tuple(str(p) for p in DEFAULT_PIXEL_SCRIPTS),
    )


def _compare(files: list[Path], profile: str, tmp_path: Path, parameters: tuple = ()) -> list[str]:
    """Scrub every file both ways; return the differences (empty when the paths agree)."""
    fast_settings, reference_settings = _settings(profile, tmp_path / "fast"), _settings(profile, tmp_path / "reference")
    fast_compiled, reference_compiled = compile_settings(fast_settings), compile_settings(reference_settings)
    differences = []
    for path in files:
        job = ScrubJob(str(path), subject="person:7" if parameters else "", parameters=parameters)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = scrub_instance(job, fast_settings, fast_compiled)
            reference = scrub_instance(job, reference_settings, reference_compiled, reference=True)
        fast_row, reference_row = asdict(fast), asdict(reference)
        for row, root in ((fast_row, "fast"), (reference_row, "reference")):
            row.pop("seconds")
            row["output"] = row["output"] and Path(row["output"]).relative_to(tmp_path / root).as_posix()
        if fast_row != reference_row:
            differences.append(f"{path.name}: outcome {fast_row} != {reference_row}")
        elif fast.output and Path(fast.output).read_bytes() != Path(reference.output).read_bytes():
            differences.append(f"{path.name}: the written files differ")
    return differences


@pytest.mark.parametrize("profile", shipped_profile_names())
def test_pydicom_test_files_scrub_identically(profile: str, tmp_path: Path) -> None:
    assert _compare(PYDICOM_FILES, profile, tmp_path) == []


@pytest.mark.parametrize("profile", shipped_profile_names())
def test_demo_archive_scrubs_identically(profile: str, demo_files: list[Path], tmp_path: Path) -> None:
    assert _compare(demo_files, profile, tmp_path) == []
    assert _compare(demo_files, profile, tmp_path / "cohort", COHORT_PARAMETERS) == []


def test_fast_reader_reads_what_pydicom_reads(demo_files: list[Path]) -> None:
    """The same elements (raw bytes, offsets, decoded sequences), file meta and encoding as dcmread."""
    read = 0
    for path in PYDICOM_FILES + demo_files:
        data = path.read_bytes()
        fast = read_header_fast(data)
        if fast is None:
            continue
        read += 1
        ds, offset = fast
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference, reference_offset = read_header(data)
        assert offset == reference_offset, path.name
        assert list(ds._dict) == list(reference._dict), path.name
        for tag, elem in reference._dict.items():
            assert type(ds._dict[tag]) is type(elem) and ds._dict[tag] == elem, (path.name, tag)
        assert {tag: ds.file_meta[tag].value for tag in ds.file_meta._dict} == {
            tag: reference.file_meta[tag].value for tag in reference.file_meta._dict}, path.name
        assert (ds.preamble, ds.original_encoding, ds.original_character_set) == (
            reference.preamble, reference.original_encoding, reference.original_character_set), path.name
    assert read >= 150 + len(demo_files) * 9 // 10  # declines only what it does not handle


def test_fast_writer_writes_what_pydicom_writes(demo_files: list[Path]) -> None:
    """Whole headers (not scrubbed: every kind of element), read by pydicom, written both ways."""
    written = 0
    for path in PYDICOM_FILES + demo_files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds, _ = read_header(path.read_bytes())
                regenerate_file_meta(ds, key=TEST_DEID_KEY, strict=False)
                fast = encode_file_fast(ds)  # first: pydicom's writer adds the group length to ds.file_meta
                reference = encode_file(ds)
            except Exception:  # noqa: BLE001 - files pydicom cannot write are not this test's business
                continue
        if fast is not None:
            written += 1
            assert fast == reference, path.name
    assert written >= 150 + len(demo_files) * 9 // 10  # hands back only what it does not handle


@pytest.mark.parametrize(("script", "skips"), [
    ('Modality.equals("CT")', True),
    ('[0019[GEMS_ACQU_01]10].equals("x")', False),  # a private element by its creator
    ('[0009,1001].equals("x")', False),  # a private element by its tag
])
def test_private_elements_are_read_when_a_script_reads_them(script: str, skips: bool, tmp_path: Path) -> None:
    """The fast reader leaves private elements out only when nothing would see them."""
    path = tmp_path / "allow.script"
    path.write_text(script)
    settings = ScrubSettings(profile_path=str(PROFILES_DIR / "pre-irb.toml"), destination=str(tmp_path / "out"),
                             key=TEST_DEID_KEY, allowlist_path=str(ALLOWLIST), allow_scripts=(str(path),))
    assert compile_settings(settings).skip_private is skips
    safe_private = ScrubSettings(profile_path=str(PROFILES_DIR / "post-irb-limited.toml"), destination=str(tmp_path / "out"),
                                 key=TEST_DEID_KEY, allowlist_path=str(ALLOWLIST))
    assert compile_settings(safe_private).skip_private is False  # it keeps the safe ones


def _readable_headers(paths: list[Path]) -> Iterator[tuple[Path, Dataset]]:
    """(path, header dataset) of each file the header reader reads; other files are skipped."""
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds, _ = read_header(path.read_bytes())
            except Exception:  # noqa: BLE001 - not a DICOM file
                continue
        yield path, ds


def test_plain_values_read_as_pydicom_decodes_and_writes_them(demo_files: list[Path]) -> None:
    """Where plain_text reads a UI or CS value without decoding it, pydicom decodes the same
    values and writes back the same bytes, so leaving the element undecoded changes nothing."""
    read = set()
    for path, ds in _readable_headers(PYDICOM_FILES + demo_files):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for dataset in (ds, ds.file_meta):
                implicit = dataset.original_encoding[0] if dataset is ds else False  # as write_dataset writes it
                for tag in list(dataset._dict):
                    text = plain_text(dataset, tag)
                    if text is None:
                        continue
                    raw = dataset._dict[tag]
                    decoded = dataset[tag]
                    read.add(decoded.VR)
                    values = decoded.value if isinstance(decoded.value, MultiValue) else [decoded.value]
                    assert "\\".join(str(v) for v in values) == text, (path.name, tag)
                    assert _written(raw, implicit) == _written(decoded, implicit), (path.name, tag)
    assert read == {"UI", "CS"}


def _written(elem, implicit: bool) -> bytes:
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, implicit
    write_data_element(out, elem)
    return out.getvalue()


def test_plain_strings_read_as_pydicom_decodes_them(demo_files: list[Path]) -> None:
    """Where plain_string reads an SH or LO value without decoding it, pydicom decodes it to the
    same text (the subject and the filters read such values; left raw, the walker's outcome for
    them can be remembered)."""
    read = set()
    for path, ds in _readable_headers(PYDICOM_FILES + demo_files):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transparent = byte_transparent(ds)
            for tag in list(ds._dict):
                text = plain_string(ds, tag, transparent)
                if text is None:
                    continue
                read.add(ds._dict[tag].VR)
                assert ds[tag].value == text, (path.name, tag)
    assert read == {"SH", "LO"}


def test_decoded_ascii_outcomes_are_remembered(demo_files: list[Path], tmp_path: Path) -> None:
    """Values the walker decodes (PatientID, AccessionNumber: hashed as exact text) are remembered
    as the bytes pydicom writes, so the files after the first of a study skip the walker for them;
    the differential tests above check the bytes written from memory."""
    settings = _settings("pre-irb", tmp_path / "out")
    compiled = compile_settings(settings)
    for path in demo_files[:20]:
        scrub_instance(ScrubJob(str(path), subject=""), settings, compiled)
    remembered = {key[0] for _, contexts in _OUTCOMES.values() for outcomes in contexts.values()
                  for key, outcome in outcomes.items() if isinstance(outcome, tuple)}
    assert {0x00100020, 0x00080050} <= remembered


def test_raw_path_takes_the_common_files(demo_files: list[Path], tmp_path: Path, monkeypatch) -> None:
    """The raw path handles most demo files (so the differential tests above check it), and the
    Dataset path still handles the files it declines."""
    from extractor.scrub import instance

    taken = []
    scrub_raw = instance.scrub_raw
    monkeypatch.setattr(instance, "scrub_raw", lambda *args: taken.append(scrub_raw(*args)) or taken[-1])
    settings = _settings("pre-irb", tmp_path / "out")
    compiled = compile_settings(settings)
    outcomes = [scrub_instance(ScrubJob(str(path), subject=""), settings, compiled).outcome for path in demo_files]
    assert sum(raw is not None for raw in taken) >= len(demo_files) // 2
    assert outcomes.count("deidentified") > sum(raw is not None and raw.filtered is None for raw in taken)


def test_a_long_element_header_cut_by_the_end_of_the_file_goes_to_pydicom(tmp_path: Path) -> None:
    """The fast reader declines (it does not quarantine) a header whose last element header
    stops inside its 4-byte length; pydicom's reading decides the outcome, on both paths."""
    data = (Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm").read_bytes()
    _, pixel_offset = read_header(data)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:pixel_offset] + b"\x29\x00\x10\x10OB\x00\x00\x05\x00")  # (0029,1010) OB, length cut
    assert _compare([cut], "pre-irb", tmp_path) == []


def _outcomes_and_files(files: list[Path], out: Path) -> list[tuple[dict, bytes | None]]:
    """Each file scrubbed with the pre-IRB profile: its outcome (no timing, no location) and the bytes written."""
    settings = _settings("pre-irb", out)
    compiled = compile_settings(settings)
    rows = []
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = asdict(scrub_instance(ScrubJob(str(path), subject=""), settings, compiled))
        outcome.pop("seconds")
        written = outcome.pop("output")
        rows.append((outcome, written and Path(written).read_bytes()))
    return rows


def test_mapped_inputs_scrub_as_read_ones(demo_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large inputs are mapped rather than read (instance.MAP_FROM_BYTES): with every file mapped,
    every outcome and every written byte are those of files read whole."""
    monkeypatch.setattr(instance, "MAP_FROM_BYTES", 1)
    mapped = _outcomes_and_files(PYDICOM_FILES + demo_files, tmp_path / "mapped")
    monkeypatch.setattr(instance, "MAP_FROM_BYTES", 1 << 40)
    read = _outcomes_and_files(PYDICOM_FILES + demo_files, tmp_path / "read")
    assert mapped == read
    assert sum(1 for outcome, _ in read if outcome["outcome"] == "deidentified") >= 100


def _scan_both_ways(data: bytes) -> tuple:
    """raw._scan in C and in Python, from where the raw path starts it (after the file meta group)."""
    try:
        _, position = raw._read_elements(data, 132, implicit=False, meta=True)
    except Exception:  # noqa: BLE001 - no readable file meta: start right after the preamble
        position = 132
    return raw._scan_in_c(data, position, raw._VR_INFO), raw._scan(data, position)


def test_the_scan_accelerator_is_built() -> None:
    """`pip install .` compiles extractor/scrub/_raw_scan.c (setup.py); without it the raw path is slower."""
    assert raw._scan_in_c is not None, "extractor.scrub._raw_scan is missing: install with a C compiler (gcc)"


def test_the_scan_in_c_finds_what_the_python_scan_finds(demo_files: list[Path]) -> None:
    """Every test file and demo file, and 1,500 damaged copies: the same elements and stop, or
    the same decline (None)."""
    bases = [p for p in PYDICOM_FILES + demo_files if p.stat().st_size < 600_000]
    scanned = 0
    for path in bases:
        in_c, in_python = _scan_both_ways(path.read_bytes())
        assert in_c == in_python, path.name
        scanned += in_python is not None
    assert scanned >= 100
    rng = random.Random(20261207)
    for _ in range(1500):
        in_c, in_python = _scan_both_ways(damaged(rng, rng.choice(bases).read_bytes()))
        assert in_c == in_python


def test_the_raw_path_writes_the_same_files_without_the_scan_accelerator(
    demo_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_c = _outcomes_and_files(demo_files, tmp_path / "c")
    monkeypatch.setattr(raw, "_scan_in_c", None)
    assert _outcomes_and_files(demo_files, tmp_path / "python") == in_c
