"""`imgomop review`: the QA report of a scrub run, checked as a reviewer would meet it.

The demo warehouse is copied, a cohort is scrubbed into the copy, and both versions of the
report are written. The full report is opened in headless Chromium (Debian's chromium and
chromium-driver, installed by scripts/setup-browser.sh); the scrubbed-only one is searched for
every identifier of the answer key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pydicom
import pytest
from conftest import invoke_cli, write_duckdb_config
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from typer.testing import CliRunner

from extractor.cli import app
from extractor.review.diff import compare, phi_counts
from extractor.review.images import file_window, render, thumbnail_png

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
COHORT = "SELECT image_occurrence_id FROM image_occurrence WHERE modality_source_value IN ('CT', 'US', 'MR')"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


# --- the metadata comparison -------------------------------------------------------------


def _dataset(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, Sequence([_dataset(**item) for item in value]) if isinstance(value, list) else value)
    return ds


CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _pair() -> tuple[Dataset, Dataset]:
    """An original header and what a scrub could make of it."""
    original = _dataset(
        PatientName="Doe^Jane", PatientID="MRN12345", OtherPatientIDs="OTHER-99", StudyDate="20200105",
        StudyTime="101500", InstitutionName="General Hospital", SOPInstanceUID="1.2.3.4", Modality="CT",
        StudyDescription="CT CHEST JANE DOE", ReferringPhysicianName="HARRIS^CHRISTOPHER^^^MD",
        ReferencedImageSequence=[{"ReferencedSOPInstanceUID": "1.2.3.5", "ReferencedSOPClassUID": CT_IMAGE}],
    )  # fmt: skip
    scrubbed = _dataset(
        PatientName="6938795562390187", PatientID="6938795562390187", StudyDate="20191211", StudyTime="",
        SOPInstanceUID="2.25.1234", Modality="CT", StudyDescription="CT CHEST [X] [X]", PatientIdentityRemoved="YES",
        ReferringPhysicianName="",
        ReferencedImageSequence=[{"ReferencedSOPInstanceUID": "2.25.5678", "ReferencedSOPClassUID": CT_IMAGE}],
    )  # fmt: skip
    return original, scrubbed


def test_diff_sorts_every_attribute_into_its_change_category():
    changes = {c.path: c for c in compare(*_pair())}
    assert {path: c.change for path, c in changes.items()} == {
        "PatientName": "replaced",
        "PatientID": "replaced",
        "OtherPatientIDs": "removed",
        "StudyDate": "shifted",
        "StudyTime": "emptied",
        "InstitutionName": "removed",
        "SOPInstanceUID": "hashed",
        "Modality": "kept",
        "StudyDescription": "replaced",
        "ReferencedImageSequence[0].ReferencedSOPInstanceUID": "hashed",
        "ReferencedImageSequence[0].ReferencedSOPClassUID": "kept",
        "PatientIdentityRemoved": "added",
        "ReferringPhysicianName": "emptied",  # an empty PersonName, not a replacement
    }
    assert changes["OtherPatientIDs"].original == "OTHER-99" and changes["OtherPatientIDs"].scrubbed is None
    assert changes["PatientIdentityRemoved"].original is None


def test_a_sequence_removed_or_emptied_is_one_change():
    original, scrubbed = _pair()
    del scrubbed.ReferencedImageSequence
    assert [c.change for c in compare(original, scrubbed) if c.path.startswith("ReferencedImageSequence")] == ["removed"]
    scrubbed.ReferencedImageSequence = Sequence([])
    assert [c.change for c in compare(original, scrubbed) if c.path.startswith("ReferencedImageSequence")] == ["emptied"]


def test_changed_attributes_are_counted_by_phi_category():
    counts = phi_counts(compare(*_pair()))
    assert counts == {
        "names": 2,  # PatientName, ReferringPhysicianName
        "IDs": 2,  # PatientID, OtherPatientIDs
        "dates and times": 2,  # StudyDate, StudyTime
        "institutions": 1,
        "UIDs": 2,  # SOPInstanceUID and the referenced one
        "free text": 1,  # StudyDescription
    }


# --- the thumbnails -----------------------------------------------------------------------


def test_monochrome1_is_drawn_inverted():
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    normal = render(ds).image
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = render(ds).image
    assert np.array_equal(inverted, 255 - normal)


def test_the_files_window_is_used_after_the_rescale():
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")  # RescaleIntercept -1024, no window
    assert file_window(ds) is None and render(ds).window.source == "percentile"
    ds.WindowCenter, ds.WindowWidth = 40, 400  # soft tissue, in Hounsfield units
    shown = render(ds)
    hounsfield = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert shown.window.source == "file" and (shown.window.low, shown.window.high) == (-160, 240)
    assert np.array_equal(shown.image == 0, hounsfield <= -160)
    assert np.array_equal(shown.image == 255, hounsfield >= 240)


def test_multi_frame_shows_the_middle_frame_and_colour_stays_colour():
    ds = pydicom.dcmread(TEST_FILES / "SC_rgb_rle_2frame.dcm")
    shown = render(ds)
    assert (shown.frame, shown.frames) == (1, 2)
    assert np.array_equal(shown.image, ds.pixel_array[1])
    # the same colour test pattern stored as YBR_FULL_422 and as RGB: drawn alike
    ybr = render(pydicom.dcmread(TEST_FILES / "SC_ybr_full_422_uncompressed.dcm")).image
    rgb = render(pydicom.dcmread(TEST_FILES / "SC_rgb_rle.dcm")).image
    assert ybr.shape == rgb.shape == (100, 100, 3)
    assert np.abs(ybr.astype(int) - rgb.astype(int)).max() <= 8
    assert tuple(ybr[0, 50]) == (254, 0, 0)  # the top band is red, not a YBR triple


def test_thumbnails_are_small_pngs_with_the_regions_outlined():
    from io import BytesIO

    from PIL import Image

    png = thumbnail_png(np.zeros((512, 640), dtype=np.uint8), [(0, 0, 640, 100)])
    picture = Image.open(BytesIO(png)).convert("RGB")
    assert picture.size == (256, 205)
    assert picture.getpixel((128, 0))[0] > 200 and picture.getpixel((128, 20)) == (0, 0, 0)


# --- the report of a real scrub run -------------------------------------------------------


@pytest.fixture(scope="module")
def scrubbed(built_demo, tmp_path_factory):
    """A copy of the demo warehouse with one cohort scrub run recorded in it."""
    root = tmp_path_factory.mktemp("review")
    shutil.copytree(built_demo.identified.parent, root / "warehouse", ignore=shutil.ignore_patterns("dbt"))
    config = write_duckdb_config(root)
    output = invoke_cli("scrub", "--cohort", COHORT, "--out", str(root / "extract"), "--config", str(config), "--workers", "2")
    run_id = re.search(r"scrub (\S+):", output).group(1)
    return root, config, run_id


@pytest.fixture(scope="module")
def reports(scrubbed):
    root, config, _ = scrubbed
    full = invoke_cli("review", "--out", str(root / "review"), "--config", str(config))
    only = invoke_cli("review", "--out", str(root / "review-scrubbed"), "--scrubbed-only", "--config", str(config))
    return root / "review", root / "review-scrubbed", full, only


def _manifest(identified: Path, run_id: str) -> list[tuple]:
    con = duckdb.connect(str(identified), read_only=True)
    try:
        return con.execute(
            """
            SELECT r.manufacturer, r.manufacturer_model_name, r.image_rows, r.image_columns, m.outcome, m.rule,
                   m.regions, m.location, m.source_key
            FROM scrub_manifest m JOIN raw_dicom_instance r USING (location) WHERE m.run_id = ?
            """,
            [run_id],
        ).fetchall()
    finally:
        con.close()


def test_the_full_report_says_on_its_first_line_that_it_holds_identified_data(reports):
    full_dir, only_dir, full_output, only_output = reports
    first_line = (full_dir / "index.html").read_text().splitlines()[0]
    assert "IDENTIFIED DATA" in first_line
    assert "Scrubbed-only" in (only_dir / "index.html").read_text().splitlines()[0]
    assert "PHI" in full_output and "PHI" not in only_output


def _identifiers(key: dict, relative_files: set[str], dates: bool) -> set[str]:
    """The answer key's PHI of these files (their MRN, accession, UIDs and injected values);
    original dates only when asked (a shifted date of one file may equal an original one of another)."""
    values = {e["value"] for e in key["phi"] if e["file"] in relative_files and (e["category"] == "date") == dates}
    for f in key["files"]:
        if f["file"] in relative_files:
            if dates:
                values |= {f["birth_date"].replace("-", ""), f["study_date"].replace("-", "")}
            else:
                values |= {f["patient_mrn"], f["accession"], f["study_uid"], f["series_uid"], f["sop_uid"]}
    return {str(v) for v in values if v and len(str(v)) >= 4}


def _assert_absent(values: set[str], text: str, where: str) -> None:
    text = text.upper()
    for value in values:
        if value.upper() not in text:  # the quick test first; then as a whole word
            continue
        pattern = rf"(?<![A-Z0-9.]){re.escape(value.upper())}(?![A-Z0-9.])"
        assert not re.search(pattern, text), f"{value!r} appears in {where}"


def test_the_scrubbed_only_report_holds_no_original_value_or_image(reports, scrubbed, built_demo):
    full_dir, only_dir, *_ = reports
    root, _, run_id = scrubbed
    html = (only_dir / "index.html").read_text()
    manifest = _manifest(root / "warehouse" / "identified.duckdb", run_id)
    demo_root = built_demo.archive.root
    relative = {row[8]: str(Path(row[7]).relative_to(demo_root)) for row in manifest}  # source_key -> file
    key = json.loads(built_demo.archive.answer_key.read_text())
    identifiers = _identifiers(key, set(relative.values()), dates=False)
    assert len(identifiers) > 100
    _assert_absent(identifiers, html, "the scrubbed-only report")
    samples = re.findall(r'<div class="sample".*?input key <code>(\w+)</code>(.*?)(?=<div class="sample"|</section>)', html, re.S)
    assert len(samples) > 10
    for source_key, block in samples:  # each sample's original dates, in its own block
        _assert_absent(_identifiers(key, {relative[source_key]}, dates=True), block, f"the sample of {relative[source_key]}")
    assert str(demo_root) not in html  # no original location either
    # no original picture: no original image file, no original <img>, and none of the full
    # report's originals of pixel-scrubbed samples (the scrubbed ones differ where text was)
    assert not list(only_dir.rglob("*original*")) and 'data-side="original"' not in html
    only_pngs = {p.read_bytes() for p in (only_dir / "images").glob("*.png")}
    full_scrubbed = {p.read_bytes() for p in (full_dir / "images").glob("*-scrubbed.png")}
    assert only_pngs and only_pngs <= full_scrubbed
    pixel_scrubbed_originals = {(full_dir / pair[0]).read_bytes() for pair in _pixel_scrubbed_pairs(full_dir)}
    assert pixel_scrubbed_originals
    assert not only_pngs & pixel_scrubbed_originals


def _pixel_scrubbed_pairs(report: Path) -> list[tuple[str, str, list[list[int]], int]]:
    """(original image, scrubbed image, regions, image columns) of the samples whose pixels were scrubbed."""
    html = (report / "index.html").read_text()
    pairs = []
    for columns, section in re.findall(r'<section class="group"[^>]*data-columns="(\d+)"[^>]*>(.*?)</section>', html, re.S):
        for regions, original, scrubbed in re.findall(
            r'regions ([^<]*)</h3>.*?<img src="(images/[^"]+-original\.png)".*?<img src="(images/[^"]+-scrubbed\.png)"',
            section,
            re.S,
        ):
            pairs.append((original, scrubbed, json.loads(f"[{regions}]"), int(columns)))
    return pairs


def test_blanked_regions_are_outlined_and_black_on_the_scrubbed_side(reports):
    from PIL import Image

    full_dir, *_ = reports
    pairs = _pixel_scrubbed_pairs(full_dir)
    assert len(pairs) >= 3
    for original_src, scrubbed_src, regions, columns in pairs:
        original = np.asarray(Image.open(full_dir / original_src).convert("RGB")).astype(int)
        scrubbed = np.asarray(Image.open(full_dir / scrubbed_src).convert("RGB")).astype(int)
        scale = scrubbed.shape[1] / columns
        for x, y, w, h in regions:
            left, top, right, bottom = (round(v * scale) for v in (x, y, x + w, y + h))
            assert tuple(scrubbed[top, (left + right) // 2]) == (255, 48, 48), scrubbed_src  # the red frame
            inside = (slice(top + 3, bottom - 3), slice(left + 3, right - 3))
            assert scrubbed[inside].max() == 0, scrubbed_src  # blank under the frame
            assert original[inside].max() > 100, original_src  # the burned-in text was there


def test_the_full_report_shows_originals_and_their_values(reports, built_demo):
    full_dir, *_ = reports
    html = (full_dir / "index.html").read_text()
    assert 'data-side="original"' in html and list((full_dir / "images").glob("*-original.png"))
    assert str(built_demo.archive.root) in html  # original locations: this one is the identified report
    assert '<th>original</th>' in html  # the inspector's original values


def test_review_refuses_a_folder_inside_the_extract(scrubbed):
    root, config, _ = scrubbed
    result = CliRunner().invoke(app, ["review", "--out", str(root / "extract" / "qa"), "--config", str(config)])
    assert result.exit_code == 2 and "inside the scrubbed extract" in result.output
    assert not (root / "extract" / "qa").exists()


def test_review_names_the_runs_when_the_run_is_unknown(scrubbed):
    root, config, run_id = scrubbed
    result = CliRunner().invoke(app, ["review", "--out", str(root / "nope"), "--run", "no-such-run", "--config", str(config)])
    assert result.exit_code == 2 and "no-such-run" in result.output and run_id in result.output


def test_review_takes_the_latest_run_unless_told(scrubbed, tmp_path):
    root, _, first_run = scrubbed
    shutil.copytree(root / "warehouse", tmp_path / "warehouse", ignore=shutil.ignore_patterns("dbt"))
    config = write_duckdb_config(tmp_path)
    cohort = "SELECT image_occurrence_id FROM image_occurrence WHERE modality_source_value = 'CT'"
    second = invoke_cli("scrub", "--cohort", cohort, "--out", str(tmp_path / "extract"), "--config", str(config), "--workers", "2")
    second_run = re.search(r"scrub (\S+):", second).group(1)
    latest = invoke_cli("review", "--out", str(tmp_path / "latest"), "--scrubbed-only", "--config", str(config))
    chosen = invoke_cli("review", "--out", str(tmp_path / "first"), "--run", first_run, "--scrubbed-only", "--config", str(config))
    assert second_run in latest and first_run in chosen
    latest_html = (tmp_path / "latest" / "index.html").read_text()
    assert "Aplio" not in latest_html and "Aplio" in (tmp_path / "first" / "index.html").read_text()  # an ultrasound


# --- the page as a person sees it ---------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's headless Chromium through its chromedriver; Selenium Manager downloads nothing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium or chromedriver missing: run scripts/setup-browser.sh (as root)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1800",
    ):  # fmt: skip
        options.add_argument(argument)
    profile = tempfile.mkdtemp(dir=tmp_path_factory.mktemp("chromium"))
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_report_renders_in_a_browser_with_its_images_groups_and_counts(reports, scrubbed, browser, tmp_path):
    full_dir, *_ = reports
    root, _, run_id = scrubbed
    browser.get((full_dir / "index.html").as_uri())
    browser.execute_script("return document.readyState")

    screenshot = tmp_path / "review.png"
    assert browser.save_screenshot(str(screenshot))
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000

    assert browser.find_element("id", "notice").text.startswith("IDENTIFIED DATA")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);"
    )
    assert len(images) > 20
    assert all(complete and width > 0 for _, complete, width in images), [i for i in images if not i[2]]

    manifest = _manifest(root / "warehouse" / "identified.duckdb", run_id)
    expected: dict[tuple, dict[str, int]] = {}
    for manufacturer, model, rows, columns, outcome, *_ in manifest:
        counts = expected.setdefault((manufacturer, model, rows, columns), {"deidentified": 0, "filtered": 0, "quarantined": 0})
        counts[outcome] += 1
    sections = browser.execute_script(
        """return Array.from(document.querySelectorAll('section.group')).map(s => ({
            key: [s.dataset.manufacturer, s.dataset.model, +s.dataset.rows, +s.dataset.columns],
            counts: {deidentified: +s.dataset.deidentified, filtered: +s.dataset.filtered, quarantined: +s.dataset.quarantined},
            instances: +s.dataset.instances, title: s.querySelector('h2').innerText}));"""
    )
    shown = {tuple(s["key"]): s["counts"] for s in sections}
    assert shown == expected
    for section in sections:
        manufacturer, model, rows, columns = section["key"]
        assert manufacturer in section["title"] and model in section["title"] and f"{rows} x {columns}" in section["title"]
        assert section["instances"] == sum(section["counts"].values())

    metrics = browser.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('.metric')).map("
        "m => [m.dataset.metric, m.querySelector('.value').innerText.replace(/,/g, '')]));"
    )
    outcomes = [row[4] for row in manifest]
    assert int(metrics["instances"]) == len(manifest)
    for outcome in ("deidentified", "filtered", "quarantined"):
        assert int(metrics[outcome]) == outcomes.count(outcome)
    assert int(metrics["groups"]) == len(expected)
    assert int(metrics["pixel-scrubbed"]) == sum(1 for row in manifest if row[4] == "deidentified" and json.loads(row[6] or "[]"))
    filtered_rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#filtered-by-rule tr[data-key]')).map(r => [r.cells[0].innerText, +r.cells[1].innerText]);"
    )
    expected_filtered: dict[str, int] = {}
    for row in manifest:
        if row[4] == "filtered":
            expected_filtered[row[5]] = expected_filtered.get(row[5], 0) + 1
    assert dict(filtered_rows) == expected_filtered and expected_filtered
    burned = browser.execute_script(
        "return +Array.from(document.querySelectorAll('#phi-categories tr')).find(r => r.dataset.category === 'burned-in text').dataset.instances;"
    )
    assert burned == int(metrics["pixel-scrubbed"]) > 0
