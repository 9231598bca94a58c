"""CPU priority of a worker process: the document lane's workers yield the cores to the short texts' workers.

Both lanes (``nerserve.protocol.document_lane``) run on the same cores. A document's batch takes seconds of CPU; a
short text's tens of milliseconds. At equal priority the kernel shares the cores evenly, so short texts queue behind
documents' time slices: measured, short p99 twice as high with the lane's workers at nice 0 as at nice 10
(docs/PERFORMANCE.md, "Mixed load"). At nice 10 a document worker still gets about a tenth of a contended core,
so a document lane batch always progresses (its responseTimeout is sized for the worst case on a whole core).

Linux keeps a nice value per thread: every thread the process has is changed, and threads started later (torch's,
the tokenizer's) inherit the caller's. Raising a nice value needs no privilege; nothing here ever lowers one.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DOCUMENT_LANE_NICENESS = 10
MAX_NICENESS = 19  # the lowest priority Unix has

_TASKS = Path("/proc/self/task")


def lower_cpu_priority(increment: int) -> int:
    """Raise the nice value of every thread of this process by ``increment`` (capped at 19); return the calling
    thread's new nice value. ``increment`` 0 changes nothing."""
    if increment < 0:
        raise ValueError(f"the nice increment must be >= 0 (lowering a priority only), got {increment}")
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if increment == 0:
        return current
    target = min(current + increment, MAX_NICENESS)
    # On Linux PRIO_PROCESS with a thread id sets that thread; elsewhere only the process id is known.
    threads = [int(task.name) for task in _TASKS.iterdir()] if _TASKS.is_dir() else [0]
    for thread in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, thread, max(target, os.getpriority(os.PRIO_PROCESS, thread)))
        except ProcessLookupError:  # the thread ended meanwhile
            continue
    return os.getpriority(os.PRIO_PROCESS, 0)
