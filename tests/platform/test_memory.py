"""The allocator tuning: on glibc, big short-lived blocks get their own mappings (so the heap
cannot creep); elsewhere nothing is touched."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from agent.platform.memory import M_MMAP_THRESHOLD, MMAP_THRESHOLD, tune_allocator

# Run in a fresh interpreter: the tuning is process-wide. mallinfo2's ``hblks`` counts the
# blocks that live in their own mappings.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from agent.platform.memory import tune_allocator

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info

    def mapped_while_alive(size, count=20):
        before = libc.mallinfo2().hblks
        blocks = [bytearray(size) for _ in range(count)]
        during = libc.mallinfo2().hblks
        del blocks
        return during - before

    # What the relay does all day: a 64 KiB block freed, which (untuned) raises glibc's
    # threshold so that the next ones come from the heap.
    big = bytearray(200 * 1024)
    del big
    untuned = mapped_while_alive(48 * 1024)
    if sys.argv[1] == "tune":
        print(tune_allocator(), file=sys.stderr)
    print(untuned, mapped_while_alive(48 * 1024), mapped_while_alive(8 * 1024))
    """
)


def _probe(mode: str) -> list[int]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return [int(n) for n in result.stdout.split()]


def test_on_glibc_big_blocks_get_their_own_mappings_once_tuned() -> None:
    untuned_before, untuned_big, untuned_small = _probe("leave")
    assert (untuned_before, untuned_big, untuned_small) == (0, 0, 0)  # the heap serves them
    _, tuned_big, tuned_small = _probe("tune")
    # Most of 20 live 48 KiB blocks have their own mapping, returned whole when freed (the
    # heap's free top, under 128 KiB, may still serve a couple).
    assert tuned_big >= 16
    assert tuned_small == 0  # small blocks stay in the heap


def test_other_systems_are_left_alone() -> None:
    calls: list[tuple[int, int]] = []

    def mallopt(option: int, value: int) -> int:
        calls.append((option, value))
        return 1

    assert tune_allocator("darwin", mallopt) is None
    assert tune_allocator("win32", mallopt) is None
    assert calls == []
    assert tune_allocator("linux", mallopt) is not None
    assert calls == [(M_MMAP_THRESHOLD, MMAP_THRESHOLD)]


def test_a_refusing_c_library_is_reported_and_nothing_claimed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert tune_allocator("linux", lambda option, value: 0) is None
    assert "refused" in caplog.text
