"""Prepare a study folder and run it in pieces with i-PI (+ PLUMED), through the runner library.

``prepare(folder, settings)`` writes study.json, init.xyz, the PLUMED inputs (plumed.dat,
plumed_T{k}.dat per REMD temperature or plumed_W{k}.dat per walker) and input.xml; a non-empty folder is refused unless
force=True, which moves it to FOLDER.bck.N (nothing is deleted).

``run_study(folder)`` starts i-PI in the folder with so3k_driver.ipi.runner (socket backend: i-PI
plus ``so3k serve`` drivers; direct backend: the model inside i-PI through ipi/direct_pes.py).
When the folder holds a restart it continues from the newest of i-PI's RESTART (written on a
clean stop) and its numbered periodic checkpoints ``sim.restart_N`` (what is left after a kill);
the outputs are cut back to that step (no step twice), i-PI appends to them and PLUMED, told it
is restarting, reads back and extends the HILLS. Crashed drivers are restarted and a crashed
i-PI is resumed by the runner (see ipi/runner.py and docs/reliability.md). i-PI exits
with status 0 also when it stops early (a soft exit after an error in a force thread), so the
step reached is compared with the steps asked for.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import shutil
import time
from pathlib import Path

from . import inputs as study_inputs
from . import pieces, plumed_inputs
from .settings import SETTINGS_FILE, StudySettings, walker_label
from .study_lock import check_free, exclusive_study
from ..errors import UserError
from ..io.model_files import (BUNDLED_MODELS, MODEL_ALIASES, absolute_model_spec, bundled_model_with_fingerprint,
                              model_fingerprint)
from ..ipi import ipi_xml, recovery
from ..ipi.structures import ipi_xyz

PES_CONFIG = "so3k_pes.json"
INPUT = "input.xml"
SOCKET_PLACEHOLDER = "so3k-study"  # replaced by a per-run address when the study runs
NO_PROGRESS_TIMEOUT_S = 600.0  # first model compilation of a large batch can take minutes


def set_aside(folder: Path) -> Path | None:
    """Rename a non-empty folder to FOLDER.bck.N (first free N) so a new study loses nothing; returns it."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    index = 0
    while (backup := folder.with_name(f"{folder.name}.bck.{index}")).exists():
        index += 1
    folder.rename(backup)
    return backup


def prepare(folder, settings: StudySettings, force: bool = False) -> Path | None:
    """Write a study into folder; returns where an older content was moved (force=True), else None."""
    from ..evaluation.frames import read_structure_frames

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise UserError(f"{folder} is not empty; choose another folder or pass --force (moves it to "
                        f"{folder.name}.bck.N, nothing is deleted)")
    if folder.is_dir():
        check_free(folder, "prepare a new study in its place")
    frames = read_structure_frames(settings.structure)
    starts = start_frame_indices(len(frames), settings.systems, settings.structure)
    starting = [frames[i] for i in starts] if starts is not None else [frames[0]]
    if any(len(a) != len(starting[0]) or (a.numbers != starting[0].numbers).any() for a in starting):
        raise UserError(f"{settings.structure}: the starting frames {list(starts)} are not all the same molecule "
                        "(atoms or their order differ)")
    settings = dataclasses.replace(settings, start_frames=starts)
    atoms = starting[0]
    plumed_texts = {}
    if settings.metad.enabled:
        try:
            plumed_texts = {f"plumed{'_' + label if label else ''}.dat": plumed_inputs.metad_input(
                atoms.numbers, atoms.positions, settings.metad, temperature, suffix=f".{label}" if label else "",
                walker=walker) for label, temperature, walker in _biased_systems(settings)}
        except ValueError as error:
            raise UserError(f"{settings.structure}: metadynamics on {settings.metad.cv!r} needs a capped "
                            f"peptide (Ac-(Xaa)n-NHMe): {error}") from None
    model = absolute_model_spec(settings.model)  # runs start in the folder
    settings = dataclasses.replace(settings, model=model, model_fingerprint=model_fingerprint(model))
    backup = set_aside(folder) if force else None
    folder.mkdir(parents=True, exist_ok=True)
    settings.save(folder)
    # studies are gas phase: a box whatever cell the structure file carries
    (folder / study_inputs.DEFAULT_INIT_FILE).write_text(ipi_xyz(atoms, keep_cell=False))
    system_init_file = None
    if len(starting) > 1:
        for k, start in enumerate(starting):
            (folder / study_inputs.system_init_file(k)).write_text(ipi_xyz(start, keep_cell=False))
        system_init_file = study_inputs.system_init_file("IDX")  # i-PI's <system_template> fills in IDX
    for name, text in plumed_texts.items():
        (folder / name).write_text(text)
    plumed_files = list(plumed_texts) or None
    xml = study_inputs.study_xml(settings, _forcefield(folder, settings), plumed_files, numbers=atoms.numbers,
                                 system_init_file=system_init_file)
    (folder / INPUT).write_text(xml)
    return backup


