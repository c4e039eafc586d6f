"""The process pool that harvest and scrub share: the caller is one of the workers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pytest

from extractor import parallel
from extractor.harvest.pipeline import ChunkResult
from extractor.parallel import QUEUED_PER_PROCESS, run_chunks, worker_pool
from extractor.warehouses.schema import RAW_DICOM_INSTANCE, RAW_HARVEST_ERROR, to_arrow


def _slow_chunk(chunk: list[int], pause: float) -> tuple[int, list[int]]:
    time.sleep(pause)
    return os.getpid(), chunk


def _failing_chunk(chunk: list[int]) -> list[int]:
    if 13 in chunk:
        raise ValueError("unlucky chunk")
    return chunk


@pytest.mark.parametrize("count", [1, QUEUED_PER_PROCESS, 5 * QUEUED_PER_PROCESS])
def test_every_chunk_runs_once_in_the_pool_or_the_caller(count: int) -> None:
    chunks = [[i, i + 1000] for i in range(count)]
    with worker_pool(2) as pool:
        results = list(run_chunks(_slow_chunk, iter(chunks), 2, 0.02, pool=pool))
    assert sorted(chunk for _, chunk in results) == chunks
    by_caller = [chunk for pid, chunk in results if pid == os.getpid()]
    if count > 2:  # at most two are running or on their way to the one pool process
        # the caller reads while the pool is busy, and takes back queued chunks no process has started
        assert by_caller, "the calling process never read a chunk"
        assert len(by_caller) < count, "the pool process never read a chunk"


def test_a_worker_pool_of_n_has_n_minus_one_processes() -> None:
    with worker_pool(3) as pool:
        results = list(run_chunks(_slow_chunk, ([i] for i in range(30)), 3, 0.01, pool=pool))
    pids = {pid for pid, _ in results}
    assert os.getpid() in pids
    assert len(pids - {os.getpid()}) <= 2
    with worker_pool(1) as pool:
        assert pool is None


def test_an_error_in_a_chunk_reaches_the_caller() -> None:
    with pytest.raises(ValueError, match="unlucky chunk"):
        list(run_chunks(_failing_chunk, ([i] for i in range(40)), 2))


def _arrow_chunk(chunk: list[int]) -> tuple[int, pa.Table, dict[str, str]]:
    return os.getpid(), pa.table({"n": chunk, "text": [f"row {n}" * 50 for n in chunk]}), {"first": str(chunk[0])}


def test_pool_results_come_back_whole_through_files_that_are_then_removed(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(parallel, "RESULT_FOLDER_ROOT", str(tmp_path))
    chunks = [list(range(start, start + 700)) for start in range(0, 700 * 12, 700)]
    with worker_pool(2) as pool:
        results = list(run_chunks(_arrow_chunk, iter(chunks), 2, pool=pool))
    assert sorted(table.column("n").to_pylist() for _, table, _ in results) == chunks
    for _, table, extra in results:
        first = table.column("n")[0].as_py()
        assert table.column("text").to_pylist() == [f"row {n}" * 50 for n in range(first, first + 700)]
        assert extra == {"first": str(first)}
    assert {pid for pid, _, _ in results} - {os.getpid()}, "no result came from the pool process"
    assert list(tmp_path.iterdir()) == [], "result files or their folder were left behind"


def _no_room(folder: str, result: object) -> str:
    raise OSError(28, "No space left on device")


def test_results_take_the_pipe_when_no_result_file_can_be_written(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(parallel, "RESULT_FOLDER_ROOT", str(tmp_path / "a file" / "not a folder"))
    (tmp_path / "a file").write_text("")
    monkeypatch.setattr(parallel, "_write_result", _no_room)  # the pool process is forked after this
    chunks = [list(range(start, start + 50)) for start in range(0, 50 * 8, 50)]
    with worker_pool(2) as pool:
        results = list(run_chunks(_arrow_chunk, iter(chunks), 2, pool=pool))
    assert sorted(table.column("n").to_pylist() for _, table, _ in results) == chunks
    assert {pid for pid, _, _ in results} - {os.getpid()}, "no result came from the pool process"


def test_a_harvest_chunk_result_survives_the_trip_through_a_result_file(tmp_path) -> None:
    instances = to_arrow([{"location": "/a/1.dcm", "file_size": 10, "series_instance_uid": "1.2"}], RAW_DICOM_INSTANCE)
    errors = to_arrow([{"location": "/a/2", "error_class": "NotDicom", "message": "no DICM"}], RAW_HARVEST_ERROR)
    result = ChunkResult(instances, errors, {"/a/1.dcm": '{"00100020": {"vr": "LO"}}', "/a/3.dcm": None})
    returned = parallel._run_to_file(str(tmp_path), lambda chunk: chunk, result)
    assert isinstance(returned, parallel._InFile)
    back = parallel._load_result(returned)
    assert back.instances.equals(instances) and back.errors.equals(errors)
    assert back.headers == result.headers
    assert not os.path.exists(returned.path)


@pytest.mark.parametrize("where", ["/dev/shm", "temp folder"])
def test_result_folders_of_processes_that_no_longer_run_are_removed(monkeypatch, tmp_path, where) -> None:
    """A process killed outright leaves its result folder (memory under /dev/shm, or disk in the
    temp folder where /dev/shm cannot be used); the next call removes it."""
    if where == "/dev/shm":
        monkeypatch.setattr(parallel, "RESULT_FOLDER_ROOT", str(tmp_path))
    else:
        monkeypatch.setattr(parallel, "RESULT_FOLDER_ROOT", str(tmp_path / "no such folder"))
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    orphan = tmp_path / f"{parallel.RESULT_FOLDER_PREFIX}{ended.stdout.strip()}-x1"
    orphan.mkdir()
    (orphan / "result").write_bytes(b"left behind")
    running = tmp_path / f"{parallel.RESULT_FOLDER_PREFIX}{os.getppid()}-x2"  # a process that still runs
    running.mkdir()
    with worker_pool(2) as pool:
        assert len(list(run_chunks(_arrow_chunk, iter([[1], [2]]), 2, pool=pool))) == 2
    assert not orphan.exists()
    assert running.exists()


def _signal_setup(_chunk: object) -> tuple[object, int]:
    """In a pool process: what Ctrl-C does there, and the signal it gets when its parent dies."""
    import ctypes
    import signal

    death_signal = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(death_signal), 0, 0, 0)  # PR_GET_PDEATHSIG
    return signal.getsignal(signal.SIGINT), death_signal.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_pool_processes_leave_ctrl_c_to_the_caller_and_end_with_it() -> None:
    import signal

    with worker_pool(2) as pool:
        on_interrupt, on_parent_death = pool.submit(_signal_setup, None).result()
    assert on_interrupt == signal.SIG_IGN
    assert on_parent_death == signal.SIGTERM


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_pool_process_does_not_outlive_a_caller_killed_outright() -> None:
    """Before, it waited for work forever, holding the caller's output pipe open."""
    script = (
        "import os, sys, time\n"
        "from extractor.parallel import worker_pool\n"
        "with worker_pool(2) as pool:\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    time.sleep(60)\n"
    )
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pool_process = int(caller.stdout.readline())
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _runs(pool_process):
        time.sleep(0.05)
    assert not _runs(pool_process)
    assert caller.stdout.read() == ""  # the pipe is closed: nothing holds it any more


def _runs(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
