"""Scrub throughput: `imgomop scrub` side by side with a pydicom loop and de-identifiers from PyPI.

    python benchmarks/scrub.py [--ct-files 2000] [--us-files 300] [--tools dicognito,dicom-anonymizer,deid,dcmanon]

Two corpora, built once from pydicom's bundled real test files and cached under
benchmarks/out/scrub-corpus/ (deterministic per seed):
  CT  uncompressed 512x512 16-bit CT (CT_small.dcm's header, its pixels upsampled), ~0.5 MB a file,
      new patient/study/series/instance identity and dates, 100 files a series: the header-only path;
  US  640x480 RGB ultrasound (examples_rgb_color.dcm upsampled), every 4th file a 6-frame cine,
      GE Healthcare LOGIQ E9, matched by a pixel rule written to benchmarks/out/us-rules.script
      (blank a 640x60 band at the top): the pixel path.

In one run, on the same flat folders and a warm page cache, each as its own subprocess:
  (a) a minimal pydicom loop: dcmread, delete PatientName/PatientID, set a few attributes, save_as
      (on US it also zeroes the top band through pixel_array, the same work as the pixel rule);
  (b) `imgomop scrub --profile pre-irb --pixel-script us-rules.script` with --workers 1 and
      --workers os.cpu_count();
  (c) de-identifiers from PyPI with their own default profiles, each in its own virtual
      environment under benchmarks/out/venvs/ (created with uv when missing): dicognito,
      dicom-anonymizer, deid, dcmanon;
  (d) the I/O floor: a plain Python loop that copies each file unchanged to a file of the same
      name with shutil.copyfile (on Linux the kernel copies it: no trip through user memory,
      cheaper than writing the bytes back from memory as dcmanon's loop does), no parsing.
      No tool that writes every file can beat it by much, so the fastest tool can be beaten by a
      factor k only where the floor is at least k times as fast as that tool.
Every tool writes its outputs to the same place: a fresh folder under --out-root (default the
system temp dir; pass --out-root benchmarks/out to write beside the corpus, as before). Where the
outputs go can matter more than the tools: a folder that something watches or indexes makes every
file created there cost the same extra for each tool, which compresses the ratios.
Every run is checked afterwards (output files counted, one output read back); a tool that did
not write every file is reported as failed, not timed.

Timing: every command runs twice per repeat, on a one-file folder and on the whole corpus; the
work is the difference (N-1 files in wall(N) - wall(1)), so interpreter start-up and imports
cancel out. The whole-process figures are in the JSON too. Per core = divided by the processes
doing the work (the PyPI tools, the loop and the floor are single-process). CPU seconds come from
wait4 of the whole process tree; MB per CPU-second barely moves when other jobs load the machine.
User and system CPU seconds are shown apart (net of the one-file run): the system part is the
kernel's (opening, writing and closing files, page cache), which the floor is made of.

Printed: a table, the ratios (imgomop per-core MB/s over each tool's MB/s and over the fastest
tool's; target on CT: >= 50 MB/s per core and >= 2x the fastest tool; the floor over the fastest
tool and each imgomop run as a fraction of the floor) and the load average.
JSON: benchmarks/out/scrub-<timestamp>.json. With --profile auto (default) a single-worker CT
scrub is profiled with cProfile when the target is missed. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harvest import Measured, child_env, run_measured  # noqa: E402

MB = 1_000_000
CORPUS_VERSION = 2  # 2: study, series and frame UIDs shared as documented (1 gave each file its own)
CT_TARGET_MB_PER_CORE = 50.0
CT_TARGET_OVER_FASTEST = 2.0
US_BAND = 60  # rows blanked at the top of every US frame
US_ROWS, US_COLUMNS = 480, 640
BENCHMARK_KEY = "scrub-benchmark-key-not-a-secret-0123456789abcdef"  # synthetic data only
PHI_MARKER = "BENCH"  # every corpus PatientID and PatientName contains it

US_RULES = f"""Pixel rule for the ultrasound corpus of benchmarks/scrub.py, in the CTP DicomPixelAnonymizer language.

Ultrasound, {US_COLUMNS} x {US_ROWS}: patient banner across the top of every frame

  {{ Modality.equals("US") * Manufacturer.containsIgnoreCase("GE Healthcare") *
    ManufacturerModelName.containsIgnoreCase("LOGIQ E9") * Rows.equals("{US_ROWS}") * Columns.equals("{US_COLUMNS}") }}
  (0,0,{US_COLUMNS},{US_BAND})
