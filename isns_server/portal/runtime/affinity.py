"""Run the event loop and the LUN workers on one CPU.

Every command that goes to a LUN's worker wakes that thread and is woken back: two
thread hand-offs, plus the GIL changing hands. Across CPUs each wake-up is an
inter-processor interrupt, which a virtual machine makes expensive: on the development VM
a hand-off round trip took ~270 µs across CPUs against ~45 µs on one, and 4 KiB writes
at queue depth 32 went from ~7,000 to ~12,000 per second when pinned. The loop is one
Python thread anyway; what it gives up is disk copies overlapping with it on another CPU.
Threads started before (the iSNS store's writer) keep their CPUs.
"""

import logging
import os

log = logging.getLogger(__name__)


def pin_to_one_cpu() -> int | None:
    """Pins the calling thread, and so the threads it starts later, to the highest CPU it
    may use (CPU 0 tends to take the most interrupts). The CPU, or None if it cannot."""
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        return None
    cpu = max(allowed)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as error:
        log.warning(
            "portal.pin_cpu: cannot pin the portal to CPU %d: %s; running unpinned", cpu, error
        )
        return None
    return cpu
