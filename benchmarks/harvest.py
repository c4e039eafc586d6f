"""Harvest throughput and memory: `imgomop harvest` side by side with a plain pydicom loop.

    python benchmarks/harvest.py [--files 20000] [--workers N] [--profile auto|always|never]

In one run, on the same synthetic corpus (benchmarks/corpus.py) and a warm page cache:
  (a) baseline: one process looping `pydicom.dcmread(path, stop_before_pixels=True)` over every file;
  (b) `imgomop harvest CORPUS --workers <cores>` into a fresh DuckDB warehouse;
  (c) `imgomop harvest CORPUS --workers 1` (the per-core figure without pool overheads);
  (d) both harvests again on a 2,000-file subset of the same corpus, for peak memory.
Each runs as its own subprocess. Printed: a table of files/s, MB/s, files/s per core and peak
memory, and the ratios against the targets (harvest per core >= 5x the baseline; peak memory
at the full corpus / at 2,000 files ~ 1.0x). The figures also go to benchmarks/out/harvest-<ts>.json.
No timing is asserted anywhere; this script reports.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import build_corpus, sorted_files  # noqa: E402

PER_CORE_TARGET = 5.0
MB = 1_000_000
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

BASELINE_CODE = r"""
import json, os, sys, time, warnings
import pydicom
warnings.simplefilter("ignore")
root = sys.argv[1]
started = time.perf_counter()
files = errors = 0
for folder, subfolders, names in os.walk(root):
    subfolders.sort()
    for name in sorted(names):
        try:
            pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True)
        except Exception:
            errors += 1
        files += 1
print(json.dumps({"files": files, "errors": errors, "loop_seconds": time.perf_counter() - started}))
"""


# --- measuring a child process ---------------------------------------------------------------


@dataclass
class Measured:
    """One child process: wall time, exit code, output and peak memory."""

    wall_seconds: float
    returncode: int
    stdout: str
    stderr: str
    max_rss_largest_process_mb: float  # wait4 ru_maxrss: the largest single process of the tree
    peak_tree_rss_mb: float | None = None  # polled: sum of RSS over the process tree (counts shared pages per process)
    peak_tree_pss_mb: float | None = None  # polled: sum of PSS (shared pages divided among sharers)
    samples: int = 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(k) for k in fh.read().split()]
    except OSError:
        pass
    return kids


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB from smaps_rollup; (RSS from statm, 0) where smaps_rollup is missing."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            rss = pss = 0
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
            return rss, pss
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_SIZE // 1024, 0
    except OSError:
        return 0, 0


class _TreePoller(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss_kb = self.peak_pss_kb = self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            rss = pss = 0
            for p in _tree(self.pid):
                r, s = _rss_pss_kb(p)
                rss, pss = rss + r, pss + s
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self.samples += 1
            self.stop.wait(self.interval)


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> Measured:
    """Run cmd to completion; peak memory from wait4 (largest process) and /proc polling (whole tree)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        poller = _TreePoller(proc.pid) if Path("/proc").is_dir() else None
        if poller:
            poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if poller:
            poller.stop.set()
            poller.join()
        out.seek(0)
        err.seek(0)
        rss_unit = 1024 if sys.platform != "darwin" else 1  # ru_maxrss is kB on Linux, bytes on macOS
        return Measured(
            wall_seconds=wall,
            returncode=proc.returncode,
            stdout=out.read(),
            stderr=err.read(),
            max_rss_largest_process_mb=usage.ru_maxrss * rss_unit / MB,
            peak_tree_rss_mb=poller.peak_rss_kb * 1024 / MB if poller and poller.samples else None,
            peak_tree_pss_mb=poller.peak_pss_kb * 1024 / MB if poller and poller.peak_pss_kb else None,
            samples=poller.samples if poller else 0,
        )


# --- the runs --------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    files: int
    bytes: int
    seconds: float  # the work: the baseline's loop, the harvest's run record (started_at -> ended_at)
    process_seconds: float  # the whole child process, interpreter start-up and imports included
    workers: int
    memory: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.seconds

    @property
    def files_per_s_per_core(self) -> float:
        return self.files_per_s / self.workers

    @property
    def process_files_per_s(self) -> float:
        return self.files / self.process_seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "files_per_s": self.files_per_s, "mb_per_s": self.mb_per_s,
                "files_per_s_per_core": self.files_per_s_per_core, "process_files_per_s": self.process_files_per_s}