"""


# --- corpora ---------------------------------------------------------------------------------


def _uid(*parts: object) -> str:
    """A 2.25 UID derived from parts (pydicom's generate_uid(prefix=None) ignores its entropy
    sources and returns a random UID, which gave every file its own study and series)."""
    digest = hashlib.sha256("|".join(["imgomop-scrub-benchmark", *map(str, parts)]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _identity(ds, kind: str, seed: int, i: int, per_series: int, series_per_study: int) -> None:
    """New patient/study/series/instance identity and dates for file i (deterministic)."""
    series = i // per_series
    study = series // series_per_study
    patient = study  # one study a patient
    number = i % per_series + 1
    study_day = date(2019, 1, 1) + timedelta(days=(study * 37 + seed) % 1500)
    ds.PatientID = f"{PHI_MARKER}{kind}{seed:02d}{patient:05d}"
    ds.PatientName = f"{PHI_MARKER}^{kind}PATIENT{patient:05d}"
    ds.PatientBirthDate = f"{1940 + patient % 60}{1 + patient % 12:02d}{1 + patient % 28:02d}"
    ds.PatientSex = "MF"[patient % 2]
    ds.AccessionNumber = f"ACC{seed:02d}{kind}{study:07d}"
    ds.StudyID = f"S{study:05d}"
    ds.StudyInstanceUID = _uid(seed, kind, "study", study)
    ds.SeriesInstanceUID = _uid(seed, kind, "series", series)
    ds.SOPInstanceUID = _uid(seed, kind, "instance", i)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.FrameOfReferenceUID = _uid(seed, kind, "frame", series)
    ds.SeriesNumber = series % series_per_study + 1
    ds.InstanceNumber = number
    stamp = study_day.strftime("%Y%m%d")
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate"):
        setattr(ds, keyword, stamp)
    ds.StudyTime = f"{8 + study % 10:02d}{study % 60:02d}00"
    ds.ContentTime = f"{8 + study % 10:02d}{number % 60:02d}{i % 60:02d}"
    ds.ReferringPhysicianName = f"REFERRER^{kind}{study % 97:02d}"
    ds.InstitutionName = "BENCHMARK GENERAL HOSPITAL"


def _write(ds, path: Path) -> int:
    partial = path.with_name(f".partial-{path.name}")
    ds.save_as(partial, enforce_file_format=True)
    partial.rename(path)
    return path.stat().st_size


def build_ct(folder: Path, n: int, seed: int) -> None:
    import numpy as np
    import pydicom

    base = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm")
    big = np.kron(base.pixel_array, np.ones((4, 4), dtype=base.pixel_array.dtype))  # 128x128 -> 512x512
    ds = base
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = ["0.661468", "0.661468"]
    ds.StudyDescription = "CT CHEST ABDOMEN PELVIS W CONTRAST"
    for i in range(n):
        _identity(ds, "CT", seed, i, per_series=100, series_per_study=2)
        ds.SeriesDescription = ("AXIAL 5.0 SOFT TISSUE", "AXIAL 1.25 LUNG")[ds.SeriesNumber % 2]
        ds.SliceLocation = f"{-77.2 - 5 * ds.InstanceNumber:.1f}"
        ds.ImagePositionPatient = ["-158.135803", "-179.035797", ds.SliceLocation]
        ds.PixelData = np.roll(big, (i * 7) % 512, axis=1).tobytes()
        _write(ds, folder / f"CT{i:06d}.dcm")


def build_us(folder: Path, n: int, seed: int) -> None:
    import numpy as np
    import pydicom

    base = pydicom.dcmread(Path(pydicom.__file__).parent / "data" / "test_files" / "examples_rgb_color.dcm")
    frame = np.repeat(np.repeat(base.pixel_array, 2, axis=0), 2, axis=1)  # 240x320x3 -> 480x640x3
    frame[:US_BAND] = 200  # a bright "banner" where the device burns text
    if 0xFFFCFFFC in base:
        del base[0xFFFCFFFC]
    ds = base
    ds.Manufacturer = "GE Healthcare"
    ds.ManufacturerModelName = "LOGIQ E9"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.Rows, ds.Columns, ds.PlanarConfiguration = US_ROWS, US_COLUMNS, 0
    ds.StudyDescription = "US ABDOMEN COMPLETE"
    for i in range(n):
        _identity(ds, "US", seed, i, per_series=10, series_per_study=1)
        ds.SeriesDescription = "ABDOMEN"
        if i % 4 == 3:  # a 6-frame cine
            frames = np.stack([np.roll(frame, 5 * k, axis=1) for k in range(6)])
            frames[:, :US_BAND] = 200
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"  # Ultrasound Multi-frame Image Storage
            ds.NumberOfFrames = 6
            ds.FrameTime = "33.3"
            ds.FrameIncrementPointer = pydicom.tag.Tag(0x0018, 0x1063)
            ds.PixelData = frames.tobytes()
        else:
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage
            for keyword in ("NumberOfFrames", "FrameTime", "FrameIncrementPointer"):
                if keyword in ds:
                    delattr(ds, keyword)
            ds.PixelData = np.roll(frame, i % 64, axis=1).tobytes()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        _write(ds, folder / f"US{i:06d}.dcm")


BUILDERS: dict[str, Callable[[Path, int, int], None]] = {"ct": build_ct, "us": build_us}


def _hardlink_first(files: list[Path], folder: Path, k: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in files[:k]:
        os.link(path, folder / path.name)


def corpus(out_dir: Path, kind: str, n: int, seed: int, profile_files: int) -> dict:
    """Build (or reuse) the corpus: DIR/files (flat), DIR/one (the first file), DIR/manifest.json."""
    import pydicom

    root = out_dir / "scrub-corpus" / f"{kind}-{n}-seed{seed}"
    wanted = {"kind": kind, "files": n, "seed": seed, "version": CORPUS_VERSION, "pydicom": pydicom.__version__}
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest.get(k) for k in wanted} == wanted:
            manifest["reused"] = True
            return manifest
    shutil.rmtree(root, ignore_errors=True)
    files_dir = root / "files"
    files_dir.mkdir(parents=True)
    started = time.perf_counter()
    BUILDERS[kind](files_dir, n, seed)
    files = sorted(files_dir.iterdir())
    _hardlink_first(files, root / "one", 1)
    manifest = {
        **wanted,
        "root": str(root),
        "files_dir": str(files_dir),
        "one_dir": str(root / "one"),
        "total_bytes": sum(p.stat().st_size for p in files),
        "first_file_bytes": files[0].stat().st_size,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    manifest["reused"] = False
    return manifest


def profile_subset(manifest: dict, k: int) -> Path:
    folder = Path(manifest["root"]) / f"first-{k}"
    files = sorted(Path(manifest["files_dir"]).iterdir())
    if not folder.is_dir() or len(list(folder.iterdir())) != min(k, len(files)):
        _hardlink_first(files, folder, k)
    return folder


def warm(folders: list[Path]) -> tuple[int, int, float]:
    started = time.perf_counter()
    files = nbytes = 0
    for folder in folders:
        for path in sorted(folder.iterdir()):
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    nbytes += len(chunk)
            files += 1
    return files, nbytes, time.perf_counter() - started


# --- what runs -------------------------------------------------------------------------------

LOOP_CODE = r"""
import json, os, sys, time, warnings
import pydicom
warnings.simplefilter("ignore")
src, dst, band = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst, exist_ok=True)
started, cpu = time.perf_counter(), time.process_time()
n = 0
for name in sorted(os.listdir(src)):
    ds = pydicom.dcmread(os.path.join(src, name))
    for keyword in ("PatientName", "PatientID"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "minimal pydicom loop"
    ds.PatientBirthDate = ""
    ds.AccessionNumber = ""
    if band:
        pixels = ds.pixel_array.copy()
        pixels[..., :band, :, :] = 0  # rows of every frame, every sample (RGB, planar configuration 0)
        ds.PixelData = pixels.tobytes()
    ds.save_as(os.path.join(dst, name))
    n += 1
print(json.dumps({"files": n, "loop_seconds": time.perf_counter() - started, "loop_cpu_seconds": time.process_time() - cpu}))
"""

DCMANON_CODE = r"""
import os, sys
from dcmanon import Anonymizer
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
anonymizer = Anonymizer()
for name in sorted(os.listdir(src)):
    data = anonymizer.anonymize(os.path.join(src, name))
    with open(os.path.join(dst, name), "wb") as fh:
        fh.write(data)
"""

# The floor every tool that writes each file stands on: the same read and write as dcmanon's loop, no parsing.
FLOOR_CODE = r"""
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for name in sorted(os.listdir(src)):
    shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
"""
FLOOR_LABEL = "I/O floor: copy each file in the kernel (no parsing)"


@dataclass(frozen=True)
class Peer:
    """A de-identifier from PyPI, in its own virtual environment, run with its default profile."""

    requirement: str
    command: Callable[[Path, Path, Path], list[str]]  # (venv, input folder, output folder) -> argv
    how: str
    make_out: bool = False
    compiled: bool = False  # the work is done in compiled code (not pydicom)


PEERS: dict[str, Peer] = {
    "dicognito": Peer("dicognito==0.19.0", lambda v, i, o: [str(v / "bin/python"), "-m", "dicognito", "-q", "-o", str(o), str(i)],
                      "python -m dicognito -q -o OUT IN"),
    "dicom-anonymizer": Peer("dicom-anonymizer==2.1.0", lambda v, i, o: [str(v / "bin/dicom-anonymizer"), str(i), str(o)],
                             "dicom-anonymizer IN OUT", make_out=True),
    "deid": Peer("deid==0.4.13", lambda v, i, o: [str(v / "bin/deid"), "--quiet", "--outfolder", str(o), "identifiers",
                                                  "--input", str(i), "--action", "all"],
                 "deid --quiet --outfolder OUT identifiers --input IN --action all", make_out=True),
    "dcmanon": Peer("dcmanon==0.3.1", lambda v, i, o: [str(v / "bin/python"), "-c", DCMANON_CODE, str(i), str(o)],
                    "python -c 'for f in IN: write(OUT/f, dcmanon.Anonymizer().anonymize(f))'", compiled=True),
}
DEFAULT_TOOLS = "dicognito,dicom-anonymizer,deid,dcmanon"


def ensure_venv(venvs: Path, name: str, peer: Peer) -> tuple[Path | None, str]:
    """The tool's own virtual environment (created if missing); (None, why) when it cannot be installed."""
    venv = venvs / name
    marker = venv / ".scrub-benchmark-requirement"
    if marker.exists() and marker.read_text() == peer.requirement:
        return venv, "reused"
    shutil.rmtree(venv, ignore_errors=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if shutil.which("uv"):
        steps = [["uv", "venv", "-q", "--python", python, str(venv)],
                 ["uv", "pip", "install", "-q", "--python", str(venv / "bin/python"), peer.requirement]]
    else:
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin/python"), "-m", "pip", "install", "-q", peer.requirement]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"`{' '.join(step)}` failed: {(done.stderr or done.stdout).strip()[-800:]}"
    marker.write_text(peer.requirement)
    return venv, "created"


def venv_packages(venv: Path) -> dict[str, str]:
    if shutil.which("uv"):
        cmd = ["uv", "pip", "freeze", "--python", str(venv / "bin/python")]
    else:
        cmd = [str(venv / "bin/python"), "-m", "pip", "freeze"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    pairs = [line.split("==", 1) for line in done.stdout.splitlines() if "==" in line]
    return {k.lower(): v for k, v in pairs}


@dataclass
class Runner:
    key: str
    label: str
    kind: str  # baseline | floor | imgomop | peer
    processes: int
    command: Callable[[Path, Path], list[str]]  # (input folder, output folder) -> argv
    make_out: bool = False
    versions: dict = field(default_factory=dict)
    compiled: bool = False


def count_outputs(out: Path, runner: Runner) -> int:
    if not out.exists():
        return 0
    n = 0
    for folder, subfolders, names in os.walk(out):
        if runner.kind == "imgomop" and Path(folder) == out:
            subfolders[:] = [s for s in subfolders if s != "manifest"]
        n += sum(1 for name in names if not name.startswith("."))
    return n


def _first_output(out: Path, runner: Runner) -> Path | None:
    for folder, subfolders, names in os.walk(out):
        subfolders[:] = sorted(s for s in subfolders if s != "manifest")
        for name in sorted(names):
            if not name.startswith("."):
                return Path(folder, name)
    return None


def inspect_output(out: Path, runner: Runner, band: int) -> dict:
    """Read one output back: does it parse, did the name/id change, is the banner blanked (US)."""
    import pydicom

    path = _first_output(out, runner)
    if path is None:
        return {"read_back": False}
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"read_back": False, "error": f"{type(exc).__name__}: {exc}"}
    report = {
        "read_back": True,
        "patient_id_or_name_kept": any(PHI_MARKER in str(ds.get(k, "")) for k in ("PatientID", "PatientName")),
        "patient_name": str(ds.get("PatientName", "<absent>")),
    }
    if band:
        try:
            report["banner_blanked"] = bool(int(ds.pixel_array[..., :band, :, :].max()) == 0)
        except Exception as exc:  # noqa: BLE001
            report["banner_blanked"] = f"unreadable pixels: {type(exc).__name__}"
    return report


def imgomop_manifest(out: Path) -> dict:
    import pyarrow.parquet as pq

    parts = sorted((out / "manifest").glob("part-*.parquet"))
    if not parts:
        return {}
    rows = [r for p in parts for r in pq.read_table(p, columns=["outcome", "rule", "regions", "error_class"]).to_pylist()]
    return {
        "outcomes": dict(Counter(r["outcome"] for r in rows)),
        "rules": dict(Counter(r["rule"] or "-" for r in rows)),
        "with_regions": sum(1 for r in rows if r["regions"] not in (None, "", "[]")),
        "errors": dict(Counter(r["error_class"] for r in rows if r["error_class"])),
    }


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Row:
    corpus: str
    key: str
    label: str
    kind: str
    processes: int
    status: str  # "ok" or why it is not timed
    files: int = 0
    bytes: int = 0
    wall_seconds: float = 0.0  # whole corpus, whole process
    cpu_seconds: float = 0.0
    one_wall_seconds: float = 0.0  # one-file folder, whole process (start-up, imports, one file)
    one_cpu_seconds: float = 0.0
    one_bytes: int = 0
    user_seconds: float = 0.0  # the corpus run's CPU split: user mode ...
    system_seconds: float = 0.0  # ... and the kernel (syscalls, page cache, writeback throttling)
    one_user_seconds: float = 0.0
    one_system_seconds: float = 0.0
    load_average: list | None = None
    detail: dict = field(default_factory=dict)
    repeats: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def net_seconds(self) -> float:
        return self.wall_seconds - self.one_wall_seconds

    @property
    def net_cpu_seconds(self) -> float:
        return self.cpu_seconds - self.one_cpu_seconds

    @property
    def net_user_seconds(self) -> float:
        return self.user_seconds - self.one_user_seconds

    @property
    def net_system_seconds(self) -> float:
        return self.system_seconds - self.one_system_seconds

    @property
    def files_per_s(self) -> float:
        return (self.files - 1) / self.net_seconds if self.ok and self.net_seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return (self.bytes - self.one_bytes) / MB / self.net_seconds if self.ok and self.net_seconds > 0 else 0.0

    @property
    def mb_per_s_per_core(self) -> float:
        return self.mb_per_s / self.processes

    @property
    def mb_per_cpu_s(self) -> float:
        return (self.bytes - self.one_bytes) / MB / self.net_cpu_seconds if self.ok and self.net_cpu_seconds > 0 else 0.0

    @property
    def whole_mb_per_s(self) -> float:
        return self.bytes / MB / self.wall_seconds if self.ok and self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "net_seconds": self.net_seconds, "net_user_seconds": self.net_user_seconds,
                "net_system_seconds": self.net_system_seconds, "files_per_s": self.files_per_s,
                "mb_per_s": self.mb_per_s, "mb_per_s_per_core": self.mb_per_s_per_core,
                "mb_per_cpu_s": self.mb_per_cpu_s, "whole_process_mb_per_s": self.whole_mb_per_s}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_once(runner: Runner, folder: Path, scratch: Path, env: dict[str, str]) -> tuple[Measured, Path]:
    out = scratch / f"out-{runner.key}"
    shutil.rmtree(out, ignore_errors=True)
    if runner.make_out:
        out.mkdir(parents=True)
    os.sync()  # the previous run's dirty pages are not this run's writeback
    return run_measured(runner.command(folder, out), cwd=scratch, env=env), out


def _failure(m: Measured, written: int, expected: int, out: Path, runner: Runner) -> str | None:
    if m.returncode != 0:
        return f"FAILED: exit code {m.returncode}"
    if written != expected:
        extra = ""
        if runner.kind == "imgomop":
            extra = f" ({imgomop_manifest(out).get('outcomes')})"
        return f"FAILED: wrote {written} of {expected} files{extra}"
    return None


def measure(runner: Runner, name: str, manifest: dict, band: int, scratch: Path, env: dict[str, str],
            row: Row | None) -> Row:
    """One repeat: the one-file folder, then the corpus. Keeps the repeat with the shortest net time."""
    files_dir, one_dir = Path(manifest["files_dir"]), Path(manifest["one_dir"])
    n = manifest["files"]
    if row is None:
        row = Row(name, runner.key, runner.label, runner.kind, runner.processes, "ok", files=n,
                  bytes=manifest["total_bytes"], one_bytes=manifest["first_file_bytes"])
    if not row.ok:
        return row
    load = _loadavg()
    one, one_out = run_once(runner, one_dir, scratch, env)
    problem = _failure(one, count_outputs(one_out, runner), 1, one_out, runner)
    shutil.rmtree(one_out, ignore_errors=True)
    if problem:
        row.status = problem + " on the one-file folder"
        row.detail["stderr"] = one.stderr[-3000:]
        return row
    full, out = run_once(runner, files_dir, scratch, env)
    written = count_outputs(out, runner)
    problem = _failure(full, written, n, out, runner)
    detail = {"outputs": written, "sample": inspect_output(out, runner, band)}
    if runner.kind == "imgomop":
        detail["manifest"] = imgomop_manifest(out)
        detail["stdout"] = full.stdout.strip()[-2000:]
    if runner.kind == "baseline" and not problem:
        detail["loop"] = json.loads(full.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    if problem:
        row.status = problem
        row.detail = {**detail, "stderr": full.stderr[-3000:]}
        return row
    if band and runner.kind == "imgomop" and detail["manifest"].get("with_regions") != n:
        row.status = f"FAILED: pixel rule applied to {detail['manifest'].get('with_regions')} of {n} files"
        row.detail = detail
        return row
    repeat = {"wall_seconds": round(full.wall_seconds, 3), "cpu_seconds": round(full.cpu_seconds, 3),
              "one_wall_seconds": round(one.wall_seconds, 3), "one_cpu_seconds": round(one.cpu_seconds, 3),
              "user_seconds": round(full.user_seconds, 3), "system_seconds": round(full.system_seconds, 3),
              "one_user_seconds": round(one.user_seconds, 3), "one_system_seconds": round(one.system_seconds, 3),
              "max_rss_mb": round(full.max_rss_largest_process_mb, 1), "load_average": load}
    row.repeats.append(repeat)
    if not row.wall_seconds or full.wall_seconds - one.wall_seconds < row.net_seconds:
        row.wall_seconds, row.cpu_seconds = full.wall_seconds, full.cpu_seconds
        row.one_wall_seconds, row.one_cpu_seconds = one.wall_seconds, one.cpu_seconds
        row.user_seconds, row.system_seconds = full.user_seconds, full.system_seconds
        row.one_user_seconds, row.one_system_seconds = one.user_seconds, one.system_seconds
        row.load_average, row.detail = load, detail
    return row


def warm_up(runner: Runner, manifest: dict, scratch: Path, env: dict[str, str]) -> str | None:
    """One untimed run on the one-file folder: byte-compiles, fills caches, finds a broken tool early."""
    m, out = run_once(runner, Path(manifest["one_dir"]), scratch, env)
    problem = _failure(m, count_outputs(out, runner), 1, out, runner)
    shutil.rmtree(out, ignore_errors=True)
    last = " | ".join(line.strip() for line in m.stderr.strip().splitlines()[-3:])
    return f"{problem}: {last[-400:]}" if problem else None


# --- profile ---------------------------------------------------------------------------------


def profile_scrub(imgomop: str, folder: Path, rules: Path, scratch: Path, env: dict[str, str], prefix: Path,
                  top: int = 20) -> str:
    prof = prefix.with_suffix(".prof")
    out = scratch / "out-profile"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), imgomop, "scrub", str(folder), "--out", str(out),
           "--profile", "pre-irb", "--pixel-script", str(rules), "--workers", "1"]
    m = run_measured(cmd, cwd=scratch, env=env)
    shutil.rmtree(out, ignore_errors=True)
    if m.returncode != 0:
        return f"profiled scrub failed ({m.returncode}): {m.stderr[-2000:]}"
    n = len(list(folder.iterdir()))
    buf = io.StringIO()
    buf.write(f"cProfile of `imgomop scrub <{n} CT files> --profile pre-irb --workers 1` "
              f"({m.wall_seconds:.1f} s under the profiler)\n")
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    buf.write("Where one instance's time goes (callees of instance.py _scrub):\n")
    stats.sort_stats("cumulative").print_callees(r"instance.py:\d+\(_scrub\)")
    text = buf.getvalue()
    prefix.with_suffix(".profile.txt").write_text(text)
    return text


