"""Work directories that cannot be corrupted: usable-directory checks, one run at a time
(a lock), and a config fingerprint that a resumed run must match.

* :func:`prepare_workdir`: the directory exists (or is created) and is writable; otherwise a
  one-line :class:`WorkdirError`.
* :class:`WorkdirLock`: an exclusive ``fcntl`` lock on ``workdir/.lock`` for the whole run; a
  second run on the same directory fails at once, naming the holder's pid. The lock is
  released by the kernel when the process dies, so a killed run never leaves it stale.
* :func:`check_resume`: ``workdir/checkpoints/config.json`` is the config the checkpoints were
  written with. A resumed run whose model, data, optimizer or schedule differ is refused with
  the differing keys; changes to logging, evaluation and checkpoint cadence are applied and
  reported. Checkpoints without that file are refused (:func:`check_fingerprint`) unless the
  old run is moved aside (:func:`move_aside`, ``ssm-jax train --restart``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys

from ssm_jax.training.config import (EXTENDABLE, PLACEMENT, RESUMABLE_CHANGES, Config, ConfigError,
                                     config_changes, save_config)

FINGERPRINT = os.path.join("checkpoints", "config.json")


class WorkdirError(ValueError):
    """A work directory that cannot be used (a file, not writable, in use by another run)."""


def prepare_workdir(workdir: str) -> str:
    """Create ``workdir`` if needed and check that this process can write to it.

    Returns:
      the absolute path.
    """
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise WorkdirError(f"workdir {workdir!r} is a file, not a directory; choose another --workdir")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write_test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise WorkdirError(f"workdir {workdir!r} is not writable ({reason}); choose another "
                           "--workdir") from None
    return path


class WorkdirLock:
    """Exclusive lock of a work directory for the lifetime of a run (context manager)."""

    def __init__(self, workdir: str, process: int = 0):
        # each process of a multi-host run holds its own lock: a second run with the same
        # process ids on this workdir fails, the processes of one run do not block each other
        self.path = os.path.join(workdir, ".lock" if process == 0 else f".lock.{process}")
        self._file = None

    def __enter__(self):
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise WorkdirError(f"workdir {os.path.dirname(self.path)!r} is in use by another "
                                   f"run (pid {holder}); wait for it to finish or choose another "
                                   "--workdir") from None
            raise
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        return False


def written_config(workdir: str):
    """The config a run in ``workdir`` was written with (its checkpoints' fingerprint, else its
    ``config.json``), or None for a new directory."""
    for path in (os.path.join(workdir, FINGERPRINT), os.path.join(workdir, "config.json")):
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
    return None


def move_aside(workdir: str) -> str | None:
    """``--restart``: rename an existing, non-empty ``workdir`` to ``<workdir>.old-<n>`` (the
    first free n) so a new run starts there and nothing of the old one is lost; returns the new
    name (None if there was nothing to move). Refused while another run holds the workdir."""
    path = os.path.abspath(workdir)
    if not os.path.isdir(path) or not os.listdir(path):
        return None
    with WorkdirLock(path):  # fails at once if a run is using it
        pass
    n = 1
    while os.path.exists(f"{path}.old-{n}"):
        n += 1
    os.rename(path, f"{path}.old-{n}")
    return f"{path}.old-{n}"


def check_fingerprint(workdir: str) -> None:
    """Refuse a workdir that holds checkpoints but not the config they were written with
    (``checkpoints/config.json``): nothing can tell whether resuming them is right, and a
    restart over them would lose them."""
    if not os.path.exists(os.path.join(workdir, FINGERPRINT)):
        raise WorkdirError(f"workdir {workdir!r} holds checkpoints but not {FINGERPRINT} (the "
                           "config they were written with), so they cannot be resumed safely; "
                           "restore that file, or pass --restart to move the old run aside "
                           "and start over")


def resume_conflicts(workdir: str, cfg: Config) -> tuple:
    """The resume policy: ``(refused, allowed)`` lists of ``(key, old, new)`` between the config
    ``workdir`` was written with and ``cfg``. Refused: anything but logging, evaluation and
    checkpoint cadence (:data:`RESUMABLE_CHANGES`), device placement and, with
    ``train.extend``, a larger ``num_steps`` or ``num_epochs``; ``([], [])`` for a new
    directory."""
    old = written_config(workdir)
    if old is None:
        return [], []
    new = json.loads(json.dumps(cfg.to_dict(), default=str))
    changes = [c for c in config_changes(old, new) if not c[0].startswith(PLACEMENT)]
    allowed = lambda key, a, b: key in RESUMABLE_CHANGES or (
        cfg.train.extend and key in EXTENDABLE and isinstance(a, int) and b > a)
    return [c for c in changes if not allowed(*c)], [c for c in changes if allowed(*c)]


def check_resume(workdir: str, cfg: Config, *, report=print) -> None:
    """Refuse to resume checkpoints written with another config (:func:`resume_conflicts`);
    report harmless changes. Does nothing for a new run.

    Raises:
      ConfigError naming every differing key that a resume cannot change.
    """
    check_fingerprint(workdir)
    refused, allowed = resume_conflicts(workdir, cfg)
    if refused:
        listed = ", ".join(f"{k} ({a!r} -> {b!r})" for k, a, b in refused[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        hint = (" (raising num_steps or num_epochs needs --extend)"
                if any(k in EXTENDABLE for k, _, _ in refused) and not cfg.train.extend else "")
        raise ConfigError(f"cannot resume {workdir!r}: its checkpoints were written with another "
                          f"config: {listed}{more}; use the original values or a new "
                          f"--workdir{hint}")
    for key, a, b in allowed:
        if key in EXTENDABLE:
            report(f"extending the run: {key} {a!r} -> {b!r} (the learning-rate schedule is "
                   f"that of the new length from the resumed step on)")
        elif key != "train.extend":
            report(f"resuming with changed {key}: {a!r} -> {b!r}")


def write_fingerprint(workdir: str, cfg: Config) -> None:
    """Store the config the checkpoints of ``workdir`` are written with (atomically)."""
    save_config(cfg, os.path.join(workdir, "checkpoints"))


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
