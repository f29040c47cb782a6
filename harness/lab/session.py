"""LabSession: one run on this machine, opened the same way by every entry point (run, claims, describe, the
privilege probe's child, the tests, the benchmarks).

A session owns the run id, the state ledger `vmnetbench clean` reads (`/run/vmnetbench/<run id>.json`), the
process tracker and the log folder, and makes the run's test beds. Closing it ends every process it still
tracks and drops the ledger once nothing recorded in it is left; a ledger that still lists something stays
for `clean`. Modelled on the kernel's net selftests lib/py (NetNS as a context manager, a defer queue).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from harness.lab.bed import AddressPlan, TestBed
from harness.lab.names import check_run_id, new_run_id
from harness.lab.netns import remove_namespace
from harness.lab.paths import STATE_DIR
from harness.lab.processes import ProcessTracker, end_netns_processes
from harness.lab.procfs import pinned_inodes
from harness.lab.runtime import NetnsRuntime, PodRuntime
from harness.lab.state import RunState, ledger_exists


class RunIdInUse(RuntimeError):
    pass


class LabSession:
    """Use as a context manager: `with LabSession() as lab: with lab.bed() as bed: ...`."""

    def __init__(
        self,
        run_id: str | None = None,
        *,
        log_dir: Path | None = None,
        helper: str = "",
        results_dir: Path | None = None,
    ) -> None:
        """`log_dir`: where processes' output goes (a results folder's logs/); without one, a scratch folder of
        the run that goes with the session. `helper`: a second process of an existing run (the privilege
        probe's child) with a ledger of its own, `<run id>-<helper>.json`. `results_dir`: the run's results
        folder, recorded so `clean` can mark it if the run is killed. A run id whose ledger exists is refused
        (RunIdInUse), except for a helper joining its run."""
        self.run_id = check_run_id(run_id) if run_id else new_run_id()
        if not helper and ledger_exists(self.run_id):
            raise RunIdInUse(
                f"run id {self.run_id} is in use: its ledger {STATE_DIR / self.run_id}.json exists "
                f"(`vmnetbench clean {self.run_id}` removes a dead run's leftovers)"
            )
        self.state = RunState(self.run_id, suffix=f"-{helper}" if helper else "")
        self.state.results_dir = str(results_dir) if results_dir else None
        self._own_logs = log_dir is None
        self.log_dir = log_dir or self.run_dir / (f"logs-{helper}" if helper else "logs")
        self.tracker = ProcessTracker(self.state, self.log_dir)
        self.pod_runtime: PodRuntime = NetnsRuntime()  # where the run's pods live; beds ask it to make them
        self.closed = False

    def lease(self, service: str) -> None:
        """Record, before the run first asks it, that the run needs `service` (its runtime, by name) while it
        lives: what stops a shared service (the runtime's engine) reads the live leases first."""
        self.state.add_use(service)

    @property
    def run_dir(self) -> Path:
        """The run's own folder on this machine (sockets, scratch files); `clean` removes it with the run."""
        return STATE_DIR / self.run_id

    def scratch_dir(self) -> Path:
        path = self.run_dir / "scratch"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def __enter__(self) -> LabSession:
        self.state.save()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.tracker.stop_all()
        self.pod_runtime.remove_leftovers(self.run_id)  # a bed that was never closed may have left containers
        for name in list(reversed(self.state.namespaces)):  # a bed that was never closed: the ledger still knows
            self._remove_leftover_namespace(name)
        if self._own_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        if not self.state.suffix:
            shutil.rmtree(self.run_dir / "scratch", ignore_errors=True)
        if self.state.empty:
            self.state.remove_file()
            if not self.state.suffix:
                _remove_if_empty(self.run_dir)

    def _remove_leftover_namespace(self, name: str) -> None:
        inode = self.state.netns_inodes.get(name)
        if inode is not None:
            end_netns_processes(pinned_inodes({name: inode}))
        remove_namespace(name)
        self.state.drop_namespace(name)

    @contextmanager
    def bed(self, plan: AddressPlan | None = None) -> Iterator[TestBed]:
        """A fresh peer-node-pod bed of this run, torn down (LIFO) on exit whatever happens."""
        with TestBed(self.run_id, self.state, self.tracker, plan, self.pod_runtime) as bed:
            yield bed

    def new_bed(self, plan: AddressPlan | None = None) -> TestBed:
        """An unbuilt bed, for callers that build and close it themselves (to time both)."""
        return TestBed(self.run_id, self.state, self.tracker, plan, self.pod_runtime)

    def attach_bed(self, plan: AddressPlan | None = None) -> TestBed:
        """Handles on the bed the run's main process built (for a helper session)."""
        return TestBed.attach(self.run_id, self.state, self.tracker, plan)


def _remove_if_empty(path: Path) -> None:
    with suppress(OSError):
        path.rmdir()
