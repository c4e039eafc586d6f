"""Peak memory of `imgomop harvest` as the archive grows: does it stay flat past one batch?

    python benchmarks/harvest_memory.py [--sizes 2000,20000,200000,600000] [--workers 1,2] [--repeat 1]

benchmarks/harvest.py compares 2,000 files with 20,000, as the harvest issue asks; this script
goes further, to archives 10 and 30 times larger, where growth that a 20,000-file run hides
shows (DuckDB's cache and checkpoints grow with the tables, not with a batch). For each size it
builds (or reuses) the same synthetic corpus as harvest.py (benchmarks/corpus.py), each size
being the subset of the next one up (corpus-<N> with subset-<previous size>), and runs
`imgomop harvest --workers W` into a fresh DuckDB warehouse, as its own subprocess. Printed: the
peak RSS of the largest process (wait4) and the peak PSS of the process tree (polled), for each
size and worker count, and their ratios to the smallest size and to the size before. The
baseline is the smallest archive: the target is ~1.0x. No memory or time is asserted; the
figures also go to benchmarks/out/harvest-memory-<timestamp>.json.

Disk: the corpus of 600,000 files takes about 21 GB (its subsets are hard links), and building
it about 1.5 minutes; a one-worker harvest of it about 1.5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import build_corpus  # noqa: E402
from harvest import MB, _loadavg, _ratio, child_env, find_imgomop, harvest_once, warm_page_cache  # noqa: E402


def _sizes(text: str) -> list[int]:
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if len(sizes) < 2 or sizes[0] < 1:
        raise argparse.ArgumentTypeError("give at least two positive sizes, e.g. 2000,20000")
    return sizes


def _workers(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("give worker counts of at least 1, e.g. 1,2")
    return counts


def corpus_roots(sizes: list[int], out_dir: Path, seed: int) -> dict[int, Path]:
    """The folder of each size: corpus-<N>/dicom, whose subset-<previous size> is the size below."""
    roots: dict[int, Path] = {}
    for smaller, size in zip(sizes, sizes[1:]):
        manifest = build_corpus(out_dir / f"corpus-{size}", size, seed, smaller)
        print(f"corpus of {size:,} files: {'reused' if manifest['reused'] else 'built in'}"
              f"{'' if manifest['reused'] else ' ' + str(manifest['build_seconds']) + ' s'}; "
              f"{manifest['series']:,} series, {manifest['total_bytes'] / MB:,.0f} MB", flush=True)
        roots[size] = Path(manifest["dicom_dir"])
        roots.setdefault(smaller, Path(manifest["subset_dir"]))
    return roots


def _shown_ratio(a: float | None, b: float | None) -> str:
    ratio = _ratio(a, b)
    return f"{ratio:.2f}x" if ratio else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=_sizes("2000,20000,200000,600000"),
                        help="archive sizes in files, comma-separated (default 2000,20000,200000,600000)")
    parser.add_argument("--workers", type=_workers, default=[1, os.cpu_count() or 1],
                        help="worker counts, comma-separated (default: 1 and os.cpu_count())")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each size and worker count; the lowest peak counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=HERE / "out", help="where corpora and results go")
    parser.add_argument("--imgomop", default=None, help="the imgomop command (default: next to this Python, else on PATH)")
    args = parser.parse_args(argv)

    imgomop = find_imgomop(args.imgomop)
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    roots = corpus_roots(args.sizes, out_dir, args.seed)
    env, env_note = child_env("cached", out_dir)
    print(f"bytecode: {env_note}")
    scratch = Path(tempfile.mkdtemp(prefix=f"harvest-memory-{stamp}-", dir=out_dir))
    rows = []
    try:
        empty = scratch / "empty"
        empty.mkdir()
        harvest_once(imgomop, empty, 1, scratch, env)  # warm-up: compile, lazy imports
        for workers in args.workers:
            for size in args.sizes:
                warm_page_cache([roots[size]])  # the largest corpora may not all fit in the page cache at once
                runs = []
                for _ in range(args.repeat):
                    measured, counts = harvest_once(imgomop, roots[size], workers, scratch, env)
                    if counts["raw_dicom_instance"] + counts["raw_harvest_error"] != size:
                        raise SystemExit(f"{size} files, {workers} workers: {counts} does not account for every file")
                    runs.append(measured)
                best = min(runs, key=lambda m: m.max_rss_largest_process_mb)
                rows.append({
                    "files": size, "workers": workers, "seconds": round(best.wall_seconds, 2),
                    "largest_process_mb": round(best.max_rss_largest_process_mb, 1),
                    "tree_pss_mb": round(best.peak_tree_pss_mb, 1) if best.peak_tree_pss_mb else None,
                    "all_largest_process_mb": [round(m.max_rss_largest_process_mb, 1) for m in runs],
                })
                print(f"  {size:>9,} files, --workers {workers}: {best.max_rss_largest_process_mb:6.1f} MB "
                      f"(largest process), {best.wall_seconds:6.1f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print("\npeak memory in MB (1 MB = 10^6 bytes); ratios to the smallest archive, and to the size before:")
    print(f"{'files':>9} {'workers':>7} {'largest':>8} {'tree PSS':>9} {'/ smallest':>11} {'/ before':>9}")
    for workers in args.workers:
        mine = [row for row in rows if row["workers"] == workers]
        for before, row in zip([None, *mine], mine):
            row["ratio_to_smallest"] = round(_ratio(row["largest_process_mb"], mine[0]["largest_process_mb"]) or 0, 3)
            print(f"{row['files']:>9,} {workers:>7} {row['largest_process_mb']:>8.1f} "
                  f"{row['tree_pss_mb'] if row['tree_pss_mb'] else '-':>9} "
                  f"{_shown_ratio(row['largest_process_mb'], mine[0]['largest_process_mb']):>11} "
                  f"{_shown_ratio(row['largest_process_mb'], before['largest_process_mb'] if before else None):>9}")
    result = out_dir / f"harvest-memory-{stamp}.json"
    result.write_text(json.dumps({"sizes": args.sizes, "workers": args.workers, "repeat": args.repeat,
                                  "loadavg_after": _loadavg(), "rows": rows}, indent=2))
    print(f"\n(target ~1.0x: flat) written to {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