def start_frame_indices(frames: int, systems: int, source: str = "the structure file") -> tuple[int, ...] | None:
    """Which frame of a structure file each of ``systems`` systems starts from.

    One frame: None (every system starts there). Several frames (M) and one system: the last (what ASE
    reads from a trajectory when asked for one structure). S >= 2 systems: S frames spread evenly over the
    file, first and last included: system k starts from frame k (M - 1) / (S - 1) rounded (halves up);
    M = S gives frame k to system k. Fewer frames than systems is an error (which frames would repeat is not obvious).
    """
    if frames < 1 or systems < 1:
        raise ValueError(f"frames and systems must be >= 1, got {frames} and {systems}")
    if frames == 1:
        return None
    if systems == 1:
        return (frames - 1,)
    if frames < systems:
        raise UserError(f"{source} has {frames} frames for {systems} systems (replicas or walkers): give one "
                        f"frame (every system starts there) or at least {systems}")
    return tuple(math.floor(k * (frames - 1) / (systems - 1) + 0.5) for k in range(systems))  # halves round up


def _biased_systems(settings: StudySettings) -> list[tuple[str, float, tuple[int, int] | None]]:
    """(label, temperature K, walker) of each biased system, in i-PI's order: label 'T<k>' per REMD
    temperature, 'W<k>' per walker (walker = (k, N)), '' for a single system. The label names its PLUMED
    input plumed_<label>.dat and its COLVAR.<label> (and HILLS.<label>, except for walkers: PLUMED's HILLS.k)."""
    if settings.walkers > 1:
        return [(walker_label(k), settings.temperatures[0], (k, settings.walkers)) for k in range(settings.walkers)]
    if settings.replica_exchange:
        return [(f"T{k}", t, None) for k, t in enumerate(settings.temperatures)]
    return [("", settings.temperatures[0], None)]


def _forcefield(folder: Path, settings: StudySettings) -> str:
    from ..ipi.compute import pes_lr_cutoff
    from ..ipi.run_setup import stats_file_name

    batch_size = settings.systems  # one driver call evaluates all replicas (or walkers) of a step
    if settings.backend == "socket":
        return study_inputs.socket_forcefield(SOCKET_PLACEHOLDER, batch_size)
    # Paths relative to the study folder (i-PI runs there; the PES reads the config's paths relative to
    # it), so that a copied or moved study, or an unpacked resume kit, still runs.
    config = {"model": settings.model, "template": study_inputs.DEFAULT_INIT_FILE,
              "batch_size": batch_size, "structures_per_step": batch_size,
              "stats_file": stats_file_name("", several=False)}
    if settings.dtype:
        config["dtype"] = settings.dtype
    config["lr_cutoff"] = pes_lr_cutoff(settings.lr_cutoff)
    (folder / PES_CONFIG).write_text(json.dumps(config, indent=1) + "\n")
    return study_inputs.direct_forcefield(ipi_xml.DIRECT_PES_FILE, PES_CONFIG, batch_size)


def change_model(folder, model: str) -> StudySettings:
    """Continue the study in folder with another model (e.g. a student retrained on what the study found).

    The model is checked against the study's elements before anything changes; study.json then
    records the old model in ``earlier_models`` with the step of the newest restart (from which the
    new model takes over), and the direct backend's PES configuration names the new model. Metadynamics
    hills deposited so far stay: they are a bias, not a property of the model. Refused while the study runs.
    """
    folder = Path(folder).resolve()
    StudySettings.load(folder)  # a folder that is not a study is refused before a lock file is put in it
    with exclusive_study(folder, "change its model"):
        return _change_model(folder, model)


