"""`imgomop check`: great-expectations on copies of the demo warehouse (real DuckDB files, real GX).

A clean demo warehouse passes; PHI injected into a copy of the de-identified database (a raw
accession number, an MRN, a patient name, an unshifted date, a non-2.25 UID, a name in a
description, a surviving deleted column) fails exactly the critical expectations that guard
against it; thresholds and criticality come from [check]; Data Docs are written.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from conftest import TEST_DEID_KEY, write_duckdb_config
from typer.testing import CliRunner

from extractor.check.rules import RULE_IDS
from extractor.check.settings import CheckConfigError, check_settings
from extractor.cli import app
from extractor.config import parse_config
from extractor.deid.pseudonymize import offset_id


@dataclass(frozen=True)
class Row:
    layer: str
    label: str
    critical: str
    observed: str
    result: str


@dataclass(frozen=True)
class Checked:
    exit_code: int
    output: str
    rows: dict[str, Row]  # by label

    def failing(self) -> dict[str, Row]:
        return {label: row for label, row in self.rows.items() if row.result != "pass"}


@dataclass(frozen=True)
class Site:
    root: Path
    identified: Path
    deidentified: Path

    def config(self, check_toml: str = "") -> Path:
        path = write_duckdb_config(self.root)
        path.write_text(path.read_text() + check_toml)
        return path


@pytest.fixture
def site(tmp_path, built_demo, monkeypatch) -> Site:
    """Copies of the demo warehouse files, the test key, and an empty working directory."""
    (tmp_path / "warehouse").mkdir()
    identified = Path(shutil.copy(built_demo.identified, tmp_path / "warehouse" / "identified.duckdb"))
    deidentified = Path(shutil.copy(built_demo.deidentified, tmp_path / "warehouse" / "deidentified.duckdb"))
    monkeypatch.setenv("IMGOMOP_DEID_KEY", TEST_DEID_KEY)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return Site(tmp_path, identified, deidentified)


def run_check(config: Path, *args: str) -> Checked:
    result = CliRunner().invoke(app, ["check", "--config", str(config), *args])
    if result.exit_code not in (0, 1):
        pytest.fail(f"imgomop check exited {result.exit_code}:\n{result.output}\n{result.exception!r}")
    rows = {}
    for line in result.stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 5 and cells[0] in ("raw", "marts", "deid", "scrub"):
            row = Row(*cells)
            rows[row.label] = row
    return Checked(result.exit_code, result.stdout, rows)


def test_clean_demo_warehouse_passes_every_layer_and_writes_data_docs(site):
    checked = run_check(site.config())
    assert checked.exit_code == 0, checked.output
    assert checked.failing() == {}
    assert {row.layer for row in checked.rows.values()} == {"raw", "marts", "deid"}
    assert len(checked.rows) > 50
    # the demo build has not scrubbed anything yet: the scrub layer says so and does not fail
    assert "scrub: skipped, no scrub_manifest" in checked.output
    index = site.root / "warehouse" / "data_docs" / "index.html"
    assert index.is_file() and f"Data Docs: {index}" in checked.output
    html = index.read_text()
    assert "deid.image_occurrence" in html and "identified.raw_dicom_instance" in html
    assert list(Path.cwd().iterdir()) == []  # the GX context is ephemeral: nothing but the Data Docs


def _image_occurrences(site: Site) -> int:
    con = duckdb.connect(str(site.deidentified), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM image_occurrence").fetchone()[0]
    finally:
        con.close()


def _inject_phi(site: Site) -> None:
    ident = duckdb.connect(str(site.identified), read_only=True)
    accession = ident.execute("SELECT accession_number FROM imaging_order WHERE accession_number IS NOT NULL LIMIT 1").fetchone()[0]
    mrn = ident.execute("SELECT mrn FROM mrn_crosswalk ORDER BY mrn LIMIT 1").fetchone()[0]
    name = ident.execute("SELECT patient_name FROM raw_dicom_instance WHERE patient_name LIKE '%^%' LIMIT 1").fetchone()[0]
    originals = ident.execute("SELECT image_occurrence_id, image_occurrence_date FROM image_occurrence ORDER BY 1 LIMIT 6").fetchall()
    ident.close()
    rows = [offset_id("image_occurrence", original_id, TEST_DEID_KEY) for original_id, _ in originals]
    con = duckdb.connect(str(site.deidentified))
    update = "UPDATE image_occurrence SET {} = ? WHERE image_occurrence_id = ?"
    con.execute(update.format("accession_number"), [f"  {accession.lower()} ", rows[0]])  # padded, other case
    con.execute(update.format("manufacturer"), [mrn, rows[1]])
    con.execute(update.format("image_occurrence_date"), [originals[2][1], rows[2]])
    con.execute(update.format("image_series_uid"), ["1.2.840.99999.1.2", rows[3]])
    con.execute(update.format("series_description"), ["CT CHEST JOHNSON", rows[4]])
    con.execute(update.format("wadors_uri"), ["https://pacs.example.org/studies/1", rows[5]])
    con.execute("UPDATE person SET gender_source_value = ? WHERE person_id = (SELECT min(person_id) FROM person)", [name.replace("^", " ")])
    con.close()


def test_phi_injected_into_the_deidentified_copy_fails_the_critical_expectations(site):
    rows = _image_occurrences(site)
    _inject_phi(site)
    checked = run_check(site.config(), "--layer", "deid")
    assert checked.exit_code == 1, checked.output
    failing = checked.failing()
    expected = {
        "image_occurrence: no identified MRN, accession number, name or UID": "2 rows",
        "person: no identified MRN, accession number, name or UID": "1 row",
        "image_occurrence: image_occurrence_date, image_occurrence_datetime shifted": "1 row",
        "image_occurrence.image_series_uid hashed 2.25 UID": "1 row",
        "image_occurrence.series_description allowlisted words and masks only": "1 row",
        "image_occurrence.wadors_uri deleted": f"1 of {rows} rows",
    }
    assert {label: row.observed for label, row in failing.items()} == expected
    assert {(row.critical, row.result) for row in failing.values()} == {("yes", "FAIL")}
    assert "6 critical failed" in checked.output


def test_a_different_key_pairs_no_row_with_its_original_and_fails(site, monkeypatch):
    monkeypatch.setenv("IMGOMOP_DEID_KEY", "not-the-key-the-warehouse-was-built-with")
    checked = run_check(site.config(), "--layer", "deid")
    assert checked.exit_code == 1
    failing = checked.failing()
    assert failing and all(label.endswith("shifted") for label in failing)
    label = "image_occurrence: image_occurrence_date, image_occurrence_datetime shifted"
    assert failing[label].observed == f"{_image_occurrences(site)} rows"  # no row has an original at that offset


def test_raw_and_mart_problems_fail_their_expectations(site):
    con = duckdb.connect(str(site.identified))
    instances = con.execute("SELECT count(*) FROM raw_dicom_instance").fetchone()[0]
    first, second, third = (r[0] for r in con.execute("SELECT location FROM raw_dicom_instance ORDER BY location LIMIT 3").fetchall())
    con.execute("UPDATE raw_dicom_instance SET sop_instance_uid = (SELECT sop_instance_uid FROM raw_dicom_instance WHERE location = ?) "
                "WHERE location = ?", [first, second])  # fmt: skip
    con.execute("UPDATE raw_dicom_instance SET study_instance_uid = '1.2.840.012.3' WHERE location = ?", [third])
    occurrence = con.execute("SELECT min(image_occurrence_id) FROM image_occurrence").fetchone()[0]
    con.execute("UPDATE image_occurrence SET person_id = 987654321, modality_concept_id = 42 WHERE image_occurrence_id = ?", [occurrence])
    con.close()
    checked = run_check(site.config(), "--layer", "raw", "--layer", "marts")
    assert checked.exit_code == 1
    assert {label: (row.observed, row.result) for label, row in checked.failing().items()} == {
        "raw_dicom_instance.sop_instance_uid unique": (f"2 of {instances} rows", "FAIL"),
        "raw_dicom_instance.study_instance_uid UID syntax": ("1 row", "warn"),  # leading zero; not critical by default
        "image_occurrence.person_id -> person.person_id": ("1 row", "FAIL"),
        "image_occurrence.modality_concept_id known concept or 0": ("1 row", "FAIL"),
    }


def test_thresholds_and_criticality_come_from_the_config(site):
    con = duckdb.connect(str(site.identified), read_only=True)
    errors, instances = con.execute("SELECT (SELECT count(*) FROM raw_harvest_error), (SELECT count(*) FROM raw_dicom_instance)").fetchone()
    con.close()
    rate = errors / (errors + instances)
    assert 0 < rate < 0.05  # the demo archive holds a few files that are not DICOM
    label = f"harvest error rate <= {rate / 2:.1%}"

    strict = run_check(site.config(f"[check]\nmax_harvest_error_rate = {rate / 2}\n"), "--layer", "raw")
    assert strict.exit_code == 1
    assert strict.failing() == {label: Row("raw", label, "yes", f"{rate:.2%}", "FAIL")}

    lenient = run_check(
        site.config(f'[check]\nmax_harvest_error_rate = {rate / 2}\n[check.critical]\n"raw.harvest_error_rate" = false\n'),
        "--layer", "raw",
    )  # fmt: skip
    assert lenient.exit_code == 0
    assert lenient.failing() == {label: Row("raw", label, "no", f"{rate:.2%}", "warn")}
    assert "0 critical failed, 1 warnings" in lenient.output


def test_scrub_manifest_outcomes_and_quarantine_share(site):
    con = duckdb.connect(str(site.identified))
    con.execute(
        "CREATE TABLE scrub_manifest (location VARCHAR, outcome VARCHAR, rule VARCHAR, output VARCHAR, "
        "error_class VARCHAR, error VARCHAR, series_instance_uid VARCHAR, run_id VARCHAR)"
    )
    rows = [(f"/a/{i}.dcm", "deidentified", None, f"/out/{i}.dcm", None, None) for i in range(16)]
    rows += [("/a/sc.dcm", "filtered", "secondary-capture", None, None, None), ("/a/sr.dcm", "filtered", "sop-class", None, None, None)]
    rows += [("/a/bad.dcm", "quarantined", None, None, "PixelError", "cannot decode"), ("/a/lost.dcm", "deidentified", None, None, None, None)]
    con.executemany("INSERT INTO scrub_manifest VALUES (?, ?, ?, ?, ?, ?, '1.2.3', 'run-1')", rows)
    con.close()
    checked = run_check(site.config(), "--layer", "scrub")
    assert checked.exit_code == 1
    assert {label: (row.observed, row.result) for label, row in checked.failing().items()} == {
        "scrub_manifest outcomes known, with rule / error / output": ("1 row", "FAIL"),  # the de-identified row without output
        "quarantined share <= 1.0%": ("5.00%", "FAIL"),
    }
    assert checked.rows["filtered share <= 50.0%"].observed == "10.00%"


def test_usage_errors_exit_2(site, monkeypatch):
    config = site.config()
    runner = CliRunner()
    unknown = runner.invoke(app, ["check", "--config", str(config), "--layer", "pixels"])
    assert unknown.exit_code == 2 and "unknown layer pixels" in unknown.output
    bad = runner.invoke(app, ["check", "--config", str(site.config("[check]\nmax_quarantine_rate = 5\n"))])
    assert bad.exit_code == 2 and "[check] max_quarantine_rate must be a number from 0 to 1" in bad.output
    monkeypatch.delenv("IMGOMOP_DEID_KEY")
    no_key = runner.invoke(app, ["check", "--config", str(site.config()), "--layer", "deid"])
    assert no_key.exit_code == 2 and "IMGOMOP_DEID_KEY is not set" in no_key.output
    site.deidentified.unlink()
    missing = runner.invoke(app, ["check", "--config", str(config), "--layer", "deid"])
    assert missing.exit_code == 2 and f"{site.deidentified}: no such warehouse file" in missing.output


# --- settings (no warehouse) -------------------------------------------------------------------


def _settings(toml_check: dict, tmp_path: Path):
    return check_settings(parse_config({"check": toml_check}, tmp_path / "imgomop.toml"))


def test_settings_defaults_sit_next_to_the_identified_data(tmp_path):
    settings = _settings({}, tmp_path)
    assert settings.data_docs_dir == tmp_path.resolve() / "warehouse" / "data_docs"
    assert settings.thresholds["min_linkage_rate"] == 0.95  # the dbt var linkage_min_rate
    assert set(settings.critical) == set(RULE_IDS) and settings.critical["raw.uid_syntax"] is False


def test_settings_accept_dotted_and_quoted_rule_keys_and_relative_folders(tmp_path):
    settings = _settings({"data_docs_dir": "qa/docs", "critical": {"raw": {"uid_syntax": True}, "scrub.filtered_rate": True}}, tmp_path)
    assert settings.data_docs_dir == tmp_path.resolve() / "qa" / "docs"
    assert settings.critical["raw.uid_syntax"] and settings.critical["scrub.filtered_rate"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_quarantine": 0.1}, "[check] has unknown key(s) max_quarantine"),
        ({"min_linkage_rate": "high"}, "[check] min_linkage_rate must be a number from 0 to 1"),
        ({"max_filtered_rate": True}, "[check] max_filtered_rate must be a number from 0 to 1"),
        ({"data_docs_dir": ""}, "[check] data_docs_dir must be a folder path"),
        ({"critical": {"raw.uid_form": True}}, "[check.critical] 'raw.uid_form' is not a rule"),
        ({"critical": {"deid.uid_form": "yes"}}, "[check.critical] 'deid.uid_form' must be true or false"),
        ({"critical": ["deid.uid_form"]}, "[check.critical] must be a table"),
    ],
)
def test_settings_errors_name_the_file_and_key(tmp_path, table, message):
    with pytest.raises(CheckConfigError) as error:
        _settings(table, tmp_path)
    assert str(error.value).startswith(str(tmp_path / "imgomop.toml")) and message in str(error.value)


# --- BigQuery (how the datasource is built, and the SQL it gets; no queries run) ---------------


def _bigquery_config(tmp_path: Path):
    raw = {
        "warehouse": {
            "target": "bigquery",
            "bigquery": {"project": "proj-1", "identified_dataset": "ident", "deidentified_dataset": "deid",
                         "location": "EU", "api_endpoint": "http://127.0.0.1:9"},
        }
    }  # fmt: skip
    return parse_config(raw, tmp_path / "imgomop.toml")


def test_bigquery_datasource_uses_the_project_client_and_builds_an_engine(tmp_path):
    import sqlalchemy as sa

    from extractor.check.connection import warehouse_connection

    connection = warehouse_connection(_bigquery_config(tmp_path))
    assert connection.connection_string == "bigquery://proj-1?user_supplied_client=true"
    client = connection.kwargs["connect_args"]["client"]
    assert (client.project, client.location) == ("proj-1", "EU")
    assert client._connection.API_BASE_URL == "http://127.0.0.1:9"
    engine = sa.create_engine(connection.connection_string, **connection.kwargs)  # no request is made
    assert engine.dialect.name == "bigquery"


def test_bigquery_suites_qualify_both_datasets_and_use_bigquery_functions(tmp_path):
    from extractor.check.suites import IDENTIFIERS, KNOWN_CONCEPTS, Planner, deid_yml_tests, plan

    config = _bigquery_config(tmp_path)
    identified = {t: {"x": "STRING"} for t in ("raw_dicom_instance", "imaging_order", "mrn_crosswalk", *(t for t, _ in KNOWN_CONCEPTS))}
    for _, table, column in IDENTIFIERS:
        identified[table][column] = "STRING"
    deidentified = {"image_occurrence": {c: "STRING" for tests in deid_yml_tests()["image_occurrence"].values() for c in tests}}
    planner = Planner(config, check_settings(config), identified, deidentified, deid_key=TEST_DEID_KEY)
    suites = plan(["raw", "marts", "deid", "scrub"], planner)
    sql = [s.query for s in suites] + [
        c.expectation.unexpected_rows_query for s in suites for c in s.checks if hasattr(c.expectation, "unexpected_rows_query")
    ]
    text = "\n".join(sql)
    relations = set(re.findall(r"FROM (`[^`]*`|\w+)", text))
    assert relations - {"b", "originals", "tokens", "candidates", "known", "allowed"} == {
        f"`proj-1.{dataset}.{table}`" for dataset, table in re.findall(r"`proj-1\.(ident|deid)\.(\w+)`", text)
    }
    assert "`proj-1.deid.image_occurrence`" in text and "`proj-1.ident.raw_dicom_instance`" in text
    assert "REGEXP_CONTAINS(" in text and "UNNEST(SPLIT(" in text and "AS FLOAT64)" in text and "AS DATETIME)" in text
    assert not re.search(r"regexp_matches|string_split|VARCHAR|DOUBLE|identified\.main\.", text)
    for query in sql:
        query.format(batch="(SELECT 1)")  # every brace besides {batch} is escaped for GX