# --- report ----------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = (f"{'corpus':<6} {'run':<52} {'procs':>5} {'files':>6} {'MB':>6} {'net s':>7} {'files/s':>8} "
            f"{'MB/s':>7} {'MB/s/core':>9} {'MB/CPU-s':>8} {'user s':>6} {'sys s':>6} {'whole s':>7} {'start s':>7}  status")
    lines = [head, "-" * len(head)]
    for r in rows:
        lead = f"{r.corpus:<6} {r.label:<52} {r.processes:>5} {r.files:>6} {r.bytes / MB:>6,.0f}"
        cpu_split = f"{r.net_user_seconds:>6.2f} {r.net_system_seconds:>6.2f}"
        if r.ok and r.net_seconds <= 0:
            lines.append(f"{lead} {r.net_seconds:>7.2f} {'':>8} {'':>7} {'':>9} {'':>8} {cpu_split} {r.wall_seconds:>7.2f} "
                         f"{r.one_wall_seconds:>7.2f}  ok, but the corpus is too small to time (net <= 0)")
        elif r.ok:
            lines.append(
                f"{lead} {r.net_seconds:>7.2f} {r.files_per_s:>8,.1f} {r.mb_per_s:>7.1f} {r.mb_per_s_per_core:>9.1f} "
                f"{r.mb_per_cpu_s:>8.1f} {cpu_split} {r.wall_seconds:>7.2f} {r.one_wall_seconds:>7.2f}  ok")
        else:
            lines.append(f"{lead} {'':>7} {'':>8} {'':>7} {'':>9} {'':>8} {'':>6} {'':>6} {'':>7} {'':>7}  {r.status[:160]}")
    lines += [
        "net s: wall(corpus) - wall(one-file folder), whole processes: the work on N-1 files without start-up and imports.",
        "files/s, MB/s from net s (MB = 10^6 bytes of input). MB/s/core = MB/s / processes doing the work.",
        "MB/CPU-s: input MB per CPU-second (user+system of the process tree, net of the one-file run): robust to load.",
        "user s, sys s: that CPU time split into user mode and the kernel (system calls, page cache, writeback), net likewise.",
        "whole s: the corpus run, whole process; start s: the one-file run (start-up, imports, one file).",
    ]
    return "\n".join(lines)


