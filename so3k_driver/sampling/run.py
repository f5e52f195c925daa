"""Prepare and run an i-PI + PLUMED sampling job in a folder (metadynamics or REMD + metadynamics).

Two backends: ``socket`` (default) writes an ``<ffsocket>`` input run by ``so3k run`` (i-PI plus
``so3k serve`` drivers); ``direct`` runs the model inside i-PI (``<ffdirect>`` with
so3k_driver/ipi/direct_pes.py), one ``i-pi input.xml`` process and no socket.

Long runs go in pieces: ``run(run_dir, resume=True)`` continues from the newest of i-PI's RESTART
(written on a clean stop) and its periodic checkpoint ``sim.restart`` (what is left after a kill);
i-PI appends to its outputs and PLUMED, told it is restarting, reads back and extends the HILLS.
``set_aside`` moves a previous run out of the way instead of overwriting it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import plumed_inputs, inputs as sampling_inputs
from .plumed_kernel import find_plumed_kernel

PES_FILE = Path(__file__).parents[1] / "ipi" / "direct_pes.py"


def _write_common(run_dir: Path, structure, model: str, batch_size: int, dtype: str | None,
                  backend: str = "socket") -> str:
    import ase.io

    run_dir.mkdir(parents=True, exist_ok=True)
    atoms = ase.io.read(structure)
    (run_dir / "init.xyz").write_text(sampling_inputs.ipi_xyz(atoms))
    config = {"model": model, "template": str((run_dir / "init.xyz").resolve()), "batch_size": batch_size}
    if dtype:
        config["dtype"] = dtype
    (run_dir / "so3k_pes.json").write_text(json.dumps(config, indent=1) + "\n")
    (run_dir / "backend.json").write_text(json.dumps({"backend": backend, "model": model, "dtype": dtype}) + "\n")
    if backend == "socket":
        return sampling_inputs.socket_forcefield(f"so3k-{os.getpid()}-{run_dir.resolve().name}"[:60], batch_size)
    return sampling_inputs.direct_forcefield(str(PES_FILE), str((run_dir / "so3k_pes.json").resolve()), batch_size)


def prepare_remd_metad(run_dir: Path, structure, model: str, settings: sampling_inputs.SamplingSettings,
                       metad: plumed_inputs.MetadSettings, batch_size: int = 1, dtype: str | None = None,
                       backend: str = "socket") -> Path:
    """Write init.xyz, plumed_T{k}.dat (end-to-end METAD at each temperature) and input.xml."""
    import ase.io
    from dataclasses import replace

    forcefield = _write_common(run_dir, structure, model, batch_size, dtype, backend)
    atoms = ase.io.read(structure)
    files = []
    for k, temperature in enumerate(settings.temperatures):
        text = plumed_inputs.end_to_end_metad(atoms.numbers, atoms.positions, replace(metad, temperature=temperature),
                                              suffix=f".T{k}")
        (run_dir / f"plumed_T{k}.dat").write_text(text)
        files.append(f"plumed_T{k}.dat")
    (run_dir / "input.xml").write_text(sampling_inputs.remd_metad_xml(settings, forcefield, files))
    (run_dir / "temperatures.json").write_text(json.dumps({"temperatures_K": settings.temperatures}) + "\n")
    return run_dir / "input.xml"


def prepare_metad(run_dir: Path, structure, model: str, settings: sampling_inputs.SamplingSettings,
                  plumed_text: str, dtype: str | None = None, backend: str = "socket") -> Path:
    """Single-temperature metadynamics with the given PLUMED input."""
    forcefield = _write_common(run_dir, structure, model, 1, dtype, backend)
    (run_dir / "plumed.dat").write_text(plumed_text)
    (run_dir / "input.xml").write_text(sampling_inputs.metad_xml(settings, forcefield, "plumed.dat"))
    (run_dir / "temperatures.json").write_text(json.dumps({"temperatures_K": settings.temperatures[:1]}) + "\n")
    return run_dir / "input.xml"


def set_aside(run_dir: Path) -> Path | None:
    """Rename a non-empty run_dir to run_dir.bck.N (first free N) so a new run loses nothing; returns it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return None
    index = 0
    while (backup := run_dir.with_name(f"{run_dir.name}.bck.{index}")).exists():
        index += 1
    run_dir.rename(backup)
    return backup


def restart_step(path: Path) -> int:
    """The MD step an i-PI restart file was written at (0 when it has no <step>)."""
    found = re.search(r"<step>\s*(\d+)\s*</step>", Path(path).read_text())
    return int(found.group(1)) if found else 0


def latest_restart(run_dir: Path) -> Path | None:
    """RESTART or the checkpoint sim.restart, whichever was written at the later step; None if neither."""
    candidates = [p for p in (run_dir / "RESTART", run_dir / "sim.restart") if p.is_file()]
    return max(candidates, key=restart_step, default=None)


