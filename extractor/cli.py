"""The `imgomop` command line."""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from extractor.config import ConfigError, load_config

app = typer.Typer(
    help="imgomop: harvest DICOM headers into an OMOP imaging warehouse and deliver PHI-scrubbed extracts.\n\n"
    "With no imgomop.toml, everything runs on two DuckDB files under ./warehouse/.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Project config (default: ./imgomop.toml if present, else the embedded DuckDB default)."),
]


class CommandFailed(typer.Exit):
    """A clean command failure (exit code 2); the message was printed, and callers may record it."""

    def __init__(self, message: str) -> None:
        super().__init__(code=2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise CommandFailed(message)


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


def _terminate_as_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _duckdb_interrupted(error: BaseException) -> bool:
    """Whether DuckDB raised this because Ctrl-C stopped a query: its InterruptException, or, when
    the signal arrives while it reads a registered Arrow table, an error naming the interruption."""
    import duckdb

    if isinstance(error, duckdb.InterruptException):
        return True
    return isinstance(error, (RuntimeError, duckdb.Error)) and (
        str(error) == "Query interrupted" or "KeyboardInterrupt" in str(error)
    )


@contextmanager
def _stopped_cleanly(interrupted: str) -> Iterator[None]:
    """Ctrl-C, and SIGTERM (a scheduler stopping the task), end the command the same way: the pool
    is stopped, the run recorded as failed, and a line says how to go on (exit code 130)."""
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        yield
    except BaseException as error:
        if not (isinstance(error, KeyboardInterrupt) or _duckdb_interrupted(error)):
            raise
        typer.secho(f"interrupted: {interrupted}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=INTERRUPTED_EXIT_CODE) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _imports_are_long_lived() -> None:
    """Keep the objects made so far (the imported modules': tens of thousands) out of the garbage
    collector's full passes, which a long harvest or scrub would otherwise repeat over them (and
    its forked workers with it)."""
    gc.freeze()


def _load(config_path: Path | None):
    try:
        return load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))


@app.command()
def harvest(
    sources: Annotated[list[str], typer.Argument(help="Folders or files to harvest (searched recursively; any file name).")],
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Processes reading headers, this one included (default: one per CPU core).")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="After a complete walk, remove the rows of files under the sources that were not found (deleted or moved) and rebuild their series; a copy of a removed file (a duplicate SOP instance error) is read in its place, and so is any copy whose named file no longer holds its instance. Folders that cannot be listed are left alone.")] = False,
    config: ConfigOption = None,
) -> None:
    """Read DICOM headers (never pixel data) into the raw tables of the identified warehouse.

    Re-runs are incremental: only new or changed files are read, and series that gain
    instances are updated in place. Every file ends as an instance row or an error row.
    Rows of files that disappeared stay unless --prune is given.

    Exit code 0 when the run completed; 2 for a source or config that cannot be used, or a
    warehouse another process holds; 130 when Ctrl-C or SIGTERM stopped it (harvest again to go on).
    """
    from extractor.harvest.discover import SourceError
    from extractor.harvest.pipeline import harvest as run_harvest
    from extractor.warehouses import open_raw_warehouse
    from extractor.warehouses.base import WarehouseInUse

    cfg = _load(config)
    try:
        warehouse = open_raw_warehouse(cfg)
    except WarehouseInUse as exc:
        _fail(str(exc))
    _imports_are_long_lived()
    stopped = "the run is recorded as failed; harvest again to go on (the files it wrote are found unchanged)"
    try:
        with _stopped_cleanly(stopped):
            run = run_harvest(sources, warehouse, workers=workers, batch_size=cfg.harvest_batch_size, prune=prune)
    except (SourceError, WarehouseInUse) as exc:  # the writer opens its file again during long runs
        _fail(str(exc))
    finally:
        warehouse.close()
    typer.echo(
        f"harvest {run.run_id}: {run.files_seen} files seen, {run.files_unchanged} unchanged, "
        f"{run.instances_added} instances added, {run.instances_updated} updated, {run.errors} errors; "
        f"series {run.series_added} added, {run.series_updated} updated"
        + (f"; {run.files_removed} files no longer found, removed" if prune else "")
    )


