"""Prepare and run an i-PI + PLUMED sampling job in a folder (metadynamics or REMD + metadynamics).

Two backends: ``socket`` (default) writes an ``<ffsocket>`` input run by ``so3k run`` (i-PI plus
``so3k serve`` drivers); ``direct`` runs the model inside i-PI (``<ffdirect>`` with
so3k_driver/ipi_direct_pes.py), one ``i-pi input.xml`` process and no socket.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import plumed_inputs, sampling_inputs
from .plumed_kernel import find_plumed_kernel

PES_FILE = Path(__file__).with_name("ipi_direct_pes.py")


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


def run(run_dir: Path, timeout_s: float | None = None) -> float:
    """Run a prepared folder with the backend it was prepared for; returns the wall time in s."""
    settings = json.loads((run_dir / "backend.json").read_text())
    if settings["backend"] == "direct":
        return run_ipi(run_dir, timeout_s)
    find_plumed_kernel()
    command = [sys.executable, "-m", "so3k_driver.cli", "run", "input.xml", "--model", settings["model"],
               "--workdir", ".", "--quiet", "--timeout", "600"]
    if settings.get("dtype"):
        command += ["--dtype", settings["dtype"]]
    return _run_logged(command, run_dir, "so3k_run.log", timeout_s, os.environ)


def run_ipi(run_dir: Path, timeout_s: float | None = None) -> float:
    """Run ``i-pi input.xml`` in run_dir (log in run_dir/ipi.log); returns the wall time in s."""
    kernel = find_plumed_kernel()
    env = dict(os.environ, PLUMED_KERNEL=str(kernel))
    ipi = shutil.which("i-pi", path=str(Path(sys.executable).parent)) or shutil.which("i-pi")
    if ipi is None:
        from .errors import UserError

        raise UserError("i-pi not found; install it with `pip install ipi`")
    return _run_logged([sys.executable, ipi, "input.xml"], run_dir, "ipi.log", timeout_s, env)


def _run_logged(command, run_dir: Path, log_name: str, timeout_s, env) -> float:
    for stale in ("RESTART", "EXIT"):
        (run_dir / stale).unlink(missing_ok=True)
    start = time.perf_counter()
    with open(run_dir / log_name, "w") as log:
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
        tail = (run_dir / log_name).read_text()[-2000:]
        raise RuntimeError(f"{command[1]} failed with status {code} in {run_dir}:\n{tail}")
    return time.perf_counter() - start
