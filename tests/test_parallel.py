"""The process pool that harvest and scrub share: the caller is one of the workers."""

from __future__ import annotations

import os
import time

import pytest

from extractor.parallel import QUEUED_PER_PROCESS, run_chunks, worker_pool


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