@app.command("load-ehr")
def load_ehr(
    directory: Annotated[Path, typer.Argument(help="Folder with person.csv, visit_occurrence.csv, procedure_occurrence.csv, mrn_crosswalk.csv, imaging_order.csv, ... (CSV or Parquet).")],
    config: ConfigOption = None,
) -> None:
    """Load the EHR OMOP tables and the imaging-order crosswalk into the identified warehouse.

    Required: person, visit_occurrence, procedure_occurrence, mrn_crosswalk, imaging_order.
    Optional (created empty when absent): condition_occurrence, measurement, note, concept.
    Every file is checked first; on any error nothing is replaced.
    """
    import duckdb

    from extractor.build.load_ehr import EhrLoadError, load_ehr as run_load

    cfg = _load(config)
    if cfg.target != "duckdb":
        _fail("load-ehr writes to DuckDB only so far; load the EHR tables into the identified BigQuery dataset with your usual tooling")
    cfg.duckdb.identified_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(cfg.duckdb.identified_path))
    try:
        loaded = run_load(directory, con)
    except EhrLoadError as exc:
        _fail(str(exc))
    finally:
        con.close()
    for table in loaded:
        origin = table.source.name if table.source else "(no file: created empty)"
        typer.echo(f"{table.name:<22} {table.rows:>9,} rows  {origin}")


@app.command()
def build(
    select: Annotated[Optional[list[str]], typer.Option("--select", "-s", help="dbt node selection, as for `dbt build --select` (repeatable).")] = None,
    config: ConfigOption = None,
) -> None:
    """Build the OMOP imaging tables with dbt: staging, linkage, marts and the de-identified copy.

    Needs IMGOMOP_DEID_KEY in the environment (the secret behind every pseudonym).
    Prints the models and tests run, mart row counts and the linkage rate.
    """
    from extractor.build.dbt_build import BuildError, add_warehouse_figures, format_summary, run_dbt, summarise

    cfg = _load(config)
    try:
        result = run_dbt(cfg, "build", select=select)
    except BuildError as exc:
        _fail(str(exc))
    summary = summarise(result)
    if summary.ok:
        add_warehouse_figures(cfg, summary)
    typer.echo(format_summary(summary))
    if not summary.ok:
        raise typer.Exit(code=1)


