"""A reproduction plan on a cluster: ``ssm-jax reproduce --launcher submitit``.

Each unit of the plan becomes one job of a SLURM job array (submitit): a group of runs of a
sweep (the runs :func:`~ssm_jax.experiments.sweeps.run_sweep` would train together), or a
whole experiment for those that train in memory (``CLUSTER = "experiment"``). The command
submits and returns; run again, it reuses finished units, leaves running ones alone (a run's
workdir lock, or a submitted job that is still alive, decides), resubmits failed or killed
ones, and writes REPORT.md once every unit has finished (``--gather``: from what is done,
naming what is missing). A job that is preempted or hits its time limit is requeued by
submitit and resumes from its last checkpoint (the trainer resumes its workdir).

How units are found: every experiment runs with :func:`~ssm_jax.experiments.sweeps.dispatching`
on, in which a sweep that would train raises :class:`~ssm_jax.experiments.sweeps.Pending` with
its groups instead; an experiment that gets through has all its runs and writes its tables and
claims then. A sweep whose next round depends on the last one (the retry protocol of paper 3)
shows its next units at the next invocation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import sys

from ssm_jax import options as opt
from ssm_jax.experiments import runner, sweeps
from ssm_jax.files import write_json_atomic
from ssm_jax.options import option
from ssm_jax.training.workdir import WorkdirError, WorkdirLock

MARKER = ".submitted.json"  # in a unit's workdir(s): the job that was sent for it
LAUNCHERS = ("local", "submitit")


@dataclasses.dataclass(frozen=True)
class LauncherOptions:
    """``launcher.*`` keys of ``ssm-jax reproduce --launcher submitit``."""

    cluster: str = option("slurm", "submitit executor: 'slurm', or 'local' (jobs as processes "
                          "on this machine: tests and debugging)", choices=("slurm", "local"))
    partition: str = option("", "SLURM partition ('': the cluster's default)")
    gpus_per_job: int = option(1, "GPUs per job (one unit)", minimum=0)
    cpus_per_job: int = option(8, "CPUs per job", positive=True)
    mem_gb: int = option(64, "memory per job in GB", positive=True)
    timeout_min: int = option(240, "time limit of a job in minutes (a job that reaches it is "
                              "requeued and resumes from its last checkpoint)", positive=True)
    array_parallelism: int = option(64, "jobs of the array that may run at once", positive=True)
    sbatch: tuple = option((), "extra sbatch options as KEY=VALUE, e.g. [account=abc, "
                           "qos=high]", item_kind=str)
    folder: str = option("", "job files and logs ('': <workdir>/launcher)")

    def check(self, prefix=""):
        for item in self.sbatch:
            opt.require("=" in item and item.split("=")[0].strip(), prefix + "sbatch",
                        f"items must look like KEY=VALUE, got {item!r}")


def parse_options(overrides) -> tuple:
    """``(LauncherOptions, the other overrides)`` from ``KEY=VALUE`` overrides: the
    ``launcher.*`` ones are parsed here (one-line error naming the key and what is allowed)."""
    import ml_collections

    from ssm_jax.training.config import apply_overrides

    cfg = ml_collections.ConfigDict({"launcher": opt.defaults(LauncherOptions)})
    apply_overrides(cfg, [item for item in overrides if item.startswith("launcher.")])
    return (opt.parse(LauncherOptions, cfg.launcher, "launcher."),
            [item for item in overrides if not item.startswith("launcher.")])


@dataclasses.dataclass(frozen=True)
class ExperimentUnit:
    """A whole experiment as one job (experiments that train in memory, not through sweeps;
    ``CLUSTER = "experiment"`` in their module)."""

    module: str
    exp: object
    directory: str

    @property
    def workdirs(self) -> tuple:
        return (self.directory,)

    @property
    def label(self) -> str:
        return f"the whole experiment ({self.directory})"

    def done(self) -> bool:
        return os.path.exists(os.path.join(self.directory, "claims.json"))

    def train(self) -> None:
        import importlib

        os.makedirs(self.directory, exist_ok=True)
        with WorkdirLock(self.directory):
            runner.run(importlib.import_module(self.module), self.exp, self.directory, sweeps.NO_BAR)


class Job:
    """What one job of the array runs: ``unit.train()``. On preemption or at the time limit,
    submitit calls :meth:`checkpoint` and requeues the same unit, which resumes from the last
    checkpoint of its runs (the trainer resumes a workdir)."""

    def __call__(self, unit) -> None:
        unit.train()

    def checkpoint(self, unit):
        import submitit

        return submitit.helpers.DelayedSubmission(Job(), unit)


def experiment_units(module, exp, directory: str) -> list:
    """The units of one experiment still to train ([] when it is finished: then its tables,
    figures and claims have just been written)."""
    if getattr(module, "CLUSTER", "runs") == "experiment":
        unit = ExperimentUnit(module.__name__, exp, directory)
        return [] if unit.done() else [unit]
    try:
        with sweeps.dispatching():
            runner.run(module, exp, directory, sweeps.NO_BAR)
    except sweeps.Pending as pending:
        return list(pending.groups)
    return []


TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
            "BOOT_FAIL", "DEADLINE", "FINISHED", "INTERRUPTED")


def _read_marker(workdir: str):
    path = os.path.join(workdir, MARKER)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def job_alive(marker: dict) -> bool:
    """Whether the job a marker names may still train its unit (pending, running or requeued)."""
    if marker["cluster"] == "local":  # the job id is the pid of submitit's local controller
        pid = int(marker["job_id"])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rpartition(")")[2].split()[0] != "Z"
        except OSError:
            return True
    import submitit

    state = submitit.SlurmJob(marker["folder"], marker["job_id"]).state.upper()
    return not state.startswith(TERMINAL)


def unit_state(unit) -> str:
    """``done``, ``running`` (a run's workdir is locked, or its job is alive), ``failed`` (its
    job ended without finishing it: killed, out of time for good, an error) or ``new``."""
    if unit.done():
        return "done"
    for workdir in unit.workdirs:
        if os.path.isdir(workdir):
            try:
                with WorkdirLock(workdir):
                    pass
            except WorkdirError:
                return "running"
    marker = _read_marker(unit.workdirs[0])
    if marker is None:
        return "new"
    return "running" if job_alive(marker) else "failed"


def make_executor(o: LauncherOptions, folder: str):
    try:
        import submitit
    except ImportError:
        raise ValueError("--launcher submitit needs the submitit package: pip install "
                         "'ssm-jax[cluster]'") from None
    executor = submitit.AutoExecutor(folder=folder, cluster=o.cluster)
    params = dict(name="ssm-jax", timeout_min=o.timeout_min, gpus_per_node=o.gpus_per_job,
                  cpus_per_task=o.cpus_per_job, mem_gb=o.mem_gb)
    if o.cluster == "slurm":
        params.update(slurm_array_parallelism=o.array_parallelism,
                      slurm_additional_parameters=dict(kv.split("=", 1) for kv in o.sbatch))
        if o.partition:
            params["slurm_partition"] = o.partition
    executor.update_parameters(**params)
    return executor


@contextlib.contextmanager
def _detached(on: bool):
    """Local jobs are child processes that outlive this command: while they are started, stdin,
    stdout and stderr point to /dev/null, so they hold none of this command's pipes open (they
    log to the launcher folder)."""
    if not on:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        yield
    finally:
        for fd, copy in zip((0, 1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)


def submit(units, o: LauncherOptions, folder: str) -> list:
    """Send ``units`` as one job array; write each unit's marker; returns the job ids."""
    executor = make_executor(o, folder)
    with _detached(o.cluster == "local"), executor.batch():
        jobs = [executor.submit(Job(), unit) for unit in units]
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for unit, job in zip(units, jobs):
        for workdir in unit.workdirs:
            os.makedirs(workdir, exist_ok=True)
            write_json_atomic(os.path.join(workdir, MARKER), {
                "job_id": job.job_id, "cluster": o.cluster, "folder": folder, "submitted": now})
    return [job.job_id for job in jobs]


