"""Run a per-chunk function over a stream of chunks in a process pool, with bounded memory.

Harvest and scrub both use it: their per-file work is a pure function, the loop and the
I/O stay outside, so the same functions can later run in a Beam pipeline.

With N workers the calling process is one of them: the pool has N - 1 processes, and the
caller reads a chunk itself whenever it would otherwise wait for one. Its own work (writing
rows, manifests) is done between chunks, so N processes keep N cores busy instead of N
readers and a writer competing for them.

A pool process hands its result back through a file of its own (in memory, under /dev/shm,
where Linux has it), not through the pool's pipe: a pipe holds 64 KB, a harvest chunk's rows
are a few hundred, and the caller's pool thread that drains the pipe needs the GIL, which the
caller holds while it reads; the worker waited on that for a fifth of its time.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pickle
import shutil
import signal
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")

QUEUED_PER_PROCESS = 16  # chunks queued per pool process: enough to keep it busy while the caller reads or writes


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """The pool for `workers` workers, to share between stages (starting processes costs their
    imports): `workers - 1` processes, the caller being the other one; None for one worker."""
    if workers == 1:
        yield None
        return
    with _stopped_on_error(_new_pool(workers)) as pool:
        yield pool


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers - 1, initializer=_start_pool_process, initargs=(os.getpid(),))


@contextmanager
def _stopped_on_error(pool: ProcessPoolExecutor) -> Iterator[ProcessPoolExecutor]:
    """The pool, shut down on leaving; when an error or an interruption ends the work, the chunks
    no process has started are cancelled instead of read first."""
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal a process gets when its parent dies


def _start_pool_process(caller: int) -> None:
    """In each pool process, first: Ctrl-C (sent to the whole process group) is left to the caller,
    which stops the pool; and on Linux the process ends with the caller when the caller is killed
    outright, instead of waiting for work on its queue forever (holding the caller's output
    pipes: a scheduler reading them would wait too)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != caller:  # the caller died before the line above
        os._exit(1)


def run_chunks(
    function: Callable[..., Result],
    chunks: Iterable[Chunk],
    workers: int,
    *args: object,
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[Result]:
    """`function(chunk, *args)` for every chunk, in completion order; `pool`, if given, is
    `worker_pool(workers)`'s.

    Each pool process has at most `QUEUED_PER_PROCESS` chunks in flight, which bounds memory.
    When none of them is done, the caller runs a chunk itself: the oldest one queued in the pool
    that no process has started (taken back), else the next one not yet handed out.

    With one worker everything runs in this process (simpler to debug, no pickling). Without a
    pool, one lives for this call.
    """
    if workers == 1:
        for chunk in chunks:
            yield function(chunk, *args)
        return
    pending = iter(chunks)
    max_in_flight = (workers - 1) * QUEUED_PER_PROCESS
    with (
        nullcontext(pool) if pool is not None else _stopped_on_error(_new_pool(workers)) as pool,
        _result_folder() as folder,
    ):
        in_flight: dict[Future[Any], Chunk] = {}
        while True:
            while len(in_flight) < max_in_flight and (chunk := next(pending, _NONE)) is not _NONE:
                in_flight[pool.submit(_run_to_file, folder, function, chunk, *args)] = chunk
            done = [future for future in in_flight if future.done()]
            if not done:
                chunk = _next_for_caller(pending, in_flight)
                if chunk is not _NONE:
                    yield function(chunk, *args)
                    continue
                if not in_flight:
                    return
                done = list(wait(in_flight, return_when=FIRST_COMPLETED).done)
            for future in done:
                del in_flight[future]
                yield _load_result(future.result())


_NONE = object()


def _next_for_caller(pending: Iterator[Chunk], in_flight: dict[Future[Any], Chunk]) -> Chunk | object:
    """The oldest chunk queued in the pool that no process has started (cancelled there); else the
    next chunk not yet handed out; else `_NONE`.

    Oldest first, so chunks finish about in the order they were handed out, and the caller can
    finish with an earlier stretch of them (harvest: write its rows, rebuild its series) while
    the pool reads the last one.
    """
    for future in in_flight:
        if future.cancel():
            return in_flight.pop(future)
    return next(pending, _NONE)


RESULT_FOLDER_ROOT = "/dev/shm"  # memory-backed; the system's temp folder where it is missing
RESULT_FOLDER_PREFIX = "imgomop-results-"  # followed by the process id
ALIGNMENT = 64  # Arrow's buffer alignment, kept for buffers read back from a result file


@contextmanager
def _result_folder() -> Iterator[str]:
    """A folder for the results of one `run_chunks` call, removed with whatever is left in it.

    Its name carries the process id, so that the folders of a process killed outright (which
    would hold memory under /dev/shm until the next boot, or disk space in the temp folder) are
    removed by the next call.
    """
    prefix = f"{RESULT_FOLDER_PREFIX}{os.getpid()}-"
    try:
        _remove_orphaned_result_folders(RESULT_FOLDER_ROOT)
        folder = tempfile.mkdtemp(prefix=prefix, dir=RESULT_FOLDER_ROOT)
    except OSError:  # no /dev/shm here, or not ours to write
        _remove_orphaned_result_folders(tempfile.gettempdir())
        folder = tempfile.mkdtemp(prefix=prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_orphaned_result_folders(root: str) -> None:
    """Remove the result folders under `root` whose process no longer runs."""
    for folder in Path(root).glob(f"{RESULT_FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(RESULT_FOLDER_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _process_runs(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and is another user's
        pass
    return True


@dataclass(frozen=True)
class _InFile:
    """A result a pool process wrote to a file (see `_write_result`)."""

    path: str


def _run_to_file(folder: str, function: Callable[..., Any], chunk: Any, *args: object) -> Any:
    """In a pool process: `function(chunk, *args)` written to a new file in `folder` (an `_InFile`);
    when that fails (a full /dev/shm), the result itself, which then takes the pool's pipe."""
    result = function(chunk, *args)
    try:
        return _InFile(_write_result(folder, result))
    except OSError:
        return result


def _write_result(folder: str, result: Any) -> str:
    """Pickle protocol 5 leaves large buffers (Arrow's) out of the pickle; they follow it in the
    file, each at an aligned offset, so the caller maps them instead of copying them."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(result, protocol=5, buffer_callback=buffers.append)
    parts = [memoryview(head), *(buffer.raw() for buffer in buffers)]
    index = struct.pack(f"<{len(parts) + 1}Q", len(parts), *(part.nbytes for part in parts))
    fd, path = tempfile.mkstemp(dir=folder)
    try:
        with open(fd, "wb") as out:
            out.write(index)
            for part in parts:
                out.write(bytes(-out.tell() % ALIGNMENT))
                out.write(part)
    except OSError:
        os.unlink(path)
        raise
    return path


def _load_result(returned: Any) -> Any:
    """What `_run_to_file` returned, read back; a result file is removed (the mapping outlives it)."""
    if not isinstance(returned, _InFile):
        return returned
    path = returned.path
    with open(path, "rb") as file:
        data = memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
    os.unlink(path)
    (count,) = struct.unpack_from("<Q", data)
    sizes = struct.unpack_from(f"<{count}Q", data, 8)
    parts, offset = [], 8 * (count + 1)
    for size in sizes:
        offset += -offset % ALIGNMENT
        parts.append(data[offset : offset + size])
        offset += size
    head, *buffers = parts
    return pickle.loads(head, buffers=buffers)
