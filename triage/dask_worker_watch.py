"""local-dask workers end the moment the scan that started them dies.

Dask's own watch of a worker's parent is a thread, which a decoder stuck in C code holding the
GIL starves: such a worker lived on until its hard decode deadline (90 s by default) after the
scan was killed. So every worker of a LocalCluster runs `triage.parent_watch` on the scan's
process, the same guard the local pool's workers have. It is a worker plugin, so the workers a
nanny starts again after a kill get it too. Only for `local-dask`: a remote worker cannot see
the scan's process.
"""

from __future__ import annotations

from typing import Any

from distributed import WorkerPlugin

from triage.parent_watch import watch_parent


class EndWithScan(WorkerPlugin):
    name = "osec-triage-end-with-scan"

    def __init__(self, scan_pid: int) -> None:
        self.scan_pid = scan_pid

    def setup(self, worker: Any) -> None:
        watch_parent(self.scan_pid)