def ratios(rows: list[Row], corpus_name: str) -> dict:
    mine = [r for r in rows if r.corpus == corpus_name and r.kind == "imgomop" and r.ok]
    peers = [r for r in rows if r.corpus == corpus_name and r.kind == "peer" and r.mb_per_s > 0 and r.mb_per_cpu_s > 0]
    baseline = next((r for r in rows if r.corpus == corpus_name and r.kind == "baseline" and r.mb_per_s > 0), None)
    python_peers = [p for p in peers if not p.detail.get("compiled")]
    fastest = max(peers, key=lambda r: r.mb_per_s, default=None)
    fastest_cpu = max(peers, key=lambda r: r.mb_per_cpu_s, default=None)
    fastest_py = max(python_peers, key=lambda r: r.mb_per_s, default=None)
    fastest_py_cpu = max(python_peers, key=lambda r: r.mb_per_cpu_s, default=None)
    out: dict = {"fastest_tool": fastest.key if fastest else None,
                 "fastest_tool_per_cpu_second": fastest_cpu.key if fastest_cpu else None,
                 "fastest_pydicom_tool": fastest_py.key if fastest_py else None,
                 "fastest_pydicom_tool_per_cpu_second": fastest_py_cpu.key if fastest_py_cpu else None}
    for r in mine:
        if r.mb_per_s <= 0:
            continue
        entry = {
            "mb_per_s_per_core": round(r.mb_per_s_per_core, 2),
            "mb_per_cpu_s": round(r.mb_per_cpu_s, 2),
            "over_tool": {p.key: round(r.mb_per_s_per_core / p.mb_per_s, 3) for p in peers},
            "over_tool_per_cpu_second": {p.key: round(r.mb_per_cpu_s / p.mb_per_cpu_s, 3) for p in peers},
        }
        if fastest:
            entry["over_fastest_tool"] = round(r.mb_per_s_per_core / fastest.mb_per_s, 3)
            entry["over_fastest_tool_per_cpu_second"] = round(r.mb_per_cpu_s / fastest_cpu.mb_per_cpu_s, 3)
        if fastest_py:
            entry["over_fastest_pydicom_tool"] = round(r.mb_per_s_per_core / fastest_py.mb_per_s, 3)
            entry["over_fastest_pydicom_tool_per_cpu_second"] = round(r.mb_per_cpu_s / fastest_py_cpu.mb_per_cpu_s, 3)
        if baseline:
            entry["over_pydicom_loop"] = round(r.mb_per_s_per_core / baseline.mb_per_s, 3)
            entry["over_pydicom_loop_per_cpu_second"] = round(r.mb_per_cpu_s / baseline.mb_per_cpu_s, 3)
        if corpus_name == "CT":
            entry["meets_mb_per_core_target"] = r.mb_per_s_per_core >= CT_TARGET_MB_PER_CORE
            entry["meets_over_fastest_target"] = bool(fastest) and entry["over_fastest_tool"] >= CT_TARGET_OVER_FASTEST
            entry["meets_over_fastest_pydicom_tool_target"] = (
                bool(fastest_py) and entry["over_fastest_pydicom_tool"] >= CT_TARGET_OVER_FASTEST)
        out[r.key] = entry
    return out


