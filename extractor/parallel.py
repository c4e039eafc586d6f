"""Run a per-chunk function over a stream of chunks in a process pool, with bounded memory.

Harvest and scrub both use it: their per-file work is a pure function, the loop and the
I/O stay outside, so the same functions can later run in a Beam pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from itertools import islice
from typing import TypeVar

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """A process pool to share between stages (starting workers costs their imports); None for one worker."""
    if workers == 1:
        yield None
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield pool


def run_chunks(
    function: Callable[..., Result],
    chunks: Iterable[Chunk],
    workers: int,
    *args: object,
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[Result]:
    """`function(chunk, *args)` for every chunk, in completion order.

    At most 8 chunks per worker are in flight: enough for the workers to keep going while the
    caller writes a batch, few enough to bound memory.

    With one worker everything runs in this process (simpler to debug, no pickling). A pool from
    `worker_pool` is reused; without one, a pool lives for this call.
    """
    if workers == 1:
        for chunk in chunks:
            yield function(chunk, *args)
        return
    max_in_flight = workers * 8
    pending = iter(chunks)
    with nullcontext(pool) if pool is not None else ProcessPoolExecutor(max_workers=workers) as pool:
        in_flight: set[Future[Result]] = set()
        while True:
            # refill before handing results back, so the workers stay busy while the caller writes
            for chunk in islice(pending, max_in_flight - len(in_flight)):
                in_flight.add(pool.submit(function, chunk, *args))
            if not in_flight:
                return
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