def _change_model(folder: Path, model: str) -> StudySettings:
    from ..ipi.run_setup import check_model_elements

    settings, _, step = planned_run(folder)
    model = absolute_model_spec(model)
    fingerprint = model_fingerprint(model)
    if model == settings.model and fingerprint == settings.model_fingerprint:
        return settings
    check_model_elements(model, str(folder / study_inputs.DEFAULT_INIT_FILE))
    # the same spec with other parameters (a file overwritten, a new bundled default) is a change of model too
    settings = dataclasses.replace(settings, model=model, model_fingerprint=fingerprint,
                                   earlier_models=settings.earlier_models + ({"model": settings.model, "until_step": step},))
    settings.save(folder)
    if settings.backend == "direct":
        _forcefield(folder, settings)  # rewrites the PES configuration that input.xml and every restart name
    return settings


def latest_restart(folder: Path) -> Path | None:
    """RESTART or a checkpoint sim.restart_N (or an older study's sim.restart), whichever was written at
    the latest step; None if there is none."""
    checkpoint = recovery.latest_checkpoint(str(folder), study_inputs.DEFAULT_PREFIX)
    return Path(checkpoint.path) if checkpoint else None


@dataclasses.dataclass(frozen=True)
class StudyRun:
    """One piece of a study: MD steps first_step → last_step of total_steps; wall time in s."""

    folder: Path
    first_step: int
    last_step: int
    total_steps: int
    interrupted: bool
    wall_s: float
    resumed_from: Path | None


def planned_run(folder) -> tuple[StudySettings, Path | None, int]:
    """(settings, restart to continue from or None, its step) of a study folder."""
    settings = StudySettings.load(folder)
    restart = latest_restart(Path(folder))
    return settings, restart, ipi_xml.step(restart) if restart else 0


def _check_model_unchanged(folder: Path, settings: StudySettings) -> StudySettings:
    """The study's model must still be the one it ran with: a file overwritten in place or a bundled
    model replaced by a package update would change the physics mid-study without a trace. A study
    from before fingerprints were recorded gets its model's fingerprint now."""
    named = MODEL_ALIASES.get(settings.model, settings.model)  # 'default' is a bundled model's other name
    if settings.model_fingerprint is None and named == "so3lr-student":
        # begun before fingerprints were recorded (before 2026-12-04), with a bundled model that has since
        # changed (v6 -> v10 -> v13)
        raise UserError(f"{folder} began before studies recorded their model, and the bundled {settings.model!r} "
                        "has changed since (student v6 -> v10 on 2026-12-04, v10 -> v13 on 2026-12-05): say which "
                        f"to continue with, so3k sample run {shlex.quote(str(folder))} --model so3lr-student-v6 (the "
                        "default of 2026-12-02 to 2026-12-04), --model so3lr-student-v10 or --model default (v13)")
    fingerprint = model_fingerprint(settings.model)
    if settings.model_fingerprint is None:
        settings = dataclasses.replace(settings, model_fingerprint=fingerprint)
        settings.save(folder)
    elif fingerprint != settings.model_fingerprint:
        earlier = bundled_model_with_fingerprint(settings.model_fingerprint) if named in BUNDLED_MODELS else None
        if earlier is not None:  # a package update replaced the bundled default; the old one is still bundled
            raise UserError(f"the bundled {settings.model!r} changed since this study began: it ran with what is now "
                            f"bundled as {earlier!r}; continue with that: so3k sample run {shlex.quote(str(folder))} "
                            f"--model {earlier}, or with today's: --model {shlex.quote(settings.model)}")
        raise UserError(f"{settings.model} is no longer the model this study ran with: its parameters changed "
                        f"(fingerprint {fingerprint}, the study recorded {settings.model_fingerprint}); to continue "
                        f"with it as it is now: so3k sample run {shlex.quote(str(folder))} --model "
                        f"{shlex.quote(settings.model)}")
    return settings


def run_study(folder, total_steps: int | None = None, quiet: bool = True, auto_resume: int = 0,
              driver_restarts: int = 3) -> StudyRun:
    """Run (or continue) the study in folder up to total_steps MD steps (default: the settings' steps;
    a larger total is saved in study.json). quiet=False shows progress on stderr. auto_resume: times
    a crashed i-PI is resumed from its newest checkpoint without asking; driver_restarts: times a
    crashed driver is started again. To continue with another model, call change_model first.

    Raises UserError when there is nothing left to run, i-PI stopped early or another process is running
    the study (study_lock.py), RunFailed when i-PI or a driver failed (the newest restart stays: run again
    to continue).
    """
    folder = Path(folder).resolve()
    StudySettings.load(folder)  # a folder that is not a study is refused before a lock file is put in it
    with exclusive_study(folder) as lock:
        return _run_study(folder, total_steps, quiet, auto_resume, driver_restarts, () if lock is None else (lock,))