def folder_of(o: LauncherOptions, workdir: str) -> str:
    """Where submitit keeps the jobs' files and logs: ``launcher.folder``, or
    ``<workdir>/launcher``."""
    return os.path.abspath(o.folder or os.path.join(workdir, "launcher"))


def launch(plan, workdir: str, o: LauncherOptions, *, send: bool = True) -> tuple:
    """Find every unit of ``plan`` (``[(paper, module, exp, directory)]``) and its state, and
    (``send``) submit the new and failed ones, under a lock so that two invocations never send
    the same unit. Returns ``(rows, job ids)``: ``rows`` one ``(experiment, unit, state)`` per
    unit (``unit`` None and state ``done`` for a finished experiment)."""
    folder = folder_of(o, workdir)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".submit.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent invocation waits, then sees the markers
        rows = []
        for paper, module, exp, directory in plan:
            name = f"paper{paper}/{runner.module_name(module)}"
            units = experiment_units(module, exp, directory)
            rows += [(name, u, unit_state(u)) for u in units] or [(name, None, "done")]
        todo = [u for _, u, state in rows if state in ("new", "failed")]
        jobs = submit(todo, o, folder) if send and todo else []
    return rows, jobs


def summary(rows, jobs, folder: str) -> str:
    """What ``reproduce --launcher submitit`` prints: per experiment its units by state."""
    lines, names = [], list(dict.fromkeys(name for name, _, _ in rows))
    for name in names:
        states = [state for n, u, state in rows if n == name and u is not None]
        if not states:
            lines.append(f"  {name}: done")
            continue
        counts = ", ".join(f"{states.count(s)} {s}" for s in ("running", "failed", "new") if s in states)
        lines.append(f"  {name}: {len(states)} unit(s) to train: {counts}")
    done = sum(1 for name in names if all(u is None for n, u, _ in rows if n == name))
    head = f"plan: {len(names)} experiment(s), {done} done"
    if jobs:
        head += f"; submitted {len(jobs)} job(s): {', '.join(map(str, jobs))} (logs in {folder})"
    return "\n".join([head, *lines])
