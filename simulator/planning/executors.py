"""Executors: where runs happen — here, in worker processes, or on a Dask cluster.

Every executor runs the same :class:`Task` list through :func:`run_task` and
returns the results ordered by task index, so the same seeds give the same
numbers whatever the executor (each run is a pure function of its scenario
and seed). Stopping early (Ctrl-C, SIGTERM or SIGHUP: see :func:`signals_stop`)
is cooperative: the executor's ``stop`` event is set, runs in progress end at
their next step with what they measured (marked ``interrupted``), runs not yet
started are dropped.

* :class:`SerialExecutor` runs tasks one after the other in this process;
* :class:`ProcessExecutor` runs them in ``workers`` processes (forkserver);
* :class:`DaskExecutor` submits them to a ``dask.distributed`` scheduler (an
  address such as ``tcp://10.0.0.5:8786``, or a ``Client``); the workers need
  this package installed. A Dask run stopped early keeps the finished runs
  only: running tasks are cancelled.

A run whose pools never fill (:class:`PoolFillError`) is no error of the
batch: the executor records it in :attr:`Batch.unfit`, runs no other task of
the same scenario (the same point: its pools would not fill either; they are
recorded with the same reason) and goes on with the rest, so the runs of the
points that fit are kept.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulator.planning.errors import PlanningError, PoolFillError
from simulator.planning.metrics import RunResult
from simulator.planning.runner import run_once
from simulator.planning.scenario import Scenario

__all__ = [
    "STOP_SIGNALS",
    "Batch",
    "DaskExecutor",
    "Executor",
    "OnProgress",
    "OnResult",
    "ProcessExecutor",
    "SerialExecutor",
    "StopSignals",
    "Task",
    "make_executor",
    "run_task",
    "signals_stop",
]

OnResult = Callable[[RunResult], None]
"""Called in the main process as each run finishes."""
OnProgress = Callable[[int, float], None]
"""Called with (task index, fraction done) when an executor can tell."""

_POLL_S = 0.2

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals that stop a batch cleanly: Ctrl-C, a supervisor's or CI's kill, a closed terminal."""


@dataclass(frozen=True)
class Task:
    """One run to make: a scenario (already with the point's overrides) and a replication."""

    index: int
    scenario: Scenario
    replication: int
    point: dict[str, Any] = field(default_factory=dict)
    keep_claims: bool = False


@dataclass
class Batch:
    """The results of a list of tasks, ordered by task index, and whether it was cut short."""

    results: list[RunResult]
    interrupted: bool = False
    unfit: dict[int, str] = field(default_factory=dict)
    """Tasks whose pools never filled, by index, with the reason; and the tasks of the same
    scenario not run for that, with the same reason (see the module docstring)."""

    @property
    def partial(self) -> bool:
        """Whether some runs are missing or incomplete."""
        return self.interrupted or any(r.interrupted for r in self.results)


