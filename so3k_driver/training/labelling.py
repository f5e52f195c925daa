"""Sample configurations with Langevin MD driven by GFN2-xTB (``tblite``) and label them.

The workflow a user needs for a new molecule: one starting structure -> MD at several
temperatures -> frames with GFN2-xTB energies (eV) and forces (eV/Å) in an extxyz file that
``so3k train`` reads directly. ``tblite`` is imported only when labelling runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..progress import Progress


@dataclasses.dataclass
class LabelSettings:
    """temperatures in K, timestep in fs, friction in 1/fs; steps per temperature."""

    temperatures: tuple[float, ...] = (300.0, 600.0, 900.0, 1200.0)
    frames_per_temperature: int = 100
    sample_every: int = 20
    equilibration_steps: int = 200
    timestep_fs: float = 0.5
    friction_per_fs: float = 0.01
    method: str = "GFN2-xTB"
    seed: int = 0


def xtb_calculator(method: str = "GFN2-xTB", charge: float = 0.0):
    try:
        from tblite.ase import TBLite
    except ImportError:
        raise ImportError("labelling needs tblite: pip install tblite") from None
    return TBLite(method=method, charge=charge, verbosity=0)


def sample_and_label(atoms, output: str | Path, settings: LabelSettings, calculator=None, log=print) -> int:
    """Run Langevin MD at each temperature, write sampled labelled frames to ``output`` (extxyz).

    Returns the number of frames written. Each frame's info holds ``temperature_K``, ``md_step``
    and the method; energies are eV, forces eV/Å.
    """
    import ase.io
    from ase import units
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    output = Path(output)
    output.unlink(missing_ok=True)
    written = 0
    steps = settings.equilibration_steps + settings.frames_per_temperature * settings.sample_every
    for index, temperature in enumerate(settings.temperatures):
        system = atoms.copy()
        system.calc = calculator or xtb_calculator(settings.method)
        rng = np.random.default_rng([settings.seed, index])
        MaxwellBoltzmannDistribution(system, temperature_K=temperature, rng=rng)
        Stationary(system)
        ZeroRotation(system)
        dynamics = Langevin(system, settings.timestep_fs * units.fs, temperature_K=temperature,
                            friction=settings.friction_per_fs / units.fs, rng=rng)
        with Progress(steps, description=f"{temperature:.0f} K", unit="step") as bar:
            for step in range(1, steps + 1):
                dynamics.run(1)
                sampled = step > settings.equilibration_steps and (step - settings.equilibration_steps) % settings.sample_every == 0
                if sampled:
                    frame = system.copy()
                    frame.calc = SinglePointCalculator(frame, energy=system.get_potential_energy(),
                                                       forces=system.get_forces())
                    frame.info.update(temperature_K=temperature, md_step=step, method=settings.method)
                    ase.io.write(output, frame, format="extxyz", append=True)
                    written += 1
                bar.update(step, T_K=system.get_temperature(), frames=written)
    log(f"wrote {written} labelled frames to {output} (energy eV, forces eV/Å, {settings.method})")
    return written
