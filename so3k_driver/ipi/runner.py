"""Run i-PI on an input with so3k drivers as child processes: progress, clean stop, self-healing, resume.

``run_simulation(RunOptions(...))`` is what ``so3k run`` and sampling studies call. Children run
in their own sessions, so a Ctrl-C in the terminal reaches only this process; it then sends
SIGTERM to i-PI, which writes RESTART and sends EXIT to the drivers (soft exit).

Two kinds of input: an ``<ffsocket>`` (i-PI plus driver processes, ``python -m
so3k_driver.ipi.serving OPTIONS.json``, address, mode and batch size read from the XML) or an
``<ffdirect>`` (the model runs inside i-PI: no driver). An input with ``<ffplumed>`` needs the
PLUMED kernel, which is located before i-PI starts; the model's elements are checked against the
structure before i-PI starts too.

Healing (docs/reliability.md): a driver that crashes (signal, out of memory) is started again,
at most ``max_driver_restarts`` times per run with a doubling pause; i-PI re-queues the request
it was computing, so no step is lost or repeated. A driver that stops with an error that would
recur (exit status 2: bad structure, force or bond guard) is not restarted. i-PI itself crashing is
resumed from the newest checkpoint when ``auto_resume`` > 0, after cutting the outputs back to it
(recovery.truncate_outputs). Checkpoints are numbered (PREFIX.restart_N, the newest
``keep_checkpoints`` kept), so a run stopped by the force guard can resume from one written
before the first abnormal step.

The work is split: run_setup.py holds RunOptions and everything done before i-PI starts (checks,
the rewritten input, the in-process PES configurations); supervisor.py one start of i-PI and its
drivers (launch, progress, driver restarts, clean stop); this module the loop over those starts
(resuming a crashed i-PI) and RunResult.
"""

from __future__ import annotations

import dataclasses
import os
import time

from . import recovery
from .run_setup import RunOptions, _prepare_piece, prepare_workdir, resume_command
from .supervisor import _Run
from ..errors import IpiCrashed, RunFailed
from ..progress import Progress


@dataclasses.dataclass(frozen=True)
class RunResult:
    """How a run ended: finished, or interrupted (Ctrl-C / SIGTERM; i-PI wrote RESTART)."""

    interrupted: bool
    workdir: str
    last_step: int | None  # from the properties file; None if i-PI wrote none
    wall_s: float
    driver_restarts: int = 0
    resumes: int = 0
    model: str | None = None
    models: tuple = ()  # (forcefield name, model spec) pairs
    calls: dict = dataclasses.field(default_factory=dict)  # forcefield name -> server.CallCounter.summary()

    @property
    def restart(self) -> str:
        return os.path.join(self.workdir, recovery.CLEAN_STOP_FILE)

    @property
    def resume_command(self) -> str:
        return resume_command(self.restart, self.workdir, self.model, self.models)


def run_simulation(options: RunOptions, description: str | None = None) -> RunResult:
    """Start i-PI (and the drivers), follow its progress until it exits, stop everything cleanly.

    Raises RunFailed (i-PI or a driver failed beyond what healing covers, or no progress for
    options.timeout_s; the message names the checkpoint and the command that resumes),
    IpiInputError / InputError / UserError / ModelFileError for unusable inputs, a missing i-PI or
    a missing PLUMED kernel: all before i-PI starts. Unless options.quiet, progress is shown on
    stderr (so3k_driver.progress) under description (default: the input's name).
    """
    workdir = prepare_workdir(options.workdir)
    input_path = os.path.abspath(options.input)
    started = time.time()
    resumes = driver_restarts = 0
    display = None
    try:
        while True:
            piece = _prepare_piece(options, input_path, workdir, resumed=resumes > 0)
            if display is None:
                display = None if options.quiet else Progress(
                    total=piece.outputs.total_steps, description=description or os.path.basename(options.input),
                    unit="step", completed=piece.outputs.start_step)
            say = _Messages(display)
            for line in piece.notes:
                say(line)
            run = _Run(options, workdir, piece, say, display, restarts_used=driver_restarts)
            try:
                interrupted, last_step = run.execute(), run.last_step
            except IpiCrashed as crash:
                checkpoint = recovery.latest_checkpoint(workdir, piece.outputs.prefix)
                if checkpoint is None:
                    raise RunFailed(f"{crash}; no checkpoint to resume from in {workdir}") from None
                total = piece.outputs.total_steps
                if total is not None and checkpoint.step >= total:
                    # i-PI died after its last step (killed while it wrote its final files): nothing is lost
                    recovery.truncate_outputs(workdir, checkpoint.path)
                    say(f"{crash}; its checkpoint {checkpoint.path} covers all {total} steps: the run is complete")
                    interrupted, last_step = False, checkpoint.step
                else:
                    driver_restarts += run.driver_restarts
                    # Healing a driver crash that took i-PI down is part of the driver's restart budget.
                    healing = (getattr(crash, "after_driver_crash", False)
                               and driver_restarts <= options.max_driver_restarts)
                    if not healing and resumes >= options.auto_resume:
                        raise RunFailed(f"{crash}; resume with: "
                                        f"{resume_command(checkpoint.path, workdir, options.model, options.models)}"
                                        ) from None
                    resumes += 0 if healing else 1
                    cut = recovery.truncate_outputs(workdir, checkpoint.path)
                    say(f"{crash}; resuming from {checkpoint.path} (step {checkpoint.step})"
                        + ("" if healing else f", resume {resumes} of {options.auto_resume}")
                        + (f"; outputs cut back to that step: {', '.join(os.path.basename(p) for p in cut)}"
                           if cut else ""))
                    input_path = checkpoint.path
                    continue
            driver_restarts += run.driver_restarts
            return RunResult(interrupted, workdir, last_step, time.time() - started, driver_restarts, resumes,
                             options.model, options.models, run.call_counts())
    finally:
        if display is not None:
            display.close()


class _Messages:
    """Lines above the progress display (nothing when quiet)."""

    def __init__(self, display: Progress | None):
        self.display = display

    def __call__(self, text: str) -> None:
        if self.display is not None:
            self.display.log(f"so3k run: {text}")


# RunOptions is defined in run_setup and offered here: callers build one and hand it to run_simulation.
__all__ = ["RunOptions", "RunResult", "run_simulation"]