def _memory(m: Measured) -> dict:
    return {
        "max_rss_largest_process_mb": round(m.max_rss_largest_process_mb, 1),
        "peak_tree_rss_mb": round(m.peak_tree_rss_mb, 1) if m.peak_tree_rss_mb else None,
        "peak_tree_pss_mb": round(m.peak_tree_pss_mb, 1) if m.peak_tree_pss_mb else None,
        "poll_samples": m.samples,
    }


def _check(m: Measured, what: str) -> None:
    if m.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {m.returncode}:\n{m.stderr[-4000:]}")


def run_baseline(root: Path, files: int, nbytes: int, workdir: Path) -> Result:
    m = run_measured([sys.executable, "-c", BASELINE_CODE, str(root)], cwd=workdir)
    _check(m, "baseline loop")
    report = json.loads(m.stdout.strip().splitlines()[-1])
    if report["files"] != files:
        raise SystemExit(f"baseline saw {report['files']} files, expected {files}")
    return Result(
        name="baseline: pydicom.dcmread(stop_before_pixels) loop",
        files=files,
        bytes=nbytes,
        seconds=report["loop_seconds"],
        process_seconds=m.wall_seconds,
        workers=1,
        memory=_memory(m),
        detail={"errors": report["errors"], "timed": "seconds: the loop (walk + dcmread of every file)"},
    )


def _write_config(workdir: Path) -> Path:
    config = workdir / "imgomop.toml"
    config.write_text(
        "[warehouse]\ntarget = \"duckdb\"\n\n[warehouse.duckdb]\n"
        f"identified = \"{workdir / 'identified.duckdb'}\"\ndeidentified = \"{workdir / 'deidentified.duckdb'}\"\n"
    )
    return config


def _warehouse_counts(path: Path) -> dict:
    try:
        import duckdb
    except ImportError:
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("raw_dicom_instance", "raw_dicom_series", "raw_harvest_error")}
        start, end = con.execute("SELECT started_at, ended_at FROM raw_harvest_run ORDER BY started_at DESC LIMIT 1").fetchone()
        counts["run_seconds_in_harvest"] = round((end - start).total_seconds(), 3)
        counts["errors_by_class"] = dict(con.execute(
            "SELECT error_class, COUNT(*) FROM raw_harvest_error GROUP BY 1 ORDER BY 2 DESC").fetchall())
        return counts
    finally:
        con.close()


def run_harvest(imgomop: str, root: Path, files: int, nbytes: int, workers: int, label: str, scratch: Path) -> Result:
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        workdir = Path(tmp)
        config = _write_config(workdir)
        cmd = [imgomop, "harvest", str(root), "--workers", str(workers), "--config", str(config)]
        m = run_measured(cmd, cwd=workdir)
        _check(m, " ".join(cmd))
        counts = _warehouse_counts(workdir / "identified.duckdb")
    if counts and counts["raw_dicom_instance"] + counts["raw_harvest_error"] != files:
        raise SystemExit(f"{label}: {counts} does not account for all {files} files")
    return Result(
        name=label,
        files=files,
        bytes=nbytes,
        seconds=counts.get("run_seconds_in_harvest") or m.wall_seconds,
        process_seconds=m.wall_seconds,
        workers=workers,
        memory=_memory(m),
        detail={"warehouse": counts, "stdout": m.stdout.strip(),
                "timed": "seconds: the harvest run record, started_at -> ended_at (discovery, reading, DuckDB writes, "
                         "series refresh; not interpreter start-up and imports)"},
    )


