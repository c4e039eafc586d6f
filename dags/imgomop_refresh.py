"""The scheduled refresh of the imgomop warehouse (Airflow 3).

harvest -> load_ehr -> build -> check -> scrub_requests: one task per stage, each running one
`imgomop ... --config FILE` command, so the DAG holds no logic of its own; a task does exactly
what that command does by hand. A failed task is retried (but scrub_requests,
whose failures are settled requests), and the stages after it do not run.

Configuration: the imgomop.toml named by the IMGOMOP_CONFIG environment variable (set it for the
scheduler, the DAG processor and the workers), its [schedule] table: sources, ehr, requests,
cron, retries, retry_delay_minutes, executable (see imgomop.toml.example). The workers also need
IMGOMOP_DEID_KEY in their environment (build and scrub use it; it never goes into the DAG).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowTimetableInvalid

from extractor.config import ConfigError, ScheduleSettings, dag_schedule, load_config

DAG_ID = "imgomop_refresh"
CONFIG_ENV = "IMGOMOP_CONFIG"
# the tasks' own runs of dbt and great-expectations send no usage statistics
NO_TELEMETRY = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "GX_ANALYTICS_ENABLED": "False"}


def config_path() -> Path:
    value = os.environ.get(CONFIG_ENV, "").strip()
    if not value:
        raise ConfigError(
            f"{CONFIG_ENV} is not set: point it at the imgomop.toml the DAG runs with, in the environment "
            "of the Airflow scheduler, DAG processor and workers"
        )
    return Path(value).expanduser().resolve()


def imgomop_executable(settings: ScheduleSettings) -> str:
    """[schedule] executable, else the imgomop beside the Python running Airflow, else the one on PATH."""
    if settings.executable:
        return str(settings.executable)
    beside = Path(sys.executable).parent / "imgomop"
    found = str(beside) if beside.is_file() else shutil.which("imgomop")
    if not found:
        raise ConfigError(
            f"no imgomop executable beside {sys.executable} or on PATH: install imgomop into Airflow's "
            "environment, or set [schedule] executable"
        )
    return found


def stage_commands(config: Path, settings: ScheduleSettings) -> dict[str, list[str]]:
    """The command line of each stage, in run order."""
    imgomop, tail = imgomop_executable(settings), ["--config", str(config)]
    return {
        "harvest": [imgomop, "harvest", *(str(s) for s in settings.sources), *(["--prune"] if settings.prune else []), *tail],
        "load_ehr": [imgomop, "load-ehr", str(settings.ehr), *tail],
        "build": [imgomop, "build", *tail],
        "check": [imgomop, "check", *tail],
        "scrub_requests": [imgomop, "scrub-requests", str(settings.requests), *tail],
    }


CONFIG = config_path()
SETTINGS = dag_schedule(load_config(CONFIG))

try:
    dag = DAG(
        dag_id=DAG_ID,
        description="harvest -> load EHR -> dbt build -> checks -> pending scrub requests",
        doc_md=__doc__,
        schedule=SETTINGS.cron,
        start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,  # two refreshes never write one warehouse at once
        default_args={"retries": SETTINGS.retries, "retry_delay": timedelta(minutes=SETTINGS.retry_delay_minutes)},
        tags=["imgomop"],
    )
    dag.timetable.validate()
except AirflowTimetableInvalid as exc:  # name the config key, not only Airflow's cron parser
    raise ConfigError(f"{CONFIG}: [schedule] cron = {SETTINGS.cron!r} is not a schedule Airflow accepts: {exc}") from exc

with dag:
    previous = None
    for task_id, argv in stage_commands(CONFIG, SETTINGS).items():
        task = BashOperator(
            task_id=task_id,
            bash_command=shlex.join(argv),
            cwd=str(CONFIG.parent),
            env=NO_TELEMETRY,
            append_env=True,
            skip_on_exit_code=None,  # every non-zero exit fails the task
            # a failed request is settled (moved to failed/) on the first try, so a retry would turn
            # the run green; an interrupted one stays pending and runs on the next schedule
            **({"retries": 0} if task_id == "scrub_requests" else {}),
        )
        if previous is not None:
            previous >> task
        previous = task
