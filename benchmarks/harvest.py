"""Harvest throughput and memory: `imgomop harvest` side by side with a plain pydicom loop.

    python benchmarks/harvest.py [--files 20000] [--workers N] [--repeat 1] [--profile auto|always|never]
                                 [--series-heavy N]

In one run, on the same synthetic corpus (benchmarks/corpus.py) and a warm page cache:
  (a) baseline: one process looping `pydicom.dcmread(path, stop_before_pixels=True)` over every file;
  (b) `imgomop harvest CORPUS --workers <os.cpu_count()>` into a fresh DuckDB warehouse;
  (c) `imgomop harvest CORPUS --workers 1` (the per-core figure without pool overheads);
  (d) both harvests again on a 2,000-file subset of the same corpus, for peak memory;
  (e) `imgomop harvest` of an empty folder: the fixed cost (start-up, imports, warehouse set-up);
  (f) with --series-heavy N only: (a), (b) and (c) again on a second archive, N series of one file
      each (corpus.build_one_file_series_archive: CR, DX, CT, MR and secondary-capture files, each
      with its own Series and SOP Instance UIDs), where the harvest writes a representative header
      and a series row per file;
  (g) `imgomop harvest CORPUS --workers <cores>` again into the warehouse of a first harvest (not
      measured), nothing changed: an incremental re-run, which looks up and stats every file.
Each runs as its own subprocess. Printed: a table of files/s, MB/s, files/s per core, files per
CPU-second and peak memory, and the ratios against the targets (harvest per core >= 5x the
baseline; peak memory at the full corpus / at 2,000 files ~ 1.0x); for (f), the per-core ratio
over that archive's own loop, and for (g) the re-run's files/s over the loop's, neither with a target. The figures also go to
benchmarks/out/harvest-<timestamp>.json. No timing is asserted anywhere; this script reports.
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
from corpus import build_corpus, build_one_file_series_archive, sorted_files  # noqa: E402

PER_CORE_TARGET = 5.0
MB = 1_000_000
BASELINE_LABEL = "baseline: pydicom.dcmread(stop_before_pixels) loop"
SERIES_HEAVY_BASELINE_LABEL = "series-heavy: pydicom.dcmread loop"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

BASELINE_CODE = r"""
import json, os, sys, time, warnings
import pydicom
warnings.simplefilter("ignore")
root = sys.argv[1]
started, cpu_started = time.perf_counter(), time.process_time()
files = errors = 0
for folder, subfolders, names in os.walk(root):
    subfolders.sort()
    for name in sorted(names):
        try:
            pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True)
        except Exception:
            errors += 1
        files += 1
print(json.dumps({"files": files, "errors": errors, "loop_seconds": time.perf_counter() - started,
                  "loop_cpu_seconds": time.process_time() - cpu_started}))
"""


# --- measuring a child process ---------------------------------------------------------------


@dataclass
class Measured:
    """One child process tree: wall and CPU time, exit code, output and peak memory."""

    wall_seconds: float
    cpu_seconds: float  # user + system of the child and every descendant it waited for
    returncode: int
    stdout: str
    stderr: str
    max_rss_largest_process_mb: float  # wait4 ru_maxrss: the largest single process of the tree
    user_seconds: float = 0.0  # the user part of cpu_seconds
    system_seconds: float = 0.0  # the kernel part of cpu_seconds
    peak_tree_rss_mb: float | None = None  # polled: sum of RSS over the tree (shared pages counted per process)
    peak_tree_pss_mb: float | None = None  # polled: sum of PSS (shared pages divided among the sharers)
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


class TreePolling:
    """Whether `run_measured` polls the process tree: in the first repeat of each configuration only.
    Reading /proc/<pid>/smaps_rollup every 50 ms walks the measured processes' page tables; it cost a
    two-worker harvest of 20,000 files about 3% of its time (median of 5: 0.69 against 0.67 s)."""

    enabled = True


class _TreePoller(threading.Thread):
    """Samples the summed RSS and PSS of a process tree every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss_kb = self.peak_pss_kb = self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            rss = pss = 0
            for p in _tree(self.pid)[1:]:  # not the launcher itself
                r, s = _rss_pss_kb(p)
                rss, pss = rss + r, pss + s
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self.samples += 1
            self.stop.wait(self.interval)