def profile_single_worker(imgomop: str, root: Path, scratch: Path, out_prefix: Path, top: int = 15) -> str:
    """cProfile of `imgomop harvest --workers 1` (no pool: everything runs in the profiled process)."""
    prof = out_prefix.with_suffix(".prof")
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        config = _write_config(Path(tmp))
        cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), imgomop, "harvest", str(root), "--workers", "1",
               "--config", str(config)]
        m = run_measured(cmd, cwd=Path(tmp))
        _check(m, "profiled harvest")
    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs()
    buf.write(f"cProfile of `imgomop harvest {root} --workers 1` ({m.wall_seconds:.1f} s under the profiler)\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    text = buf.getvalue()
    out_prefix.with_suffix(".profile.txt").write_text(text)
    return text


def warm_page_cache(roots: list[Path]) -> tuple[int, int, float]:
    started = time.perf_counter()
    files = nbytes = 0
    for root in roots:
        for path in sorted_files(root):
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    nbytes += len(chunk)
            files += 1
    return files, nbytes, time.perf_counter() - started


# --- reporting -------------------------------------------------------------------------------


def _fmt_mb(value: float | None) -> str:
    return f"{value:,.0f}" if value else "-"


def table(results: list[Result]) -> str:
    head = (f"{'run':<52} {'files':>6} {'MB':>5} {'work s':>7} {'files/s':>8} {'MB/s':>6} {'workers':>7} "
            f"{'files/s/core':>12} {'process s':>9} {'files/s':>8} {'RSS max proc':>12} {'RSS tree':>8} {'PSS tree':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        mem = r.memory
        lines.append(
            f"{r.name:<52} {r.files:>6} {r.bytes / MB:>5,.0f} {r.seconds:>7.2f} {r.files_per_s:>8,.0f} {r.mb_per_s:>6,.1f} "
            f"{r.workers:>7} {r.files_per_s_per_core:>12,.0f} {r.process_seconds:>9.2f} {r.process_files_per_s:>8,.0f} "
            f"{_fmt_mb(mem.get('max_rss_largest_process_mb')):>12} "
            f"{_fmt_mb(mem.get('peak_tree_rss_mb')):>8} {_fmt_mb(mem.get('peak_tree_pss_mb')):>8}"
        )
    lines += [
        "work s: the baseline's loop (walk + dcmread); the harvest's own run record (discovery, reading, DuckDB writes,",
        "        series refresh). process s: the whole child process, interpreter start-up and imports included.",
        "files/s, MB/s, files/s/core: from work s (MB = 10^6 bytes of DICOM files); files/s/core = files/s / workers.",
        "memory in MB: peak RSS of the largest single process (wait4), peak sum of RSS / PSS over the process tree (polled).",
    ]
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000, help="corpus size (default 20000)")
    parser.add_argument("--subset-files", type=int, default=2000, help="files in the small corpus for the memory comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus-dir", type=Path, help="where the corpus is built and cached (default benchmarks/out/corpus-<N>)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "out", help="where results are written")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="harvest workers (default: os.cpu_count())")
    parser.add_argument("--imgomop", default=None, help="the imgomop command (default: next to this Python, else on PATH)")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile a single-worker harvest: always, never, or when the per-core ratio misses the target")
    args = parser.parse_args(argv)

    imgomop = args.imgomop or (
        str(Path(sys.executable).parent / "imgomop") if (Path(sys.executable).parent / "imgomop").exists()
        else shutil.which("imgomop")
    )
    if not imgomop:
        raise SystemExit("imgomop not found: install the project (pip install -e .) or pass --imgomop")
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus_dir = (args.corpus_dir or out_dir / f"corpus-{args.files}").resolve()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    print(f"corpus: {corpus_dir} ({args.files} files, seed {args.seed})", flush=True)
    manifest = build_corpus(corpus_dir, args.files, args.seed, args.subset_files)
    if manifest["reused"]:
        print(f"  reused (built earlier in {manifest['build_seconds']} s)")
    else:
        print(f"  built in {manifest['build_seconds']} s")
    print(f"  {manifest['total_bytes'] / MB:,.0f} MB, {manifest['patients']} patients, {manifest['studies']} studies, "
          f"{manifest['series']} series; files by modality: {manifest['files_by_modality']}")
    full_root = Path(manifest["dicom_dir"])
    subset_root = Path(manifest["subset_dir"]) if manifest["subset_dir"] else None

    roots = [full_root] + ([subset_root] if subset_root else [])
    warm_files, warm_bytes, warm_s = warm_page_cache(roots)
    print(f"page cache warmed: read every file once ({warm_files} files, {warm_bytes / MB:,.0f} MB in {warm_s:.1f} s); "
          "all runs below see the same warm cache", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix=f"harvest-{stamp}-", dir=out_dir))
    try:
        n, nbytes = manifest["files"], manifest["total_bytes"]
        results: list[Result] = []
        print("running (a) baseline loop ...", flush=True)
        results.append(run_baseline(full_root, n, nbytes, scratch))
        print(f"running (b) imgomop harvest --workers {args.workers} ...", flush=True)
        results.append(run_harvest(imgomop, full_root, n, nbytes, args.workers, f"imgomop harvest --workers {args.workers}", scratch))
        if args.workers != 1:
            print("running (c) imgomop harvest --workers 1 ...", flush=True)
            results.append(run_harvest(imgomop, full_root, n, nbytes, 1, "imgomop harvest --workers 1", scratch))
        if subset_root:
            k, kbytes = args.subset_files, manifest["subset_bytes"]
            for w in sorted({args.workers, 1}, reverse=True):
                print(f"running (d) imgomop harvest --workers {w} on the {k}-file subset ...", flush=True)
                results.append(run_harvest(imgomop, subset_root, k, kbytes, w, f"imgomop harvest --workers {w} ({k}-file subset)", scratch))

        baseline = results[0]
        by_name = {r.name: r for r in results}
        per_core = {
            f"workers={w}": by_name[f"imgomop harvest --workers {w}"].files_per_s_per_core / baseline.files_per_s
            for w in sorted({args.workers, 1}, reverse=True)
        }
        per_core_process = {
            f"workers={w}": by_name[f"imgomop harvest --workers {w}"].process_files_per_s / w / baseline.process_files_per_s
            for w in sorted({args.workers, 1}, reverse=True)
        }
        memory_ratio = {}
        if subset_root:
            for w in sorted({args.workers, 1}, reverse=True):
                big = by_name[f"imgomop harvest --workers {w}"].memory
                small = by_name[f"imgomop harvest --workers {w} ({args.subset_files}-file subset)"].memory
                memory_ratio[f"workers={w}"] = {
                    key: _ratio(big.get(key), small.get(key))
                    for key in ("max_rss_largest_process_mb", "peak_tree_rss_mb", "peak_tree_pss_mb")
                }

        print()
        print(table(results))
        print()
        print(f"cores: os.cpu_count()={os.cpu_count()}, usable={len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
        print("ratios:")
        for key, value in per_core.items():
            verdict = "meets" if value >= PER_CORE_TARGET else "MISSES"
            print(f"  harvest per-core files/s / baseline files/s ({key}): {value:.2f}x  (target >= {PER_CORE_TARGET:.0f}x: {verdict}); "
                  f"whole processes: {per_core_process[key]:.2f}x")
        for key, ratios in memory_ratio.items():
            parts = ", ".join(f"{name.replace('_mb', '')} {value:.2f}x" for name, value in ratios.items() if value)
            print(f"  peak memory {n} files / {args.subset_files} files ({key}): {parts}  (target ~1.0x, flat)")

        prefix = out_dir / f"harvest-{stamp}"
        profile_text = None
        if args.profile == "always" or (args.profile == "auto" and min(per_core.values()) < PER_CORE_TARGET):
            print("\nper-core target missed: profiling a single-worker harvest ..." if args.profile == "auto" else "\nprofiling ...", flush=True)
            profile_text = profile_single_worker(imgomop, full_root, scratch, prefix)
            print(profile_text)

        report = {
            "timestamp": stamp,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()},
            "corpus": manifest,
            "page_cache": {"warmed": True, "files_read": warm_files, "bytes_read": warm_bytes, "seconds": round(warm_s, 2)},
            "results": [r.as_dict() for r in results],
            "ratios": {"harvest_per_core_over_baseline": per_core,
                       "harvest_per_core_over_baseline_whole_process": per_core_process,
                       "peak_memory_full_over_subset": memory_ratio},
            "targets": {"harvest_per_core_over_baseline": f">= {PER_CORE_TARGET}", "peak_memory_full_over_subset": "~1.0"},
            "profile": {"text": prefix.with_suffix(".profile.txt").name, "prof": prefix.with_suffix(".prof").name}
            if profile_text else None,
        }
        json_path = prefix.with_suffix(".json")
        json_path.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nresults: {json_path}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