def _verdict(meets: bool, measured: bool) -> str:
    """A target line's word: "n/a" when no tool of that kind ran."""
    return "meets" if meets else "MISSES" if measured else "n/a (no such tool in this run)"


def print_ratios(name: str, result: dict) -> None:
    print(f"{name}: fastest tool by MB/s: {result['fastest_tool']} (by MB/CPU-s: {result['fastest_tool_per_cpu_second']}); "
          f"fastest pydicom-based tool: {result['fastest_pydicom_tool']} (by MB/CPU-s: {result['fastest_pydicom_tool_per_cpu_second']})")
    for key, entry in result.items():
        if not isinstance(entry, dict):
            continue
        tools = ", ".join(f"{k} {v:.2f}x" for k, v in entry["over_tool"].items())
        line = (f"  {key}: {entry['mb_per_s_per_core']:.1f} MB/s per core, {entry['mb_per_cpu_s']:.1f} MB/CPU-s; "
                f"per-core MB/s over each tool: {tools}")
        if "over_fastest_tool" in entry:
            line += (f"; over the fastest: {entry['over_fastest_tool']:.2f}x"
                     f" (per CPU-second {entry['over_fastest_tool_per_cpu_second']:.2f}x)")
        if "over_fastest_pydicom_tool" in entry:
            line += (f"; over the fastest pydicom-based: {entry['over_fastest_pydicom_tool']:.2f}x"
                     f" (per CPU-second {entry['over_fastest_pydicom_tool_per_cpu_second']:.2f}x)")
        if "over_pydicom_loop" in entry:
            line += f"; over the pydicom loop: {entry['over_pydicom_loop']:.2f}x (per CPU-s {entry['over_pydicom_loop_per_cpu_second']:.2f}x)"
        print(line)
        if name == "CT":
            print(f"    target >= {CT_TARGET_MB_PER_CORE:.0f} MB/s per core: "
                  f"{'meets' if entry['meets_mb_per_core_target'] else 'MISSES'}; "
                  f">= {CT_TARGET_OVER_FASTEST:.0f}x the fastest tool: {'meets' if entry['meets_over_fastest_target'] else 'MISSES'}; "
                  f">= {CT_TARGET_OVER_FASTEST:.0f}x the fastest pydicom-based tool: "
                  f"{_verdict(entry['meets_over_fastest_pydicom_tool_target'], 'over_fastest_pydicom_tool' in entry)}")