def _resume_input(run_dir: Path, total_steps: int | None) -> str:
    """Copy the newest restart to resume_from_step_N.xml (kept: RESTART is rewritten by the run)."""
    from ..errors import UserError

    restart = latest_restart(run_dir)
    if restart is None:
        raise UserError(f"nothing to resume in {run_dir}: neither RESTART nor the checkpoint sim.restart exists")
    step = restart_step(restart)
    text = restart.read_text()
    if total_steps is not None:
        if total_steps <= step:
            raise UserError(f"{restart} is at step {step}; ask for more total steps than that (got {total_steps})")
        text, count = re.subn(r"<total_steps>\s*\d+\s*</total_steps>", f"<total_steps>{total_steps}</total_steps>",
                              text)
        if count != 1:
            raise UserError(f"{restart} has no single <total_steps> element to change")
    name = f"resume_from_step_{step}.xml"
    (run_dir / name).write_text(text)
    return name


def run(run_dir: Path, timeout_s: float | None = None, resume: bool = False, total_steps: int | None = None) -> float:
    """Run a prepared folder with the backend it was prepared for; returns the wall time in s.

    resume: continue from the newest restart in run_dir, up to total_steps if given (MD steps,
    counted from the start of the first piece) or to the total the run was prepared with.
    """
    run_dir = Path(run_dir)
    settings = json.loads((run_dir / "backend.json").read_text())
    input_name = _resume_input(run_dir, total_steps) if resume else "input.xml"
    if settings["backend"] == "direct":
        wall = run_ipi(run_dir, timeout_s, input_name)
    else:
        find_plumed_kernel()
        command = [sys.executable, "-m", "so3k_driver.cli", "run", input_name, "--model", settings["model"],
                   "--workdir", ".", "--quiet", "--timeout", "600"]
        if settings.get("dtype"):
            command += ["--dtype", settings["dtype"]]
        wall = _run_logged(command, run_dir, "so3k_run.log", timeout_s, os.environ)
    _check_finished(run_dir, input_name)
    return wall


def _check_finished(run_dir: Path, input_name: str) -> None:
    """i-PI also exits with status 0 when it stops early (a soft exit after an error in a force
    thread): compare the step it reached with the steps asked for."""
    from ..errors import UserError

    wanted = re.search(r"<total_steps>\s*(\d+)\s*</total_steps>", (run_dir / input_name).read_text())
    restart = latest_restart(run_dir)
    if wanted is None or restart is None:
        return
    reached = restart_step(restart)
    if reached < int(wanted.group(1)):
        log = run_dir / "ipi.log"
        reasons = [line.strip() for line in log.read_text().splitlines() if "SOFTEXIT" in line or "Error" in line][-3:] \
            if log.exists() else []
        raise UserError(f"i-PI stopped at step {reached} of {wanted.group(1)} in {run_dir}"
                        + (": " + " | ".join(reasons) if reasons else "")
                        + f"; {restart.name} is kept: continue with --resume once the cause is fixed")


def run_ipi(run_dir: Path, timeout_s: float | None = None, input_name: str = "input.xml") -> float:
    """Run ``i-pi INPUT`` in run_dir (log in run_dir/ipi.log); returns the wall time in s."""
    kernel = find_plumed_kernel()
    env = dict(os.environ, PLUMED_KERNEL=str(kernel))
    ipi = shutil.which("i-pi", path=str(Path(sys.executable).parent)) or shutil.which("i-pi")
    if ipi is None:
        from ..errors import UserError

        raise UserError("i-pi not found; install it with `pip install ipi`")
    return _run_logged([sys.executable, ipi, input_name], run_dir, "ipi.log", timeout_s, env)


def _run_logged(command, run_dir: Path, log_name: str, timeout_s, env) -> float:
    for stale in ("RESTART", "EXIT"):
        (run_dir / stale).unlink(missing_ok=True)
    start = time.perf_counter()
    with open(run_dir / log_name, "a") as log:  # appended: a resumed run keeps the earlier pieces' log
        process = subprocess.Popen(command, cwd=run_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            code = process.wait(timeout=timeout_s)
        except BaseException:
            process.terminate()  # so3k run / i-PI stop their children and write RESTART on SIGTERM
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise
    if code != 0:
        from ..errors import UserError

        tail = (run_dir / log_name).read_text()[-2000:]
        restart = latest_restart(run_dir)
        kept = (f"the restart {restart.name} (step {restart_step(restart)}) is kept: continue with --resume"
                if restart else "no restart was written")
        label = "so3k run" if "so3k_driver.cli" in command else "i-pi"
        if code in (130, -2, -15, 143):  # interrupted (Ctrl-C / SIGTERM), not failed
            raise UserError(f"{label} was stopped in {run_dir}; {kept}")
        raise UserError(f"{label} failed with status {code} in {run_dir}; {kept}. End of {log_name}:\n{tail}")
    return time.perf_counter() - start
