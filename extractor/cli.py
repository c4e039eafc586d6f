"""The `imgomop` command line."""

from __future__ import annotations

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


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _load(config_path: Path | None):
    try:
        return load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))


@app.command()
def harvest(
    sources: Annotated[list[str], typer.Argument(help="Folders or files to harvest (searched recursively; any file name).")],
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Parallel reader processes (default: one per CPU core).")] = None,
    config: ConfigOption = None,
) -> None:
    """Read DICOM headers (never pixel data) into the raw tables of the identified warehouse.

    Re-runs are incremental: only new or changed files are read, and series that gain
    instances are updated in place. Every file ends as an instance row or an error row.
    """
    from extractor.harvest.discover import SourceError
    from extractor.harvest.pipeline import harvest as run_harvest
    from extractor.warehouse import open_raw_warehouse

    cfg = _load(config)
    warehouse = open_raw_warehouse(cfg)
    try:
        run = run_harvest(sources, warehouse, workers=workers, batch_size=cfg.harvest_batch_size)
    except SourceError as exc:
        _fail(str(exc))
    finally:
        warehouse.close()
    typer.echo(
        f"harvest {run.run_id}: {run.files_seen} files seen, {run.files_unchanged} unchanged, "
        f"{run.instances_added} instances added, {run.instances_updated} updated, {run.errors} errors; "
        f"series {run.series_added} added, {run.series_updated} updated"
    )


@app.command("demo-data")
def demo_data(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create the demo archive in (dicom/, ehr/, answer_key.json).")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same archive, byte for byte.")] = 0,
) -> None:
    """Make a realistic synthetic archive: DICOM files with injected PHI, EHR OMOP CSVs and an answer key."""
    from extractor.demo_data import make_demo_archive

    archive = make_demo_archive(out_dir, seed=seed)
    typer.echo(f"demo archive written to {out_dir}: {archive}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to put the demo archive.")] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Random seed of the demo archive.")] = 0,
    config: ConfigOption = None,
) -> None:
    """Run the main job end to end on the embedded default: make the demo archive, then harvest it."""
    from extractor.demo_data import make_demo_archive

    make_demo_archive(out_dir, seed=seed)
    typer.echo(f"demo archive: {out_dir}")
    harvest([str(out_dir / "dicom")], workers=None, config=config)


if __name__ == "__main__":
    app()