def _row(rows: list[Row], corpus_name: str, key: str | None) -> Row | None:
    return next((r for r in rows if r.corpus == corpus_name and r.key == key), None)


def floor_ratios(rows: list[Row], corpus_name: str, ratio: dict) -> dict | None:
    """The I/O floor against the fastest tool (what any tool that writes every file can reach) and
    each imgomop run against the floor; None when the floor was not timed."""
    floor = next((r for r in rows if r.corpus == corpus_name and r.kind == "floor" and r.mb_per_s > 0), None)
    if floor is None:
        return None
    out: dict = {"mb_per_s_per_core": round(floor.mb_per_s_per_core, 2), "mb_per_cpu_s": round(floor.mb_per_cpu_s, 2),
                 "net_user_seconds": round(floor.net_user_seconds, 3),
                 "net_system_seconds": round(floor.net_system_seconds, 3)}
    fastest = _row(rows, corpus_name, ratio.get("fastest_tool"))
    fastest_cpu = _row(rows, corpus_name, ratio.get("fastest_tool_per_cpu_second"))
    if fastest and fastest_cpu:
        out["fastest_tool"] = fastest.key
        out["over_fastest_tool"] = round(floor.mb_per_s_per_core / fastest.mb_per_s, 3)
        out["over_fastest_tool_per_cpu_second"] = round(floor.mb_per_cpu_s / fastest_cpu.mb_per_cpu_s, 3)
    mine = [r for r in rows if r.corpus == corpus_name and r.kind == "imgomop" and r.mb_per_s > 0]
    out["imgomop_over_floor"] = {r.key: round(r.mb_per_s_per_core / floor.mb_per_s_per_core, 3) for r in mine}
    out["imgomop_over_floor_per_cpu_second"] = {r.key: round(r.mb_per_cpu_s / floor.mb_per_cpu_s, 3) for r in mine}
    return out


