"""Sample configurations and label them for training: with GFN2-xTB or with any model (a teacher).

The workflow a user needs for a new molecule or a new student model:
starting structure(s) -> MD at several temperatures -> frames with energies (eV) and forces (eV/Å) in
an extxyz file that ``so3k train`` reads directly.

- Sampling: with an xTB method, Langevin MD in ASE (no model needed, the way to start from nothing);
  with a MODEL spec, an i-PI study per starting structure (``sampling.run``: MD at one temperature or
  replica exchange at several, optionally with metadynamics), whose replica trajectories are read back.
- Labelling: with an xTB method, frame by frame (tblite); with a MODEL spec (for example
  ``so3lr:DIR`` with all pairs), in batches of same-size structures through ``Potential``.

``tblite`` is imported only when xTB runs.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..progress import Progress
from .data import ATOM_TARGETS

XTB_METHODS = ("GFN2-xTB", "GFN1-xTB", "IPEA1-xTB")


def is_xtb(spec: str) -> bool:
    """Whether a labeller/sampler name is a tblite method rather than a MODEL spec."""
    return spec.lower() in {m.lower() for m in XTB_METHODS}


@dataclasses.dataclass(frozen=True)
class LabelSettings:
    """temperatures in K, timestep in fs, friction in 1/fs (xTB Langevin); per temperature:
    ``equilibration_steps`` dropped, then ``frames_per_temperature`` frames every ``sample_every`` steps."""

    temperatures: tuple[float, ...] = (300.0, 600.0, 900.0, 1200.0)
    frames_per_temperature: int = 100
    sample_every: int = 20
    equilibration_steps: int = 200
    timestep_fs: float = 0.5
    friction_per_fs: float = 0.01
    method: str = "GFN2-xTB"
    seed: int = 0

    def __post_init__(self):
        if self.frames_per_temperature < 1 or self.sample_every < 1 or self.timestep_fs <= 0:
            raise UserError(f"frames per temperature ({self.frames_per_temperature}) and sample-every "
                            f"({self.sample_every}) must be >= 1 and the timestep ({self.timestep_fs} fs) > 0")
        if self.equilibration_steps < 0:
            raise UserError(f"equilibration steps must be >= 0, got {self.equilibration_steps}")

    @property
    def steps(self) -> int:
        """MD steps per temperature."""
        return self.equilibration_steps + self.frames_per_temperature * self.sample_every


@dataclasses.dataclass(frozen=True)
class ModelLabeller:
    """A MODEL spec as labeller, with its run-time options: dtype, lr_cutoff (Å; None = all pairs, gas
    phase), dispersion_damping (Å), total_charge (e), unpaired_electrons; batch_size structures per call."""

    spec: str
    dtype: str = "float64"
    lr_cutoff: float | None = None
    dispersion_damping: float = 2.0
    total_charge: float = 0.0
    unpaired_electrons: float = 0.0
    batch_size: int = 16


def xtb_calculator(method: str = "GFN2-xTB", charge: float = 0.0):
    try:
        from tblite.ase import TBLite
    except ImportError:
        raise UserError("xTB labelling or sampling needs tblite: pip install tblite") from None
    return TBLite(method=method, charge=charge, verbosity=0)


# --------------------------------------------------------------------------------------------------
# Labelling


def label_with_model(frames: list, labeller: ModelLabeller, quiet: bool = False) -> list:
    """Copies of ``frames`` (ase.Atoms) carrying the labeller's energy (eV), forces (eV/Å) and, for
    periodic frames, stress (eV/Å^3); same-size structures are evaluated together, ``batch_size`` at a time.
    A SO3LR-type labeller also writes its partial charges (e) and Hirshfeld ratios as per-atom arrays
    ``partial_charges`` and ``hirshfeld_ratios`` (targets for ``charge_weight``/``hirshfeld_weight``)."""
    from ..evaluation.frames import predict_frames
    from ..evaluation.potential import Potential

    potential = Potential.load(labeller.spec, dtype=labeller.dtype, lr_cutoff=labeller.lr_cutoff,
                               dispersion_damping=labeller.dispersion_damping)
    labelled = predict_frames(potential, frames, labeller.batch_size, f"labelling with {labeller.spec}", quiet,
                              extras={output: target for target, output in ATOM_TARGETS.items()},
                              total_charge=labeller.total_charge, unpaired_electrons=labeller.unpaired_electrons)
    for atoms in labelled:
        atoms.info["labeller"] = labeller.spec
    return labelled


def label_with_xtb(frames: list, method: str, charge: float = 0.0, quiet: bool = False) -> list:
    """Copies of ``frames`` labelled by a tblite method (energies eV, forces eV/Å), one at a time."""
    from ase.calculators.singlepoint import SinglePointCalculator

    calculator = xtb_calculator(method, charge)
    labelled = []
    with Progress(len(frames), description=f"labelling with {method}", unit="frame",
                  stream=io.StringIO() if quiet else None) as bar:
        for index, frame in enumerate(frames):
            atoms = frame.copy()
            atoms.calc = calculator
            values = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
            atoms.calc = SinglePointCalculator(atoms, **values)
            atoms.info["labeller"] = method
            labelled.append(atoms)
            bar.update(index + 1)
    return labelled


# --------------------------------------------------------------------------------------------------
# Sampling


def sample_with_xtb(atoms, settings: LabelSettings) -> list:
    """Langevin MD with the xTB method at each temperature; the sampled frames (unlabelled copies,
    ``info``: temperature_K, md_step)."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md import velocitydistribution
    from ase.md.langevin import Langevin

    # ASE 3.29 renamed the Maxwell-Boltzmann initialiser and deprecated Langevin's fixcm (it does not sample
    # NVT exactly); FixCom keeps the centre of mass in place instead. ase >= 3.23 is supported.
    thermalize = getattr(velocitydistribution, "thermalize_momenta", None) or (
        lambda system, temperature_K, rng: velocitydistribution.MaxwellBoltzmannDistribution(
            system, temperature_K=temperature_K, rng=rng))
    frames = []
    for index, temperature in enumerate(settings.temperatures):
        system = atoms.copy()
        system.calc = xtb_calculator(settings.method)
        system.set_constraint(FixCom())
        rng = np.random.default_rng([settings.seed, index])
        thermalize(system, temperature_K=temperature, rng=rng)
        velocitydistribution.Stationary(system)
        velocitydistribution.ZeroRotation(system)
        dynamics = Langevin(system, settings.timestep_fs * units.fs, temperature_K=temperature,
                            friction=settings.friction_per_fs / units.fs, fixcm=False, rng=rng)
        with Progress(settings.steps, description=f"xTB MD {temperature:.0f} K", unit="step") as bar:
            for step in range(1, settings.steps + 1):
                dynamics.run(1)
                after = step - settings.equilibration_steps
                if after > 0 and after % settings.sample_every == 0:
                    frame = system.copy()
                    frame.calc = None
                    frame.set_constraint()
                    frame.info.update(temperature_K=temperature, md_step=step)
                    frames.append(frame)
                bar.update(step, T_K=system.get_temperature(), frames=len(frames))
    return frames


