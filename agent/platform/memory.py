"""The C allocator, tuned once at start so a long-running agent's memory stays flat.

The relay moves the stream in chunks of up to 64 KiB (one read of a child's output, one
buffer of a pipe). glibc's malloc first serves blocks that size with their own mappings, but
every such block it frees raises its *dynamic* mmap threshold, and from then on they come from
the heap, interleaved with small long-lived objects. Under 20 live targets the heap then grew
by about 0.3 MB a minute while what was in use stayed flat: free space that could not be given
back. A fixed threshold of 32 KiB (:data:`MMAP_THRESHOLD`) keeps the big, short-lived blocks in
mappings that are returned whole when freed, and the heap stays the same size for hours. The
price is one ``mmap``/``munmap`` pair per chunk, a few hundred a second at most.

One interface, one implementation per allocator:

- Linux with glibc: ``mallopt(M_MMAP_THRESHOLD, …)``, which also turns the dynamic threshold
  off;
- Linux with another C library (musl has no ``mallopt``), macOS (magazine malloc returns large
  blocks by itself) and Windows (the low-fragmentation heap, same): nothing to do.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 32 * 1024
M_MMAP_THRESHOLD = -3  # <malloc.h>

Mallopt = Callable[[int, int], int]


def tune_allocator(platform: str = sys.platform, mallopt: Mallopt | None = None) -> str | None:
    """Tune the process's allocator; what was done, or None where nothing is needed."""
    if not platform.startswith("linux"):
        return None
    if mallopt is None:
        mallopt = _glibc_mallopt()
        if mallopt is None:
            return None
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        log.warning("the C library refused a fixed mmap threshold; memory may creep when live")
        return None
    return f"blocks of {MMAP_THRESHOLD // 1024} KiB and more get their own mappings"


def _glibc_mallopt() -> Mallopt | None:
    """glibc's ``mallopt``, or None with another C library."""
    try:
        libc = ctypes.CDLL(None)
        function = libc.mallopt
    except (OSError, AttributeError):
        return None
    if not hasattr(libc, "gnu_get_libc_version"):
        return None  # another C library with a mallopt of other meanings
    function.argtypes = (ctypes.c_int, ctypes.c_int)
    function.restype = ctypes.c_int
    result: Mallopt = function
    return result
