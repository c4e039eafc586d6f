"""Run a per-chunk function over a stream of chunks in a process pool, with bounded memory.

Harvest and scrub both use it: their per-file work is a pure function, the loop and the
I/O stay outside, so the same functions can later run in a Beam pipeline.

With N workers the calling process is one of them: the pool has N - 1 processes, and the
caller reads a chunk itself whenever it would otherwise wait for one. Its own work (writing
rows, manifests) is done between chunks, so N processes keep N cores busy instead of N
readers and a writer competing for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from typing import TypeVar

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
    with ProcessPoolExecutor(max_workers=workers - 1) as pool:
        yield pool


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
    When none of them is done, the caller takes the next chunk and runs it itself; once every
    chunk is handed out, it takes back the queued ones no process has started.

    With one worker everything runs in this process (simpler to debug, no pickling). Without a
    pool, one lives for this call.
    """
    if workers == 1:
        for chunk in chunks:
            yield function(chunk, *args)
        return
    pending = iter(chunks)
    max_in_flight = (workers - 1) * QUEUED_PER_PROCESS
    with nullcontext(pool) if pool is not None else ProcessPoolExecutor(max_workers=workers - 1) as pool:
        in_flight: dict[Future[Result], Chunk] = {}
        while True:
            while len(in_flight) < max_in_flight and (chunk := next(pending, _NONE)) is not _NONE:
                in_flight[pool.submit(function, chunk, *args)] = chunk
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
                yield future.result()


_NONE = object()


def _next_for_caller(pending: Iterator[Chunk], in_flight: dict[Future[Result], Chunk]) -> Chunk | object:
    """The next chunk not yet handed out; else the last queued chunk no process has started (cancelled
    in the pool); else `_NONE`."""
    chunk = next(pending, _NONE)
    if chunk is not _NONE:
        return chunk
    for future in reversed(in_flight):
        if future.cancel():
            return in_flight.pop(future)
    return _NONE