# A child's ru_maxrss counts the memory of the process it was forked from (the kernel carries the
# pre-exec high-water mark over), so the measured command is started by this small launcher (python -S,
# a few MB) rather than by the benchmark process itself; it reports its child's wait4 usage as JSON.
LAUNCHER_CODE = r"""
import json, os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"maxrss": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime, "sys": ru.ru_stime}, fh)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> Measured:
    """Run cmd to completion; peak memory from wait4 (largest process) and /proc polling (whole tree)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".json") as usage_file:
        started = time.perf_counter()
        launcher = [sys.executable, "-S", "-c", LAUNCHER_CODE, usage_file.name, *cmd]
        proc = subprocess.Popen(launcher, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        poller = _TreePoller(proc.pid) if TreePolling.enabled and Path(f"/proc/{proc.pid}").exists() else None
        if poller:
            poller.start()
        proc.wait()
        wall = time.perf_counter() - started
        if poller:
            poller.stop.set()
            poller.join()
        out.seek(0)
        err.seek(0)
        usage = json.loads(usage_file.read() or '{"maxrss": 0, "cpu": 0}')
        rss_unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB elsewhere
        return Measured(
            wall_seconds=wall,
            cpu_seconds=usage["cpu"],
            returncode=proc.returncode,
            stdout=out.read(),
            stderr=err.read(),
            max_rss_largest_process_mb=usage["maxrss"] * rss_unit / MB,
            user_seconds=usage.get("user", 0.0),
            system_seconds=usage.get("sys", 0.0),
            peak_tree_rss_mb=poller.peak_rss_kb * 1024 / MB if poller and poller.samples else None,
            peak_tree_pss_mb=poller.peak_pss_kb * 1024 / MB if poller and poller.peak_pss_kb else None,
            samples=poller.samples if poller else 0,
        )


def _check(m: Measured, what: str) -> None:
    if m.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {m.returncode}:\n{m.stderr[-4000:]}")


# --- the runs --------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    files: int
    bytes: int
    workers: int
    seconds: float  # the work: the baseline's loop; the harvest's own run record (started_at -> ended_at)
    process_seconds: float  # the whole child process, interpreter start-up and imports included
    cpu_seconds: float  # CPU of the work: the baseline loop's; the harvest tree's minus the empty-folder harvest's
    memory: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)  # every repeat: seconds, process_seconds, cpu_seconds, memory

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

    @property
    def files_per_cpu_s(self) -> float:
        return self.files / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")

    @property
    def cpu_per_wall(self) -> float:
        """Cores kept busy on average: ~1.0 for a single process with a core to itself, less when it had to share."""
        return self.cpu_seconds / self.seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "files_per_s": self.files_per_s, "mb_per_s": self.mb_per_s,
                "files_per_s_per_core": self.files_per_s_per_core, "process_files_per_s": self.process_files_per_s,
                "files_per_cpu_s": self.files_per_cpu_s, "cpu_per_wall": self.cpu_per_wall}


def _memory(m: Measured) -> dict:
    return {
        "max_rss_largest_process_mb": round(m.max_rss_largest_process_mb, 1),
        "peak_tree_rss_mb": round(m.peak_tree_rss_mb, 1) if m.peak_tree_rss_mb else None,
        "peak_tree_pss_mb": round(m.peak_tree_pss_mb, 1) if m.peak_tree_pss_mb else None,
        "poll_samples": m.samples,
    }


def _best(results: list[Result]) -> Result:
    """The repeat with the shortest work time; memory is the worst (largest) over the repeats."""
    best = min(results, key=lambda r: r.seconds)
    memory = {}
    for key in ("max_rss_largest_process_mb", "peak_tree_rss_mb", "peak_tree_pss_mb"):
        values = [r.memory.get(key) for r in results if r.memory.get(key)]
        memory[key] = max(values) if values else None
    return Result(**{**asdict(best), "memory": memory, "runs": [
        {"seconds": round(r.seconds, 3), "process_seconds": round(r.process_seconds, 3),
         "cpu_seconds": round(r.cpu_seconds, 3), "memory": r.memory} for r in results]})