def run_task(
    task: Task,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Run one task (the function the executors ship to their workers)."""
    return run_once(
        task.scenario,
        replication=task.replication,
        index=task.index,
        point=task.point,
        keep_claims=task.keep_claims,
        should_stop=should_stop,
        progress=progress,
    )


class Executor(Protocol):
    """Runs tasks and returns their results ordered by index."""

    name: str

    def run(
        self,
        tasks: Sequence[Task],
        *,
        stop: threading.Event,
        on_result: OnResult | None = None,
        on_progress: OnProgress | None = None,
    ) -> Batch:
        """Run ``tasks``; stop early when ``stop`` is set."""
        ...

    def close(self) -> None:
        """Release workers or connections."""
        ...


class SerialExecutor:
    """Runs the tasks one after the other in this process."""

    name = "serial"

    def run(
        self,
        tasks: Sequence[Task],
        *,
        stop: threading.Event,
        on_result: OnResult | None = None,
        on_progress: OnProgress | None = None,
    ) -> Batch:
        """Run ``tasks`` in order; a set ``stop`` ends the current run at its next step."""
        results: list[RunResult] = []
        unfit: dict[int, str] = {}
        unfit_tasks: list[Task] = []
        for task in tasks:
            if stop.is_set():
                return Batch(results, interrupted=True, unfit=unfit)
            failed = next((t for t in unfit_tasks if _same_point(task, t)), None)
            if failed is not None:
                # Its point did not fit in another replication: this one would not either.
                unfit[task.index] = unfit[failed.index]
                continue
            prog = None
            if on_progress is not None:
                report = on_progress
                index = task.index

                def prog(fraction: float, report: OnProgress = report, index: int = index) -> None:
                    report(index, fraction)

            try:
                result = run_task(task, should_stop=stop.is_set, progress=prog)
            except PoolFillError as exc:
                unfit[task.index] = str(exc)
                unfit_tasks.append(task)
                continue
            results.append(result)
            if on_result is not None:
                on_result(result)
            if result.interrupted:
                return Batch(results, interrupted=True, unfit=unfit)
        return Batch(results, interrupted=False, unfit=unfit)

    def close(self) -> None:
        """Nothing to release."""


def _same_point(task: Task, other: Task) -> bool:
    """Whether two tasks are replications of one point (they share its scenario object)."""
    return task.scenario is other.scenario


_worker_stop: Any = None


def _init_worker(stop_event: Any) -> None:
    # Ctrl-C (and a hang-up, or a SIGTERM sent to the process group) reaches
    # the workers too: they leave it to the main process, which tells them to
    # stop through the shared event and then shuts the pool down.
    global _worker_stop
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    _worker_stop = stop_event


def _worker_should_stop() -> bool:
    return bool(_worker_stop is not None and _worker_stop.is_set())


def _run_in_worker(task: Task) -> RunResult | None:
    if _worker_should_stop():
        # Queued before the stop and taken only now (a queued task cannot be
        # cancelled): it never started, so it yields nothing to average in.
        return None
    return run_task(task, should_stop=_worker_should_stop)


class ProcessExecutor:
    """Runs the tasks in ``workers`` processes (started once, reused across batches)."""

    name = "processes"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers: must be >= 1")
        self.workers = workers
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["simulator.planning.executors"])
        self._stop = ctx.Event()
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(self._stop,)
        )

    def run(
        self,
        tasks: Sequence[Task],
        *,
        stop: threading.Event,
        on_result: OnResult | None = None,
        on_progress: OnProgress | None = None,
    ) -> Batch:
        """Run ``tasks`` in the workers; a set ``stop`` cuts running runs short and drops the rest."""
        self._stop.clear()
        futures = {self._pool.submit(_run_in_worker, t): t for t in tasks}
        results: dict[int, RunResult] = {}
        unfit: dict[int, str] = {}
        pending = set(futures)
        interrupted = False
        try:
            while pending:
                done, pending = cf.wait(pending, timeout=_POLL_S, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    if fut.cancelled():
                        continue
                    try:
                        result = fut.result()
                    except PoolFillError as exc:
                        task = futures[fut]
                        unfit[task.index] = str(exc)
                        # Its point's runs not yet started would not fill either.
                        for other in pending:
                            if _same_point(futures[other], task) and other.cancel():
                                unfit[futures[other].index] = str(exc)
                        continue
                    if result is None:
                        continue
                    results[result.index] = result
                    if on_result is not None:
                        on_result(result)
                    if on_progress is not None:
                        on_progress(result.index, 1.0)
                if stop.is_set() and not interrupted:
                    interrupted = True
                    self._stop.set()
                    for fut in pending:
                        fut.cancel()
        except BaseException:
            self._stop.set()
            for fut in pending:
                fut.cancel()
            raise
        return Batch([results[i] for i in sorted(results)], interrupted=interrupted, unfit=unfit)

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)


_DASK_CONNECT_S = 10
"""How long to try to reach a Dask scheduler before giving up."""


class DaskExecutor:
    """Submits the tasks to a Dask cluster (``dask.distributed``)."""

    name = "dask"

    def __init__(self, address: str | Any, *, connect_timeout: float = _DASK_CONNECT_S) -> None:
        # dask.distributed is untyped: hold it as Any.
        distributed: Any = importlib.import_module("dask.distributed")
        self._distributed = distributed
        Client = distributed.Client
        self.client: Any
        if isinstance(address, Client):
            self.client = address
            self._own = False
        else:
            try:
                self.client = Client(address, timeout=connect_timeout)
            except OSError as exc:  # including TimeoutError: nothing listens there
                raise PlanningError(
                    f"--dask: cannot reach the scheduler at {address}: {exc}"
                ) from None
            except (ValueError, TypeError) as exc:
                # dask's own words ("missing port number in address ...") name no option.
                raise PlanningError(
                    f"--dask: {address!r} is not a scheduler address "
                    f"(expected e.g. tcp://host:8786): {exc}"
                ) from None
            self._own = True

    def run(
        self,
        tasks: Sequence[Task],
        *,
        stop: threading.Event,
        on_result: OnResult | None = None,
        on_progress: OnProgress | None = None,
    ) -> Batch:
        """Run ``tasks`` on the cluster; a set ``stop`` cancels what has not finished."""
        wait = self._distributed.wait

        futures = [self.client.submit(run_task, t, pure=False) for t in tasks]
        owner = dict(zip(futures, tasks, strict=True))
        results: dict[int, RunResult] = {}
        unfit: dict[int, str] = {}
        pending = set(futures)
        interrupted = False
        try:
            while pending:
                try:
                    done, not_done = wait(
                        list(pending), timeout=_POLL_S, return_when="FIRST_COMPLETED"
                    )
                    pending = set(not_done)
                except TimeoutError:
                    done = set()  # nothing finished within the poll: check for a stop
                for fut in done:
                    try:
                        result = fut.result()
                    except PoolFillError as exc:
                        task = owner[fut]
                        unfit[task.index] = str(exc)
                        # Its point's runs not yet finished would not fill either.
                        same = [f for f in pending if _same_point(owner[f], task)]
                        self.client.cancel(same)
                        pending.difference_update(same)
                        unfit.update({owner[f].index: str(exc) for f in same})
                        continue
                    if result is None:
                        continue
                    results[result.index] = result
                    if on_result is not None:
                        on_result(result)
                    if on_progress is not None:
                        on_progress(result.index, 1.0)
                if stop.is_set():
                    interrupted = True
                    self.client.cancel(list(pending))
                    break
        except BaseException:
            self.client.cancel(list(pending))
            raise
        return Batch([results[i] for i in sorted(results)], interrupted=interrupted, unfit=unfit)

    def close(self) -> None:
        """Close the client if this executor opened it."""
        if self._own:
            self.client.close()


def make_executor(workers: int = 1, dask: str | Any | None = None) -> Executor:
    """A Dask executor when ``dask`` is given, processes when ``workers > 1``, else serial."""
    if dask is not None:
        return DaskExecutor(dask)
    if workers > 1:
        return ProcessExecutor(workers)
    return SerialExecutor()


class StopSignals:
    """What :func:`signals_stop` caught: the first stop signal, and whether a second one aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None
        """The first stop signal received (None: none)."""
        self.held = False
        """Once set, a second signal is only noted: the outputs are being written and must not
        be cut between two files."""

    @property
    def exit_code(self) -> int | None:
        """``128 + signal number`` (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as a
        shell reports a process the signal ended; None when no signal came."""
        return None if self.signum is None else 128 + self.signum


@contextmanager
def signals_stop(stop: threading.Event) -> Iterator[StopSignals]:
    """While inside, the first SIGINT, SIGTERM or SIGHUP sets ``stop`` (a clean, partial end).

    A second one aborts (KeyboardInterrupt) unless the caught record is
    ``held``. Without this, a SIGTERM would end the main process at once and
    leave the worker processes, the forkserver and the resource tracker
    running for ever. Only the main thread can take signals; elsewhere
    nothing is caught.
    """
    caught = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, frame: Any) -> None:
        if caught.signum is None:
            caught.signum = signum
        elif not caught.held:
            raise KeyboardInterrupt
        stop.set()

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield caught
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