def _run_study(folder: Path, total_steps: int | None, quiet: bool, auto_resume: int, driver_restarts: int,
               inherited_fds: tuple) -> StudyRun:
    from ..ipi.runner import RunOptions, run_simulation

    settings, restart, first_step = planned_run(folder)
    total = settings.steps if total_steps is None else total_steps
    if total < 1:
        raise UserError(f"total steps must be >= 1, got {total}")
    if restart is not None and total <= first_step:
        raise UserError(f"{folder} is already at step {first_step} of {settings.steps}; extend it with more "
                        f"total steps (--steps TOTAL, got {total})")
    settings = _check_model_unchanged(folder, settings)  # after the checks that need no model (seconds)
    if total != settings.steps:
        settings = dataclasses.replace(settings, steps=total)
        settings.save(folder)
    input_file = folder / INPUT
    if restart is not None:
        input_file = folder / f"resume_from_step_{first_step}.xml"  # kept: RESTART is rewritten by the run
        shutil.copyfile(restart, input_file)
    _relocate(folder, input_file, settings)
    socket = settings.backend == "socket"
    options = RunOptions(
        input=str(input_file), model=settings.model if socket else None, workdir=str(folder), steps=total,
        address=f"so3k-{os.getpid()}-{folder.name}"[:60] if socket else None, dtype=settings.dtype,
        timeout_s=NO_PROGRESS_TIMEOUT_S, quiet=quiet, auto_resume=auto_resume,
        max_driver_restarts=driver_restarts, driver_options={"lr_cutoff": settings.lr_cutoff},
        inherited_fds=inherited_fds)
    pieces.record_start(folder, first_step, total, settings.model)
    started, outcome = time.monotonic(), "failed"
    try:
        result = run_simulation(options, description=describe(settings, folder))
        outcome = "interrupted" if result.interrupted else "finished"
    finally:
        last = latest_restart(folder)
        last_step = ipi_xml.step(last) if last else first_step
        pieces.record_end(folder, first_step, last_step, time.monotonic() - started, outcome)
    if not result.interrupted:
        check_finished(folder, total)
    return StudyRun(folder, first_step, last_step, total, result.interrupted, result.wall_s, restart)


def _relocate(folder: Path, input_file: Path, settings: StudySettings) -> None:
    """Let a study run wherever its folder now is: the in-process PES configuration is written again from
    study.json (relative paths), and an input or restart that names files of the folder where it was
    written is pointed into this one (ipi_xml.relocate)."""
    if settings.backend == "direct":
        _forcefield(folder, settings)
    tree = ipi_xml.load(str(input_file))
    if ipi_xml.relocate(tree.getroot(), str(folder)):
        tree.write(input_file, encoding="unicode")


def describe(settings: StudySettings, folder) -> str:
    """A short label, e.g. "REMD+METAD 8 × 162 atoms" or "MD 1 × 42 atoms"."""
    from ..ipi.structures import read_numbers

    try:
        atoms = f"{len(read_numbers(str(Path(folder) / study_inputs.DEFAULT_INIT_FILE)))} atoms"
    except (OSError, ValueError):
        atoms = "atoms"
    kind = ("REMD" if settings.replica_exchange else "MD") + ("+METAD" if settings.metad.enabled else "")
    if settings.walkers > 1:
        kind += f" ({settings.walkers} walkers, one bias)"
    return f"{kind} {settings.systems} × {atoms}"


def check_finished(folder, total_steps: int) -> None:
    """Raise UserError when the newest restart is before total_steps (i-PI soft-exited early)."""
    folder = Path(folder)
    restart = latest_restart(folder)
    if restart is None:
        return
    reached = ipi_xml.step(restart)
    if reached < total_steps:
        log = folder / "ipi.log"
        reasons = [line.strip() for line in log.read_text(errors="replace").splitlines()
                   if "SOFTEXIT" in line or "Error" in line][-3:] if log.exists() else []
        raise UserError(f"i-PI stopped at step {reached} of {total_steps} in {folder}"
                        + (": " + " | ".join(reasons) if reasons else "")
                        + f"; {restart.name} is kept: continue with `so3k sample run {folder}` once the cause is fixed")


__all__ = ["prepare", "start_frame_indices", "run_study", "set_aside", "latest_restart", "check_finished",
           "planned_run", "StudyRun", "SETTINGS_FILE"]
