"""Run a per-chunk function over a stream of chunks in a process pool, with bounded memory.

Harvest and scrub both use it: their per-file work is a pure function, the loop and the
I/O stay outside, so the same functions can later run in a Beam pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")


def run_chunks(
    function: Callable[..., Result], chunks: Iterable[Chunk], workers: int, *args: object
) -> Iterator[Result]:
    """`function(chunk, *args)` for every chunk, in completion order; at most 4 chunks per worker in flight.

    With one worker everything runs in this process (simpler to debug, no pickling).
    """
    if workers == 1:
        for chunk in chunks:
            yield function(chunk, *args)
        return
    max_in_flight = workers * 4
    with ProcessPoolExecutor(max_workers=workers) as pool:
        in_flight: set[Future[Result]] = set()
        for chunk in chunks:
            in_flight.add(pool.submit(function, chunk, *args))
            if len(in_flight) >= max_in_flight:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        for future in in_flight:
            yield future.result()
