"""Releasing a worker's freed memory after big batches: the decision, the glibc call, the setting."""

import ctypes
import sys

import numpy as np
import pytest

from nerserve import memory
from nerserve.memory import (
    DEFAULT_RELEASE_MEMORY_AFTER_PIECES,
    MemoryReleaser,
    padded_pieces,
    release_memory,
    should_release,
)
from nerserve.settings import HandlerSettings


class RecordingTrim:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        return 1


def test_padded_pieces_count_every_element_of_every_pass():
    passes = [np.zeros((32, 512), dtype=np.int64), np.zeros((3, 17), dtype=np.int64)]
    assert padded_pieces(passes) == 32 * 512 + 3 * 17
    assert padded_pieces([]) == 0


def test_only_a_batch_over_the_threshold_releases():
    assert not should_release(8_192, 8_192)
    assert should_release(8_193, 8_192)
    assert not should_release(16, 8_192)


def test_a_threshold_of_zero_never_releases():
    assert not should_release(10**9, 0)


def test_a_small_batch_does_not_call_the_library():
    trim = RecordingTrim()
    releaser = MemoryReleaser(DEFAULT_RELEASE_MEMORY_AFTER_PIECES, second_after=0.01, trim=trim)
    assert releaser.after_batch(16 * 12) is None
    assert releaser.wait_for_pending(5)
    assert trim.calls == []


def test_a_big_batch_trims_the_whole_heap_now_and_once_more_after_the_responses_left():
    trim = RecordingTrim()
    releaser = MemoryReleaser(DEFAULT_RELEASE_MEMORY_AFTER_PIECES, second_after=0.01, trim=trim)
    seconds = releaser.after_batch(16 * 24_576)
    assert seconds is not None and seconds >= 0
    assert trim.calls[0] == 0  # 0: no padding kept at the top of the heap
    assert releaser.wait_for_pending(5)
    assert trim.calls == [0, 0]


def test_big_batches_in_a_row_leave_one_second_release_pending():
    trim = RecordingTrim()
    releaser = MemoryReleaser(1, second_after=0.5, trim=trim)
    for _ in range(3):
        releaser.after_batch(2)
    assert releaser.wait_for_pending(5)
    assert trim.calls == [0] * 4  # three right after their batches, one after the last of them


def test_a_threshold_of_zero_turns_releasing_off():
    trim = RecordingTrim()
    releaser = MemoryReleaser(0, second_after=0.01, trim=trim)
    assert releaser.after_batch(10**9) is None
    assert releaser.wait_for_pending(5)
    assert trim.calls == []


def test_without_glibc_releasing_does_nothing(monkeypatch):
    def no_library(name):
        raise OSError("no C library here")

    memory._glibc_malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", no_library)
    try:
        assert release_memory() is None
        assert MemoryReleaser(1, second_after=0.01).after_batch(10**6) is None
    finally:
        memory._glibc_malloc_trim.cache_clear()


def test_a_c_library_without_malloc_trim_is_not_called(monkeypatch):
    class Musl:  # has malloc, no malloc_trim
        malloc = object()

    memory._glibc_malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Musl())
    try:
        assert release_memory() is None
    finally:
        memory._glibc_malloc_trim.cache_clear()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux-only")
def test_on_glibc_the_real_malloc_trim_runs():
    if getattr(ctypes.CDLL(None), "malloc_trim", None) is None:
        pytest.skip("this Linux's C library is not glibc")
    blocks = [bytearray(64 * 1024) for _ in range(200)]  # ~13 MB on the heap, then freed
    del blocks
    seconds = release_memory()
    assert seconds is not None and 0 <= seconds < 10


def test_the_setting_defaults_reads_from_yaml_and_rejects_bad_values():
    assert HandlerSettings().release_memory_after_pieces == DEFAULT_RELEASE_MEMORY_AFTER_PIECES
    assert HandlerSettings.from_mapping({"release_memory_after_pieces": 0}).release_memory_after_pieces == 0
    with pytest.raises(ValueError, match="release_memory_after_pieces must be >= 0"):
        HandlerSettings.from_mapping({"release_memory_after_pieces": -1})
    with pytest.raises(ValueError, match="release_memory_after_pieces must be an integer"):
        HandlerSettings.from_mapping({"release_memory_after_pieces": "8192"})