def print_floor_ratios(name: str, result: dict) -> None:
    line = (f"  I/O floor (copy each file, no parsing): {result['mb_per_s_per_core']:.1f} MB/s per core, "
            f"{result['mb_per_cpu_s']:.1f} MB/CPU-s (net CPU: user {result['net_user_seconds']:.2f} s, "
            f"system {result['net_system_seconds']:.2f} s)")
    if "over_fastest_tool" in result:
        line += (f"; floor over the fastest tool ({result['fastest_tool']}): {result['over_fastest_tool']:.2f}x"
                 f" (per CPU-second {result['over_fastest_tool_per_cpu_second']:.2f}x)")
    print(line)
    if name == "CT" and "over_fastest_tool" in result:
        reachable = result["over_fastest_tool"] >= CT_TARGET_OVER_FASTEST
        print(f"    {CT_TARGET_OVER_FASTEST:.0f}x the fastest tool is reachable by a tool that writes every file only if "
              f"this is >= {CT_TARGET_OVER_FASTEST:.0f}x: {'it is' if reachable else 'it is NOT'} in this run")
    for key, fraction in result["imgomop_over_floor"].items():
        print(f"  {key} as a fraction of the floor: {fraction:.2f} of its MB/s per core "
              f"({result['imgomop_over_floor_per_cpu_second'][key]:.2f} of its MB/CPU-s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct-files", type=int, default=2000)
    parser.add_argument("--us-files", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="the parallel run's workers (default os.cpu_count())")
    parser.add_argument("--tools", default=DEFAULT_TOOLS, help=f"PyPI de-identifiers, comma-separated (default {DEFAULT_TOOLS}; '' for none)")
    parser.add_argument("--corpora", default="ct,us", help="ct, us or both (default)")
    parser.add_argument("--repeat", type=int, default=1, help="repeats of every run, interleaved; the shortest net time counts")
    parser.add_argument("--out-dir", type=Path, default=HERE / "out")
    parser.add_argument("--out-root", type=Path, default=Path(tempfile.gettempdir()),
                        help="where every tool writes its output files (a fresh folder per run, removed after; "
                             "default: the system temp dir, %(default)s); the corpus and the results stay in --out-dir")
    parser.add_argument("--imgomop", default=None, help="the imgomop command (default: next to this Python, else on PATH)")
    parser.add_argument("--bytecode", choices=("cached", "env"), default="cached", help="as in harvest.py")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile a single-worker CT scrub: always, never, or when the CT target is missed")
    parser.add_argument("--profile-files", type=int, default=500, help="CT files in the profiled run (default 500)")
    args = parser.parse_args(argv)

    beside = Path(sys.executable).parent / "imgomop"
    imgomop = args.imgomop or (str(beside) if beside.exists() else shutil.which("imgomop"))
    if not imgomop:
        raise SystemExit("imgomop not found: install the project (pip install -e .) or pass --imgomop")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in PEERS]
    if unknown:
        raise SystemExit(f"unknown tool(s) {unknown}: choose from {', '.join(PEERS)}")
    kinds = [k.strip().lower() for k in args.corpora.split(",") if k.strip()]
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    load_before = _loadavg()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.platform()}, Python {platform.python_version()}, os.cpu_count()={os.cpu_count()}, "
          f"usable cores {affinity}; load average {load_before}", flush=True)

    rules = out_dir / "us-rules.script"
    rules.write_text(US_RULES)
    sizes = {"ct": args.ct_files, "us": args.us_files}
    manifests: dict[str, dict] = {}
    for kind in kinds:
        m = corpus(out_dir, kind, sizes[kind], args.seed, args.profile_files)
        manifests[kind] = m
        print(f"corpus {kind.upper()}: {m['files']} files, {m['total_bytes'] / MB:,.0f} MB in {m['files_dir']} "
              f"({'reused' if m['reused'] else 'built'}; built in {m['build_seconds']} s)", flush=True)

    runners: list[Runner] = [
        Runner("pydicom-loop", "pydicom loop (read, modify, save_as)", "baseline", 1,
               lambda i, o: []),  # command set per corpus below (the band differs)
    ]
    runners.append(Runner("io-floor", FLOOR_LABEL, "floor", 1,
                          lambda i, o: [sys.executable, "-c", FLOOR_CODE, str(i), str(o)]))
    for w in sorted({1, args.workers}):
        runners.append(Runner(
            f"imgomop-w{w}", f"imgomop scrub --profile pre-irb --workers {w}", "imgomop", w,
            lambda i, o, w=w: [imgomop, "scrub", str(i), "--out", str(o), "--profile", "pre-irb",
                               "--pixel-script", str(rules), "--workers", str(w)]))
    venvs = out_dir / "venvs"
    skipped: list[Row] = []
    for name in tools:
        peer = PEERS[name]
        print(f"venv {name}: ", end="", flush=True)
        venv, how = ensure_venv(venvs, name, peer)
        print(how if venv else f"NOT INSTALLED: {how}", flush=True)
        if venv is None:
            for kind in kinds:
                skipped.append(Row(kind.upper(), name, f"{name} (default profile)", "peer", 1, f"not installed: {how[:200]}"))
            continue
        packages = venv_packages(venv)
        runners.append(Runner(name, f"{name} {packages.get(name, '?')} (default profile)", "peer", 1,
                              lambda i, o, venv=venv, peer=peer: peer.command(venv, i, o), make_out=peer.make_out,
                              versions={"tool": packages.get(name), "pydicom": packages.get("pydicom"), "how": peer.how},
                              compiled=peer.compiled))

    out_root = args.out_root.resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"scrub-{stamp}-", dir=out_root))
    print(f"outputs: every tool writes under {scratch} (--out-root {out_root})", flush=True)
    results: list[Row] = list(skipped)
    report: dict = {}
    try:
        env, env_note = child_env(args.bytecode, out_dir)
        env["IMGOMOP_DEID_KEY"] = BENCHMARK_KEY
        print(f"bytecode: {env_note}")
        for kind in kinds:
            manifest = manifests[kind]
            name = kind.upper()
            band = US_BAND if kind == "us" else 0
            runners[0].command = lambda i, o, band=band: [sys.executable, "-c", LOOP_CODE, str(i), str(o), str(band)]
            runners[0].label = "pydicom loop (read, modify, save_as)" + (" + zero band" if band else "")
            live: list[Runner] = []
            for runner in runners:
                problem = warm_up(runner, manifest, scratch, env)
                if problem:
                    print(f"  {name} {runner.key}: warm-up failed, not timed: {problem}", flush=True)
                    results.append(Row(name, runner.key, runner.label, runner.kind, runner.processes,
                                       f"FAILED in warm-up: {problem[:300]}", files=manifest["files"],
                                       bytes=manifest["total_bytes"]))
                else:
                    live.append(runner)
            files, nbytes, seconds = warm([Path(manifest["files_dir"])])
            print(f"{name}: page cache warmed (read {files} files, {nbytes / MB:,.0f} MB in {seconds:.1f} s); "
                  f"load average {_loadavg()}", flush=True)
            rows: dict[str, Row | None] = {r.key: None for r in live}
            for rep in range(args.repeat):
                for runner in live:
                    print(f"  {name} {runner.label}{f' (repeat {rep + 1})' if args.repeat > 1 else ''} ...", end="", flush=True)
                    row = rows[runner.key] = measure(runner, name, manifest, band, scratch, env, rows[runner.key])
                    row.detail.setdefault("versions", runner.versions)
                    row.detail["compiled"] = runner.compiled
                    if row.ok and row.repeats:
                        last = row.repeats[-1]
                        net = last["wall_seconds"] - last["one_wall_seconds"]
                        this = (row.bytes - row.one_bytes) / MB / net if net > 0 else 0.0
                        print(f" {this:.1f} MB/s, {net:.1f} s net (load {last['load_average']})"
                              + (f"; best so far {row.mb_per_s:.1f} MB/s" if len(row.repeats) > 1 else ""), flush=True)
                    else:
                        print(f" {row.status}", flush=True)
            results += [r for r in rows.values() if r is not None]
        load_after = _loadavg()

        order = {k.upper(): n for n, k in enumerate(kinds)}
        results.sort(key=lambda r: (order.get(r.corpus, 99), {"floor": 0, "baseline": 1, "imgomop": 2, "peer": 3}[r.kind], r.key))
        print()
        print(table(results))
        print()
        busy = load_before is not None and affinity and load_before[0] >= 0.5 * affinity
        print(f"load average before {load_before}, after {load_after} on {affinity} usable cores"
              + (" -- the machine was shared and loaded: wall-clock MB/s are low for every tool; MB/CPU-s is the "
                 "steadier comparison" if busy else ""))
        all_ratios = {}
        all_floor_ratios: dict[str, dict | None] = {}
        for kind in kinds:
            all_ratios[kind.upper()] = ratios(results, kind.upper())
            print_ratios(kind.upper(), all_ratios[kind.upper()])
            all_floor_ratios[kind.upper()] = floor_ratios(results, kind.upper(), all_ratios[kind.upper()])
            if all_floor_ratios[kind.upper()]:
                print_floor_ratios(kind.upper(), all_floor_ratios[kind.upper()])
        for r in results:
            if r.kind == "floor":  # a copy keeps the identity and the banner by design
                continue
            if r.ok and r.detail.get("sample", {}).get("patient_id_or_name_kept"):
                print(f"note: {r.corpus} {r.key}: the output read back still holds the input PatientID or PatientName")
            if r.ok and "banner_blanked" in r.detail.get("sample", {}) and r.kind != "baseline":
                print(f"note: {r.corpus} {r.key}: banner blanked in the output read back: {r.detail['sample']['banner_blanked']}")

        prefix = out_dir / f"scrub-{stamp}"
        profile_text = None
        ct = all_ratios.get("CT", {})
        missed = any(isinstance(e, dict) and not (e.get("meets_mb_per_core_target") and e.get("meets_over_fastest_target"))
                     for e in ct.values())
        if "ct" in kinds and (args.profile == "always" or (args.profile == "auto" and missed)):
            subset = profile_subset(manifests["ct"], args.profile_files)
            print(f"\nprofiling a single-worker CT scrub of {len(list(subset.iterdir()))} files (cProfile) ...", flush=True)
            profile_text = profile_scrub(imgomop, subset, rules, scratch, env, prefix)
            print(profile_text)

        report = {
            "timestamp": stamp,
            "command": " ".join([Path(sys.executable).name, *(argv if argv is not None else sys.argv)]),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpu_count": os.cpu_count(), "usable_cores": affinity,
                        "load_average_before": load_before, "load_average_after": load_after, "busy": busy},
            "bytecode": env_note,
            "corpora": manifests,
            "us_rules": str(rules),
            "timing": "net = wall(corpus) - wall(one-file folder), whole subprocesses; per core = / processes",
            "cpu": "wait4 of the process tree; user_seconds and system_seconds apart, net_* of the one-file run",
            "outputs_under": str(out_root),
            "results": [r.as_dict() for r in results],
            "ratios": all_ratios,
            "io_floor": all_floor_ratios,
            "targets": {"CT": {"mb_per_s_per_core": f">= {CT_TARGET_MB_PER_CORE}",
                               "over_fastest_tool": f">= {CT_TARGET_OVER_FASTEST}"}},
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