def run_baseline(root: Path, files: int, nbytes: int, scratch: Path, env: dict[str, str],
                 label: str = BASELINE_LABEL) -> Result:
    m = run_measured([sys.executable, "-c", BASELINE_CODE, str(root)], cwd=scratch, env=env)
    _check(m, "baseline loop")
    report = json.loads(m.stdout.strip().splitlines()[-1])
    if report["files"] != files:
        raise SystemExit(f"baseline saw {report['files']} files, expected {files}")
    return Result(
        name=label,
        files=files,
        bytes=nbytes,
        workers=1,
        seconds=report["loop_seconds"],
        process_seconds=m.wall_seconds,
        cpu_seconds=report["loop_cpu_seconds"],
        memory=_memory(m),
        detail={"errors": report["errors"], "timed": "the loop (os.walk + dcmread of every file), in the child"},
    )


def _write_config(workdir: Path) -> Path:
    config = workdir / "imgomop.toml"
    config.write_text(
        "[warehouse]\ntarget = \"duckdb\"\n\n[warehouse.duckdb]\n"
        f"identified = \"{workdir / 'identified.duckdb'}\"\ndeidentified = \"{workdir / 'deidentified.duckdb'}\"\n"
    )
    return config


def _warehouse_counts(path: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("raw_dicom_instance", "raw_dicom_series", "raw_harvest_error")}
        start, end = con.execute(
            "SELECT started_at, ended_at FROM raw_harvest_run ORDER BY started_at DESC LIMIT 1").fetchone()
        counts["run_seconds"] = (end - start).total_seconds()
        counts["errors_by_class"] = dict(con.execute(
            "SELECT error_class, COUNT(*) FROM raw_harvest_error GROUP BY 1 ORDER BY 2 DESC").fetchall())
        return counts
    finally:
        con.close()


def harvest_once(imgomop: str, root: Path, workers: int, scratch: Path, env: dict[str, str],
                 again: bool = False) -> tuple[Measured, dict]:
    """One `imgomop harvest` into a fresh warehouse (with `again`, then a second one into the same
    warehouse, which is the one measured); the measurement and the warehouse's counts."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        workdir = Path(tmp)
        config = _write_config(workdir)
        cmd = [imgomop, "harvest", str(root), "--workers", str(workers), "--config", str(config)]
        for run in ("first", "again") if again else ("first",):
            m = run_measured(cmd, cwd=workdir, env=env)
            _check(m, " ".join(cmd) + (" (again)" if run == "again" else ""))
        return m, _warehouse_counts(workdir / "identified.duckdb")


def rerun_label(workers: int) -> str:
    return f"imgomop harvest --workers {workers}, again (nothing changed)"


def run_harvest(imgomop: str, root: Path, files: int, nbytes: int, workers: int, label: str, scratch: Path,
                env: dict[str, str], fixed_cpu: float, again: bool = False) -> Result:
    """A harvest into a fresh warehouse; with `again`, the re-run that follows it (nothing changed)."""
    m, counts = harvest_once(imgomop, root, workers, scratch, env, again)
    if counts["raw_dicom_instance"] + counts["raw_harvest_error"] != files:
        raise SystemExit(f"{label}: {counts} does not account for all {files} files")
    if again and f"{files} files seen, {files} unchanged" not in m.stdout:
        raise SystemExit(f"{label}: the re-run did not find every file unchanged: {m.stdout.strip()}")
    return Result(
        name=label,
        files=files,
        bytes=nbytes,
        workers=workers,
        seconds=counts["run_seconds"],
        process_seconds=m.wall_seconds,
        cpu_seconds=m.cpu_seconds - fixed_cpu,
        memory=_memory(m),
        detail={"warehouse": counts, "stdout": m.stdout.strip(), "process_cpu_seconds": round(m.cpu_seconds, 3)},
    )


def profile_single_worker(imgomop: str, root: Path, scratch: Path, env: dict[str, str], out_prefix: Path,
                          top: int = 15) -> str:
    """cProfile of `imgomop harvest --workers 1` (no pool: all the work runs in the profiled process)."""
    prof = out_prefix.with_suffix(".prof")
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        config = _write_config(Path(tmp))
        cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), imgomop, "harvest", str(root), "--workers", "1",
               "--config", str(config)]
        m = run_measured(cmd, cwd=Path(tmp), env=env)
        _check(m, "profiled harvest")
    buf = io.StringIO()
    buf.write(f"cProfile of `imgomop harvest {root} --workers 1` ({m.wall_seconds:.1f} s under the profiler)\n")
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top + 10)
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


def child_env(mode: str, out_dir: Path) -> tuple[dict[str, str], str]:
    """The children's environment. 'cached': byte-compiled modules are cached (as after a normal install),
    in a folder of this benchmark's own when PYTHONDONTWRITEBYTECODE would prevent it; 'env': as inherited."""
    env = dict(os.environ)
    env.pop("CI", None)
    if mode == "env" or not env.get("PYTHONDONTWRITEBYTECODE"):
        return env, "as inherited"
    env.pop("PYTHONDONTWRITEBYTECODE")
    env["PYTHONPYCACHEPREFIX"] = str(out_dir / "pycache")
    return env, (f"PYTHONDONTWRITEBYTECODE is set here; children cache bytecode in {out_dir / 'pycache'} instead "
                 "(PYTHONPYCACHEPREFIX), warmed before timing, so start-up is that of an installed package")