@app.command()
def scrub(
    inputs: Annotated[Optional[list[str]], typer.Argument(help="Folder mode: files or folders to de-identify (no warehouse needed).")] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder, or gs://bucket/prefix.")] = "",
    cohort: Annotated[Optional[str], typer.Option("--cohort", help="Cohort mode: a SQL query (or .sql file) over the de-identified tables returning image_occurrence_id.")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", "-p", help="Profile name (pre-irb, post-irb-limited, strict-allowlist) or TOML file. Default: [scrub] profile, else pre-irb.")] = None,
    pixel_script: Annotated[Optional[list[Path]], typer.Option("--pixel-script", help="CTP DicomPixelAnonymizer script(s); first matching rule wins. Default: [scrub] pixel_scripts, else the demo devices' rules.")] = None,
    allow_script: Annotated[Optional[list[Path]], typer.Option("--allow-script", help="CTP DicomFilter script(s) that may allow back secondary captures, burned-in YES and DERIVED images.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Processes scrubbing files, this one included (default: one per CPU core).")] = None,
    config: ConfigOption = None,
) -> None:
    """De-identify DICOM files: filter risky instances, blank burned-in text, scrub metadata.

    Every input ends as deidentified, filtered (with the rule) or quarantined (with the error);
    a manifest (Parquet, no identifiers) is written under OUT/manifest. Re-runs skip finished
    inputs. Needs IMGOMOP_DEID_KEY (the same key as the build, so files match the tables).
    """
    from extractor.build.dbt_build import BuildError, require_key
    from extractor.scrub.ctp import ScriptError
    from extractor.scrub.instance import compile_settings
    from extractor.scrub.metadata import ProfileError
    from extractor.scrub.settings import ScrubConfigError, scrub_settings

    if bool(inputs) == bool(cohort):
        _fail("give either INPUT folders/files (folder mode) or --cohort QUERY (cohort mode), not both or neither")
    if not out:
        _fail("--out is required: a folder or gs://bucket/prefix for the scrubbed files")
    cfg = _load(config)
    try:
        require_key()
        settings = scrub_settings(cfg, out, profile, pixel_script, allow_script)
        compile_settings(settings)
    except (BuildError, ScrubConfigError, ScriptError, ProfileError) as exc:
        _fail(str(exc))
    _imports_are_long_lived()
    with _stopped_cleanly("the files scrubbed so far are in the manifest; scrub again to go on (finished inputs are skipped)"):
        if cohort:
            _scrub_cohort(cfg, cohort, settings, workers)
        else:
            _scrub_folders(inputs or [], settings, workers)


def _scrub_folders(inputs: list[str], settings, workers: int | None) -> None:
    from extractor.harvest.discover import SourceError
    from extractor.scrub.run import folder_jobs, format_scrub_summary, run_scrub

    try:
        summary = run_scrub(folder_jobs(inputs), settings, workers)
    except SourceError as exc:
        _fail(str(exc))
    typer.echo(format_scrub_summary(summary))


def _scrub_cohort(cfg, cohort: str, settings, workers: int | None) -> None:
    from extractor.build.dbt_build import run_dbt, summarise
    from extractor.scrub.cohort import CohortError, cohort_jobs, read_cohort_sql, record_manifest
    from extractor.scrub.run import format_scrub_summary, run_scrub

    try:
        jobs = cohort_jobs(cfg, read_cohort_sql(cohort), settings.key)
    except CohortError as exc:
        _fail(str(exc))
    if not jobs:
        _fail("the cohort query selected no series with harvested files")
    summary = run_scrub(jobs, settings, workers)
    typer.echo(format_scrub_summary(summary))
    record_manifest(cfg, summary.manifest)
    refreshed = summarise(run_dbt(cfg, "build", select=["deid_image_occurrence"]))
    if not refreshed.ok:
        _fail("the scrub finished but refreshing local_path failed: " + "; ".join(refreshed.failures))
    typer.echo("de-identified image_occurrence.local_path now points at the scrubbed series")


@app.command("scrub-requests")
def scrub_requests(
    folder: Annotated[Optional[Path], typer.Argument(help="Requests folder (default: [schedule] requests, else ./requests beside the config).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Parallel processes per scrub (default: one per core).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run every pending scrub request (FOLDER/*.toml) as `imgomop scrub --cohort` does.

    A request is a TOML file: cohort = "SELECT image_occurrence_id ..." (or a .sql file),
    out = "folder or gs://bucket/prefix", optional profile. Each one then moves to FOLDER/done/,
    or to FOLDER/failed/ with its error in <name>.error.txt, so a re-run never repeats it.
    Exits 1 when a request failed. Needs IMGOMOP_DEID_KEY (the same key as the build).
    """
    from extractor.build.dbt_build import BuildError, require_key
    from extractor.scrub.requests import RequestError, ScrubRequest, pending_requests, process_pending

    cfg = _load(config)
    folder = (folder or cfg.scrub_requests_dir).resolve()
    try:
        if not pending_requests(folder):
            typer.echo(f"no pending scrub requests in {folder}")
            return
        require_key()  # checked once, before any request is run and settled
    except (RequestError, BuildError) as exc:
        _fail(str(exc))

    def run(request: ScrubRequest) -> None:
        typer.echo(f"scrub request {request.path.name}: out {request.out}")
        scrub(inputs=None, out=request.out, cohort=request.cohort, profile=request.profile,
              pixel_script=None, allow_script=None, workers=workers, config=config)  # fmt: skip

    settled = process_pending(folder, cfg.base_dir, run)
    for item in settled:
        status = f"failed: {item.error}" if item.error else "done"
        typer.echo(f"scrub request {item.request.name}: {status} (moved to {item.moved_to})")
    failed = sum(1 for item in settled if item.error)
    typer.echo(f"scrub requests: {len(settled) - failed} done, {failed} failed")
    if failed:
        raise typer.Exit(code=1)


@app.command()
def review(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the report (index.html and images/). Never inside the extract.")],
    run: Annotated[Optional[str], typer.Option("--run", help="Scrub run id (as printed by `imgomop scrub`). Default: the latest run.")] = None,
    scrubbed_only: Annotated[bool, typer.Option("--scrubbed-only", help="Leave out every original pixel and header value: scrubbed images and values only.")] = False,
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, max=20, help="Sample instances shown per device group.")] = 3,
    config: ConfigOption = None,
) -> None:
    """Write the QA report of a cohort scrub run: a static HTML page, viewable offline.

    Shows the run's figures (instances in, de-identified, filtered by rule,
    quarantined) and the PHI changed per category (names, IDs, dates,
    institutions, burned-in text, ...). Per device signature (manufacturer,
    model, rows x columns), sample instances: original and scrubbed images side
    by side with the blanked regions outlined, and a metadata inspector
    (removed, emptied, replaced, hashed, shifted, kept).

    The full report holds PHI (original images and values): write it only where
    identified data may live. --scrubbed-only leaves out every original pixel
    and value. Reads scrub_manifest of the identified warehouse (cohort scrubs).
    """
    from extractor.review import ReviewError, write_review

    cfg = _load(config)
    if cfg.target != "duckdb":
        _fail("review reads the scrub manifest of the embedded DuckDB warehouse so far; cohort scrubs run on DuckDB only")
    try:
        result = write_review(cfg.duckdb.identified_path, out, run_id=run, scrubbed_only=scrubbed_only, samples=samples)
    except ReviewError as exc:
        _fail(str(exc))
    typer.echo(
        f"review of scrub {result.run_id}: {result.instances} instances in {result.groups} device groups, "
        f"{result.samples} samples -> {result.index}"
    )
    if not result.scrubbed_only:
        typer.secho("this report shows original images and values (PHI): keep it where identified data may live", fg=typer.colors.YELLOW)


@app.command()
def check(
    layer: Annotated[Optional[list[str]], typer.Option("--layer", "-l", help="raw, marts, deid or scrub (repeatable). Default: all four.")] = None,
    config: ConfigOption = None,
) -> None:
    r"""Data-quality and PHI-leakage checks (great-expectations), by layer.

    raw: UIDs present, unique and well-formed; the harvest error rate.
    marts: the OMOP field spec (required, unique, foreign keys, concept ids
    known or 0); the linkage rate.
    deid: no value equal to an identified MRN, accession number, name or UID;
    no date equal to its original; descriptions made only of allowlisted
    words and masks; UIDs in the 2.25 form; deleted columns empty.
    scrub: manifest outcomes recorded; quarantined and filtered shares.

    Prints one line per expectation and writes Data Docs (HTML) to
    \[check] data_docs_dir, by default warehouse/data_docs beside the
    identified data (a failure shows the identified values it found).
    Thresholds and criticality: \[check] in imgomop.toml. The deid layer
    needs IMGOMOP_DEID_KEY (the build's key) to pair rows with originals.
    Exits 1 when a critical expectation fails, 2 when checks cannot run.
    """
    from extractor.check.rules import LAYERS
    from extractor.check.settings import check_settings

    cfg = _load(config)
    unknown = sorted(set(layer or ()) - set(LAYERS))
    if unknown:
        _fail(f"unknown layer {', '.join(unknown)}: use {', '.join(LAYERS)}")
    try:
        settings = check_settings(cfg)
    except ConfigError as exc:
        _fail(str(exc))
    from extractor.check.runner import CheckError, run_checks
    from extractor.check.summary import format_summary

    try:
        run = run_checks(cfg, [name for name in LAYERS if not layer or name in layer], settings)
    except CheckError as exc:
        _fail(str(exc))
    typer.echo(format_summary(run))
    if run.critical_failures:
        raise typer.Exit(code=1)


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create the demo archive in (dicom/, ehr/, answer_key.json).")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same archive, byte for byte.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an archive already in OUT_DIR.")] = False,
) -> None:
    """Make a realistic synthetic archive: DICOM files with injected PHI, EHR OMOP CSVs and an answer key."""
    from extractor.demo_data import make_demo_archive

    try:
        archive = make_demo_archive(out_dir, seed=seed, overwrite=overwrite)
    except FileExistsError:
        _fail(f"{out_dir}: already holds a demo archive; choose an empty folder or pass --overwrite")
    typer.echo(f"demo archive written to {out_dir}: {archive}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to put the demo archive.")] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Random seed of the demo archive.")] = 0,
    config: ConfigOption = None,
) -> None:
    """Run the main job end to end on the embedded default.

    demo archive -> harvest -> load EHR -> build -> scrub a cohort -> review report -> checks.
    The review report (OUT/review/index.html) shows originals: it stays beside the demo archive.
    """
    from extractor.demo_data import make_demo_archive

    import os
    import secrets
    import shutil

    make_demo_archive(out_dir, seed=seed, overwrite=True)
    shutil.rmtree(out_dir / "extract", ignore_errors=True)  # the extract of an earlier demo run (other key)
    typer.echo(f"demo archive: {out_dir}")
    harvest([str(out_dir / "dicom")], workers=None, config=config)
    load_ehr(out_dir / "ehr", config=config)
    if not os.environ.get("IMGOMOP_DEID_KEY"):
        # a throwaway key for this demo run only: real runs take theirs from the environment
        os.environ["IMGOMOP_DEID_KEY"] = secrets.token_hex(32)
        typer.echo("IMGOMOP_DEID_KEY not set: using a random key for this demo run")
    build(select=None, config=config)
    scrub(
        inputs=None,
        out=str(out_dir / "extract"),
        cohort="SELECT image_occurrence_id FROM image_occurrence WHERE modality_source_value IN ('CT', 'US', 'MR')",
        profile=None,
        pixel_script=None,
        allow_script=None,
        workers=None,
        config=config,
    )
    review(out=out_dir / "review", run=None, scrubbed_only=False, samples=3, config=config)
    check(layer=None, config=config)  # last: its summary ends the demo, and a critical failure fails it


if __name__ == "__main__":
    app()
