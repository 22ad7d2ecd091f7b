"""Peak RSS of a child process, measured as that process's own (tests and benchmarks).

`resource.getrusage(RUSAGE_SELF).ru_maxrss` is not: at exec Linux folds the high-water RSS of
the memory map being replaced (the forking parent's, shared through vfork or copied by fork)
into the new program's `ru_maxrss`, which is kept per process, not per map. A child spawned by
a pytest-xdist worker that has grown to 900 MiB therefore reports >= 900 MiB whatever it does,
and a before/after difference reads 0 (the "801-900 MiB inside the full suite" of round 2).
`VmHWM` in `/proc/PID/status` is the peak of the process's own memory map, which exec starts
afresh: a fresh interpreter's own peak, imports included.

`OWN_PEAK` is source text a child's `-c` program starts with: `own_peak_kib(pid)` reads one
process's VmHWM, and `TreePeak` samples it for every descendant (hashing workers) while the
child runs (VmHWM only grows, so sampling loses nothing but a worker's last few ms).
The memory tests and `benchmarks/hostile_rss.py` measure through this one reader.
"""

from __future__ import annotations

OWN_PEAK = '''
import os as _os, threading as _threading

def own_peak_kib(pid="self"):
    """VmHWM of process `pid` in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children_of(pid):
    out = []
    try:
        for tid in _os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


class TreePeak:
    """Samples the VmHWM of every descendant of this process until `stop()`."""

    def __init__(self, every=0.02):
        self.peaks = {}
        self._stop = _threading.Event()
        self._every = every
        self._thread = _threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            todo = _children_of(_os.getpid())
            while todo:
                pid = todo.pop()
                kib = own_peak_kib(pid)
                if kib:
                    self.peaks[pid] = max(self.peaks.get(pid, 0), kib)
                todo.extend(_children_of(pid))
            self._stop.wait(self._every)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peaks
'''