def sample_with_model(structures: list[str], sampler: str, settings: LabelSettings, workdir: Path,
                      metad_cv: str = "none", dtype: str | None = None, quiet: bool = False) -> list:
    """One i-PI study per starting structure with the model ``sampler`` (replica exchange when there are
    several temperatures, optional metadynamics on ``metad_cv``), run in ``workdir/sample_k``; returns
    the frames of every replica after equilibration (``info``: temperature_K, md_step, source)."""
    import ase.io
    from ase import Atoms

    from ..evaluation.frames import read_structure_frames
    from ..sampling.analysis.ipi_outputs import find_systems, read_xyz_frames
    from ..sampling.run import prepare, run_study
    from ..sampling.settings import MetadSettings, StudySettings

    frames = []
    for k, structure in enumerate(structures):
        folder = Path(workdir) / f"sample_{k}"
        start = read_structure_frames(structure, index=0)[0]
        start = Atoms(numbers=start.numbers, positions=start.positions)
        # every replica starts from INPUT's first structure (a study would spread them over its frames)
        first = Path(workdir) / f"start_{k}.xyz"
        first.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(first, start, format="extxyz")
        study = StudySettings(structure=str(first.resolve()), model=sampler,
                              temperatures=settings.temperatures, steps=settings.steps,
                              timestep_fs=settings.timestep_fs, output_stride=settings.sample_every,
                              metad=MetadSettings(cv=metad_cv), dtype=dtype, seed=settings.seed + k)
        prepare(folder, study)
        run_study(folder, quiet=quiet)
        for _, trajectory in find_systems(folder):
            _, positions = read_xyz_frames(trajectory)
            temperature = _temperature_of(trajectory.name, settings.temperatures)
            for f, frame in enumerate(positions):
                step = f * settings.sample_every
                if step <= settings.equilibration_steps:
                    continue
                atoms = Atoms(numbers=start.numbers, positions=frame)
                atoms.info.update(temperature_K=temperature, md_step=step, source=str(structure))
                frames.append(atoms)
    return frames


def _temperature_of(name: str, temperatures) -> float:
    """REMD trajectories are named 'T-k_<prefix>...': the k-th temperature; a single system: the only one."""
    if name.startswith("T-"):
        return float(temperatures[int(name[2:].split("_")[0])])
    return float(temperatures[0])


def write_frames(frames: list, output: str | Path) -> Path:
    """Write labelled frames as extxyz (energy eV, forces eV/Å; stress eV/Å^3 where present)."""
    from ..evaluation.frames import write_extxyz

    if not frames:
        raise UserError("no frames to write: the sampling produced none (more steps, fewer equilibration steps?)")
    return write_extxyz(frames, output)