# --- reporting -------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return format(value, spec) if value else "-"


def table(results: list[Result]) -> str:
    head = (f"{'run':<52} {'files':>6} {'MB':>5} {'work s':>7} {'files/s':>8} {'MB/s':>6} {'workers':>7} "
            f"{'files/s/core':>12} {'files/CPU-s':>11} {'CPU/wall':>8} {'process s':>9} {'RSS max proc':>12} {'RSS tree':>8} {'PSS tree':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        mem = r.memory
        lines.append(
            f"{r.name:<52} {r.files:>6} {r.bytes / MB:>5,.0f} {r.seconds:>7.2f} {r.files_per_s:>8,.0f} {r.mb_per_s:>6,.1f} "
            f"{r.workers:>7} {r.files_per_s_per_core:>12,.0f} {r.files_per_cpu_s:>11,.0f} {r.cpu_per_wall:>8.2f} "
            f"{r.process_seconds:>9.2f} "
            f"{_fmt(mem.get('max_rss_largest_process_mb')):>12} "
            f"{_fmt(mem.get('peak_tree_rss_mb')):>8} {_fmt(mem.get('peak_tree_pss_mb')):>8}"
        )
    lines += [
        "work s: the baseline's loop (os.walk + dcmread); the harvest's own run record, started_at -> ended_at (discovery,",
        "        reading, DuckDB writes, series refresh). process s: the whole child, interpreter start-up and imports included.",
        "files/s, MB/s, files/s/core: from work s (MB = 10^6 bytes of DICOM files); files/s/core = files/s / workers.",
        "files/CPU-s: files per CPU-second of work (harvest: CPU of the whole process tree minus that of harvesting an",
        "        empty folder); unlike files/s it does not depend on what else the machine runs.",
        "CPU/wall: CPU seconds of work / work s; below 1.0 for a single process means it waited for a core.",
        "memory in MB: peak RSS of the largest single process (wait4), peak sum of RSS / PSS over the process tree (polled, first repeat only).",
    ]
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _per_core_ratios(baseline: Result, harvests: dict[int, Result]) -> tuple[dict, dict, dict]:
    """Each harvest over the baseline: files/s per core, files per CPU-second, whole-process files/s per core."""
    per_core, per_cpu_second, per_core_process = {}, {}, {}
    for w, r in harvests.items():
        per_core[f"workers={w}"] = r.files_per_s_per_core / baseline.files_per_s
        per_cpu_second[f"workers={w}"] = r.files_per_cpu_s / baseline.files_per_cpu_s
        per_core_process[f"workers={w}"] = r.process_files_per_s / w / baseline.process_files_per_s
    return per_core, per_cpu_second, per_core_process


# --- the series-heavy archive (--series-heavy N) -----------------------------------------------


def series_heavy_label(workers: int) -> str:
    return f"series-heavy: imgomop harvest --workers {workers}"


def prepare_series_heavy(out_dir: Path, n_series: int, seed: int) -> dict:
    """Build (or reuse) the one-file-series archive under out_dir and describe it; return its manifest."""
    archive_dir = out_dir / f"series-heavy-{n_series}-seed{seed}"
    print(f"series-heavy archive: {archive_dir} ({n_series} series of one file each, seed {seed})", flush=True)
    manifest = build_one_file_series_archive(archive_dir, n_series, seed)
    print(f"  {'reused (built earlier in' if manifest['reused'] else 'built in'} {manifest['build_seconds']} s"
          f"{')' if manifest['reused'] else ''}")
    print(f"  {manifest['total_bytes'] / MB:,.0f} MB, {manifest['patients']} patients, {manifest['studies']} studies, "
          f"{manifest['series']} series in {manifest['folders']} folders of {manifest['files_per_folder']}; "
          f"files by modality: {manifest['files_by_modality']}")
    return manifest


def series_heavy_plan(imgomop: str, manifest: dict, worker_counts: list[int], scratch: Path, env: dict[str, str],
                      fixed_cpu: float) -> list[tuple[str, object]]:
    """The loop baseline and the harvests on the series-heavy archive, as entries of main's run plan."""
    root, n, nbytes = Path(manifest["dicom_dir"]), manifest["files"], manifest["total_bytes"]
    plan: list[tuple[str, object]] = [(SERIES_HEAVY_BASELINE_LABEL, lambda: run_baseline(
        root, n, nbytes, scratch, env, label=SERIES_HEAVY_BASELINE_LABEL))]
    for w in worker_counts:
        label = series_heavy_label(w)
        plan.append((label, lambda w=w, label=label: run_harvest(
            imgomop, root, n, nbytes, w, label, scratch, env, fixed_cpu)))
    return plan


def find_imgomop(given: str | None) -> str:
    """The imgomop command: the one given, else the one beside this Python, else on PATH."""
    beside = Path(sys.executable).parent / "imgomop"
    imgomop = given or (str(beside) if beside.exists() else shutil.which("imgomop"))
    if not imgomop:
        raise SystemExit("imgomop not found: install the project (pip install -e .) or pass --imgomop")
    return imgomop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000, help="corpus size (default 20000)")
    parser.add_argument("--subset-files", type=int, default=2000, help="files in the small corpus for the memory comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus-dir", type=Path, help="where the corpus is built and cached (default benchmarks/out/corpus-<N>)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "out", help="where results are written")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="harvest workers (default: os.cpu_count())")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration, interleaved; the fastest counts")
    parser.add_argument("--imgomop", default=None, help="the imgomop command (default: next to this Python, else on PATH)")
    parser.add_argument("--bytecode", choices=("cached", "env"), default="cached",
                        help="cached: children reuse byte-compiled modules as an installed package does (default); "
                             "env: children inherit the environment as is")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile a single-worker harvest: always, never, or when the per-core ratio misses the target")
    parser.add_argument("--series-heavy", type=int, default=0, metavar="N",
                        help="also run the loop and the harvests on an archive of N series of one file each, built and "
                             "cached under OUT_DIR/series-heavy-<N>-seed<S> (default 0: off)")
    args = parser.parse_args(argv)

    imgomop = find_imgomop(args.imgomop)
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus_dir = (args.corpus_dir or out_dir / f"corpus-{args.files}").resolve()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    load_before = _loadavg()

    print(f"corpus: {corpus_dir} ({args.files} files, seed {args.seed})", flush=True)
    manifest = build_corpus(corpus_dir, args.files, args.seed, args.subset_files)
    print(f"  {'reused (built earlier in' if manifest['reused'] else 'built in'} {manifest['build_seconds']} s"
          f"{')' if manifest['reused'] else ''}")
    print(f"  {manifest['total_bytes'] / MB:,.0f} MB, {manifest['patients']} patients, {manifest['studies']} studies, "
          f"{manifest['series']} series; files by modality: {manifest['files_by_modality']}")
    full_root = Path(manifest["dicom_dir"])
    subset_root = Path(manifest["subset_dir"]) if manifest["subset_dir"] else None
    series_heavy = prepare_series_heavy(out_dir, args.series_heavy, args.seed) if args.series_heavy else None

    scratch = Path(tempfile.mkdtemp(prefix=f"harvest-{stamp}-", dir=out_dir))
    try:
        env, env_note = child_env(args.bytecode, out_dir)
        print(f"bytecode: {env_note}")
        empty = scratch / "empty"
        empty.mkdir()
        run_measured([sys.executable, "-c", BASELINE_CODE, str(empty)], cwd=scratch, env=env)  # warm-up: compile
        harvest_once(imgomop, empty, 1, scratch, env)  # warm-up: compile, lazy imports
        fixed, _ = harvest_once(imgomop, empty, 1, scratch, env)
        print(f"fixed cost of `imgomop harvest` (an empty folder): {fixed.wall_seconds:.2f} s wall, "
              f"{fixed.cpu_seconds:.2f} s CPU, {fixed.max_rss_largest_process_mb:.0f} MB RSS")

        roots = [full_root] + ([subset_root] if subset_root else []) + (
            [Path(series_heavy["dicom_dir"])] if series_heavy else [])
        warm_files, warm_bytes, warm_s = warm_page_cache(roots)
        print(f"page cache warmed: read every file once ({warm_files} files, {warm_bytes / MB:,.0f} MB in {warm_s:.1f} s); "
              "every run below sees the same warm cache", flush=True)

        n, nbytes = manifest["files"], manifest["total_bytes"]
        worker_counts = sorted({args.workers, 1}, reverse=True)
        plan: list[tuple[str, object]] = [("baseline", lambda: run_baseline(full_root, n, nbytes, scratch, env))]
        for w in worker_counts:
            label = f"imgomop harvest --workers {w}"
            plan.append((label, lambda w=w, label=label: run_harvest(
                imgomop, full_root, n, nbytes, w, label, scratch, env, fixed.cpu_seconds)))
        if subset_root:
            k, kbytes = args.subset_files, manifest["subset_bytes"]
            for w in worker_counts:
                label = f"imgomop harvest --workers {w} ({k}-file subset)"
                plan.append((label, lambda w=w, label=label: run_harvest(
                    imgomop, subset_root, k, kbytes, w, label, scratch, env, fixed.cpu_seconds)))
        if series_heavy:
            plan += series_heavy_plan(imgomop, series_heavy, worker_counts, scratch, env, fixed.cpu_seconds)
        plan.append((rerun_label(args.workers), lambda: run_harvest(
            imgomop, full_root, n, nbytes, args.workers, rerun_label(args.workers), scratch, env, fixed.cpu_seconds,
            again=True)))
        collected: dict[str, list[Result]] = {label: [] for label, _ in plan}
        for rep in range(args.repeat):
            TreePolling.enabled = rep == 0
            for label, run in plan:
                print(f"running {label}{f' (repeat {rep + 1}/{args.repeat})' if args.repeat > 1 else ''} ...", flush=True)
                collected[label].append(run())
        results = [_best(collected[label]) for label, _ in plan]
        load_after = _loadavg()

        baseline = results[0]
        by_name = {r.name: r for r in results}
        per_core, per_core_cpu, per_core_process = _per_core_ratios(
            baseline, {w: by_name[f"imgomop harvest --workers {w}"] for w in worker_counts})
        series_heavy_ratios = _per_core_ratios(
            by_name[SERIES_HEAVY_BASELINE_LABEL], {w: by_name[series_heavy_label(w)] for w in worker_counts}
        ) if series_heavy else None
        memory_ratio = {}
        if subset_root:
            for w in worker_counts:
                big = by_name[f"imgomop harvest --workers {w}"].memory
                small = by_name[f"imgomop harvest --workers {w} ({args.subset_files}-file subset)"].memory
                memory_ratio[f"workers={w}"] = {
                    key: _ratio(big.get(key), small.get(key))
                    for key in ("max_rss_largest_process_mb", "peak_tree_rss_mb", "peak_tree_pss_mb")
                }

        print()
        print(table(results))
        print()
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
        print(f"cores: os.cpu_count()={os.cpu_count()}, usable={affinity}; load average before {load_before}, "
              f"after {load_after} (other work on the machine lowers files/s, not files/CPU-s)")
        busy = load_before is not None and load_before[0] >= 1.0
        if busy:
            print(f"WARNING: the machine was busy before this run (1-minute load {load_before[0]} on {affinity} cores): "
                  "files/s figures and their ratio depend on what else ran; quote the per-CPU-second ratio")
        print("ratios:")
        for key, value in per_core.items():
            verdict = "meets" if value >= PER_CORE_TARGET else "MISSES"
            print(f"  harvest per-core files/s / baseline files/s ({key}): {value:.2f}x  (target >= {PER_CORE_TARGET:.0f}x: "
                  f"{verdict}); per CPU-second: {per_core_cpu[key]:.2f}x; whole processes: {per_core_process[key]:.2f}x")
        for key, ratios in memory_ratio.items():
            parts = ", ".join(f"{name.removesuffix('_mb')} {value:.2f}x" for name, value in ratios.items() if value)
            print(f"  peak memory {n} files / {args.subset_files} files ({key}): {parts}  (target ~1.0x, flat)")
        if series_heavy:
            sh_per_core, sh_per_cpu, sh_process = series_heavy_ratios
            for key, value in sh_per_core.items():
                print(f"  series-heavy archive (one file per series): harvest per-core files/s / its loop's files/s ({key}): "
                      f"{value:.2f}x  (a separate archive, no target); per CPU-second: {sh_per_cpu[key]:.2f}x; "
                      f"whole processes: {sh_process[key]:.2f}x")

        rerun = by_name[rerun_label(args.workers)]
        rerun_ratio = (n / rerun.seconds) / (n / baseline.seconds)
        print(f"  re-run of the unchanged corpus (workers={args.workers}): {n / rerun.seconds:,.0f} files/s, "
              f"{rerun_ratio:.2f}x the loop's files/s (no target)")

        prefix = out_dir / f"harvest-{stamp}"
        profile_text = None
        if args.profile == "always" or (args.profile == "auto" and min(per_core.values()) < PER_CORE_TARGET):
            print("\nprofiling a single-worker harvest (cProfile) ...", flush=True)
            profile_text = profile_single_worker(imgomop, full_root, scratch, env, prefix)
            print(profile_text)

        report = {
            "timestamp": stamp,
            "command": " ".join([Path(sys.executable).name, *(argv if argv is not None else sys.argv)]),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpu_count": os.cpu_count(), "usable_cores": affinity,
                        "load_average_before": load_before, "load_average_after": load_after,
                        "busy": busy},
            "bytecode": env_note,
            "corpus": manifest,
            "page_cache": {"warmed": True, "files_read": warm_files, "bytes_read": warm_bytes, "seconds": round(warm_s, 2)},
            "fixed_cost_empty_folder": {"wall_seconds": fixed.wall_seconds, "cpu_seconds": fixed.cpu_seconds,
                                        "max_rss_mb": fixed.max_rss_largest_process_mb},
            "results": [r.as_dict() for r in results],
            "ratios": {"harvest_per_core_over_baseline": per_core,
                       "harvest_per_cpu_second_over_baseline": per_core_cpu,
                       "harvest_per_core_over_baseline_whole_process": per_core_process,
                       "peak_memory_full_over_subset": memory_ratio,
                       "rerun_files_per_second_over_baseline": round(rerun_ratio, 3)},
            "targets": {"harvest_per_core_over_baseline": f">= {PER_CORE_TARGET}", "peak_memory_full_over_subset": "~1.0"},
            "profile": {"text": prefix.with_suffix(".profile.txt").name, "prof": prefix.with_suffix(".prof").name}
            if profile_text else None,
        }
        if series_heavy:
            sh_per_core, sh_per_cpu, sh_process = series_heavy_ratios
            report["series_heavy"] = {
                "archive": series_heavy,
                "results": [SERIES_HEAVY_BASELINE_LABEL, *(series_heavy_label(w) for w in worker_counts)],
                "ratios": {"harvest_per_core_over_baseline": sh_per_core,
                           "harvest_per_cpu_second_over_baseline": sh_per_cpu,
                           "harvest_per_core_over_baseline_whole_process": sh_process},
                "target": None,
            }
        json_path = prefix.with_suffix(".json")
        json_path.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nresults: {json_path}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
