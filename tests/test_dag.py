"""The Airflow DAG (dags/imgomop_refresh.py): it imports, carries the demo archive through every task, and fails closed.

Airflow reads its configuration when it is imported, so everything Airflow runs in a child
process (this file, run as a script) with its own AIRFLOW_HOME, a SQLite metadata database made
by `airflow db migrate`, examples off and no usage statistics sent (Airflow, dbt, great-expectations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import TEST_DEID_KEY

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
DAG_ID = "imgomop_refresh"
STAGES = ["harvest", "load_ehr", "build", "check", "scrub_requests"]
RESULT = "RESULT "
COHORT = "SELECT image_occurrence_id FROM image_occurrence WHERE modality_source_value = 'CT' ORDER BY image_occurrence_id LIMIT 2"


def airflow_env(home: Path, config: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "IMGOMOP_CONFIG"}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__USAGE_DATA_COLLECTION__ENABLED="False",
        DBT_SEND_ANONYMOUS_USAGE_STATS="False",
        GX_ANALYTICS_ENABLED="False",
        IMGOMOP_DEID_KEY=TEST_DEID_KEY,
    )
    if config is not None:
        env["IMGOMOP_CONFIG"] = str(config)
    return env


def run_child(mode: str, home: Path, config: Path | None, *more_configs: str, timeout: int = 600):
    """Run this file as a script in a fresh process; return the JSON it reports."""
    done = subprocess.run(
        [sys.executable, __file__, mode, *more_configs],
        env=airflow_env(home, config), cwd=home, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    assert done.returncode == 0 and lines, f"child {mode} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return json.loads(lines[-1][len(RESULT) :])


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=airflow_env(home, None), cwd=home, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory) -> Path:
    """A project folder: the demo archive, a requests folder with one request, and its imgomop.toml."""
    from extractor.demo_data import make_demo_archive

    root = tmp_path_factory.mktemp("dag-project")
    make_demo_archive(root / "demo", seed=0)
    (root / "requests").mkdir()
    (root / "requests" / "ct-study.toml").write_text(f'cohort = "{COHORT}"\nout = "extracts/ct-study"\n')
    write_config(root, sources=["demo/dicom"], retries=0)
    return root


def write_config(root: Path, sources: list[str], retries: int, name: str = "imgomop.toml") -> Path:
    config = root / name
    config.write_text(
        "[warehouse.duckdb]\n"
        'identified = "warehouse/identified.duckdb"\n'
        'deidentified = "warehouse/deidentified.duckdb"\n\n'
        "[schedule]\n"
        f'cron = "0 3 * * *"\nsources = {json.dumps(sources)}\nehr = "demo/ehr"\nrequests = "requests"\n'
        f"retries = {retries}\nretry_delay_minutes = 0\nprune = true\n"
    )
    return config


def test_the_schedule_table_resolves_beside_the_config_and_has_defaults(tmp_path):
    from extractor.config import ScheduleSettings, dag_schedule, load_config

    config = tmp_path / "imgomop.toml"
    config.write_text("[schedule]\nsources = ['pacs', '/mnt/other']\nehr = 'ehr'\n")
    assert dag_schedule(load_config(config)) == ScheduleSettings(
        requests=tmp_path / "requests", cron="@daily", sources=(tmp_path / "pacs", Path("/mnt/other")), ehr=tmp_path / "ehr",
        retries=2, retry_delay_minutes=10, executable=None,
    )  # fmt: skip
    config.write_text("[schedule]\nsources = ['pacs']\nehr = 'ehr'\ncron = ''\nrequests = '/srv/requests'\nprune = true\n")
    settings = load_config(config).schedule
    assert settings.cron is None and settings.requests == Path("/srv/requests") and settings.prune


def test_the_dag_folder_imports_without_errors(airflow_home, demo_project):
    bag = run_child("bag", airflow_home, demo_project / "imgomop.toml")
    assert bag["import_errors"] == {}
    assert bag["dag_ids"] == [DAG_ID]
    dag = bag["dag"]
    assert dag["schedule"] == "0 3 * * *" and dag["max_active_runs"] == 1
    assert [t["task_id"] for t in dag["tasks"]] == STAGES
    imgomop, config = str(Path(sys.executable).parent / "imgomop"), str(demo_project / "imgomop.toml")
    commands = {t["task_id"]: t["bash_command"] for t in dag["tasks"]}
    assert commands == {
        "harvest": f"{imgomop} harvest {demo_project / 'demo' / 'dicom'} --prune --config {config}",
        "load_ehr": f"{imgomop} load-ehr {demo_project / 'demo' / 'ehr'} --config {config}",
        "build": f"{imgomop} build --config {config}",
        "check": f"{imgomop} check --config {config}",
        "scrub_requests": f"{imgomop} scrub-requests {demo_project / 'requests'} --config {config}",
    }
    for previous, task in zip(dag["tasks"], dag["tasks"][1:]):
        assert task["upstream"] == [previous["task_id"]]
    assert all(t["retries"] == 0 for t in dag["tasks"])


BROKEN_CONFIGS = [  # (imgomop.toml, or None for no IMGOMOP_CONFIG; what the import error says)
    (None, "IMGOMOP_CONFIG is not set"),
    ("[schedule]\nehr = 'ehr'\n", "[schedule] needs sources"),
    ("[schedule]\nsources = 'pacs'\nehr = 'ehr'\n", "[schedule] sources must be a list of folders"),
    ("[schedule]\nsources = ['pacs']\nehr = 'ehr'\nretries = -1\n", "[schedule] retries must be a whole number"),
    ("[schedule]\nsources = ['pacs']\nehr = 'ehr'\nprune = 'yes'\n", "[schedule] prune must be true or false"),
    ("[schedule]\nsources = ['pacs']\nehr = 'ehr'\ncron = 'nightly'\n", "[schedule] cron = 'nightly' is not a schedule"),
    ("[schedule]\nsources = ['pacs']\nehr = 'ehr'\nsource = ['x']\n", "unknown key(s) source"),
]


@pytest.fixture(scope="module")
def broken_bags(airflow_home, tmp_path_factory) -> list[tuple[str, dict]]:
    """The DAG folder parsed with each broken config, in one child process."""
    configs = []
    for n, (text, _) in enumerate(BROKEN_CONFIGS):
        if text is None:
            configs.append("")
            continue
        config = tmp_path_factory.mktemp(f"broken-{n}") / "imgomop.toml"
        config.write_text(text)
        configs.append(str(config))
    return list(zip(configs, run_child("bags", airflow_home, None, *configs)))


@pytest.mark.parametrize("case", range(len(BROKEN_CONFIGS)), ids=[m for _, m in BROKEN_CONFIGS])
def test_a_broken_config_is_an_import_error_that_names_it(broken_bags, case):
    config, bag = broken_bags[case]
    assert bag["dag_ids"] == []
    (error,) = bag["import_errors"].values()
    assert BROKEN_CONFIGS[case][1] in error and config in error


def test_dag_test_carries_the_demo_archive_through_every_task(airflow_home, demo_project):
    run = run_child("test", airflow_home, demo_project / "imgomop.toml")
    assert run["tasks"] == {stage: ["success", 1] for stage in STAGES}, run
    assert run["state"] == "success"
    con = duckdb.connect(str(demo_project / "warehouse" / "deidentified.duckdb"), read_only=True)
    occurrences = con.execute("SELECT count(*) FROM image_occurrence").fetchone()[0]
    scrubbed = con.execute("SELECT count(*) FROM image_occurrence WHERE local_path IS NOT NULL").fetchone()[0]
    con.close()
    assert occurrences > 100 and scrubbed == 2
    assert (demo_project / "requests" / "done" / "ct-study.toml").is_file()
    assert list((demo_project / "extracts" / "ct-study").rglob("*.dcm"))


def test_a_failing_stage_fails_the_run_after_its_retries(airflow_home, demo_project):
    config = write_config(demo_project, sources=["no/such/archive"], retries=1, name="broken.toml")
    run = run_child("test", airflow_home, config)
    assert run["state"] == "failed"
    assert run["tasks"]["harvest"] == ["failed", 2]  # the first try and one retry
    assert {run["tasks"][stage][0] for stage in STAGES[1:]} == {"upstream_failed"}


def _child(mode: str, configs: list[str]):
    """In the child process: Airflow is configured from the environment set by airflow_env."""
    from airflow.dag_processing.dagbag import DagBag

    if mode == "bags":  # the DAG folder parsed once per config ("" = IMGOMOP_CONFIG unset)
        reports = []
        for config in configs:
            os.environ.pop("IMGOMOP_CONFIG", None)
            if config:
                os.environ["IMGOMOP_CONFIG"] = config
            bag = DagBag(dag_folder=str(DAGS))
            reports.append({"import_errors": bag.import_errors, "dag_ids": sorted(bag.dag_ids)})
        return reports
    bag = DagBag(dag_folder=str(DAGS))
    if mode == "bag":
        report: dict = {"import_errors": bag.import_errors, "dag_ids": sorted(bag.dag_ids)}
        if DAG_ID in bag.dags:
            dag = bag.dags[DAG_ID]
            report["dag"] = {
                "schedule": dag.schedule,
                "max_active_runs": dag.max_active_runs,
                "tasks": [
                    {"task_id": t.task_id, "bash_command": t.bash_command, "retries": t.retries, "upstream": sorted(t.upstream_task_ids)}
                    for t in dag.topological_sort()
                ],
            }
        return report
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.dags[DAG_ID].test()
    return {
        "state": str(dag_run.state),
        "tasks": {ti.task_id: [str(ti.state), ti.try_number] for ti in dag_run.get_task_instances()},
    }


if __name__ == "__main__":
    print(RESULT + json.dumps(_child(sys.argv[1], sys.argv[2:])), flush=True)
