"""How much CPU other processes took while a measurement ran, and waiting for quiet.

The machine has two CPUs and may be shared (test suites, browsers). The runner
waits for a quiet moment before each run and records the CPU that processes
other than its own used meanwhile, in cores (0.0 to 2.0), so a noisy round can
be seen and repeated rather than trusted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

TICKS = os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """Busy and total jiffies of all CPUs since boot."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def process_ticks(pids: Iterable[int]) -> int:
    """CPU jiffies (user + system) the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


class ForeignLoad:
    """CPU used by processes outside `own` between `start()` and `stop()`, in cores."""

    def __init__(self, own: Iterable[int]) -> None:
        self.own = set(own)
        self._busy = self._mine = 0
        self._started = 0.0

    def start(self) -> None:
        self._busy = _machine_ticks()[0]
        self._mine = process_ticks(self.own)
        self._started = time.monotonic()

    def stop(self) -> float:
        elapsed = time.monotonic() - self._started
        busy = _machine_ticks()[0] - self._busy
        mine = process_ticks(self.own) - self._mine
        return max(busy - mine, 0) / TICKS / elapsed if elapsed else 0.0


def wait_for_quiet(own: Iterable[int], *, threshold: float, max_wait: float) -> float:
    """Wait until others use less than `threshold` cores over one second; the last reading."""
    deadline = time.monotonic() + max_wait
    meter = ForeignLoad(own)
    while True:
        meter.start()
        time.sleep(1.0)
        load = meter.stop()
        if load < threshold or time.monotonic() > deadline:
            return load
