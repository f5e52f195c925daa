"""Settings of the batched minimisers (FIRE, L-BFGS) of :mod:`so3k_driver.evaluation.minimise`: plain
dataclasses without JAX, so that the command line can build its options and check values without
loading the model code. The algorithms and units are described in :mod:`~so3k_driver.evaluation.minimise`.

Units: fmax in eV/Å; max_step, skin and min_distance in Å; alpha in eV/Å²; energy_rise in eV;
the FIRE time steps in ASE's units (Å·sqrt(amu/eV) with unit masses).
"""

from __future__ import annotations

import dataclasses

from ..errors import UserError

# Measured on the project's 2-core machine with Ac-Ala3-NHMe and the bundled student
# (docs/results/ala3_minima/README.md, "Throughput with the student"): 8 slots per call beat 4 (579 against
# 534 frames/min on 804 REMD frames), while 12 or 16 slots fall off a cliff (1.4-1.6 ms per slot
# evaluation against 1.05-1.2; on one core too, so not threading: most likely a call's per-pair arrays
# outgrow the caches). A 0.2 Å skin (lists of 5.2 Å for a 5 Å cutoff, rebuilt every ~40 steps) beats
# both a 0.5 Å skin (more pairs in every evaluation) and exact lists rebuilt on the host before every step.
DEFAULT_STRUCTURES_PER_CALL = 8
DEFAULT_SKIN = 0.2
PRECONDITIONERS = ("auto", "lindh", "none")
# The Lindh preconditioner is a dense (3N)^2 matrix per structure slot (1000 atoms: 72 MB per slot in float64).
MAX_PRECONDITIONED_ATOMS = 1000


def _require_positive(values: dict) -> None:
    """UserError naming the first of ``values`` (name: value) that is not > 0, and its value."""
    for name, value in values.items():
        if not value > 0:
            raise UserError(f"{name} must be > 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class StoppingSettings:
    """What every optimiser shares: converged when max |F| < fmax (eV/Å), at most max_steps steps,
    no atom moved more than max_step (Å) per step, stopped as broken when two atoms come closer than
    min_distance (Å); Verlet skin (Å), steps_per_call and structures_per_call size the jitted calls."""

    fmax: float = 0.05
    max_steps: int = 2000
    max_step: float = 0.2
    min_distance: float = 0.5
    skin: float = DEFAULT_SKIN
    steps_per_call: int = 50
    structures_per_call: int = DEFAULT_STRUCTURES_PER_CALL

    def __post_init__(self):
        positive = {"fmax (eV/Å)": self.fmax, "max_step (Å)": self.max_step, "max_steps": self.max_steps,
                    "steps_per_call": self.steps_per_call, "structures_per_call": self.structures_per_call}
        _require_positive(positive)
        if not self.skin >= 0:
            raise UserError(f"skin must be >= 0 Å, got {self.skin!r}")
        if not self.min_distance >= 0:
            raise UserError(f"min_distance must be >= 0 Å, got {self.min_distance!r}")


@dataclasses.dataclass(frozen=True)
class FireSettings(StoppingSettings):
    """FIRE parameters (ASE's) besides the stopping rule; dt in ASE time units."""

    dt_start: float = 0.1
    dt_max: float = 1.0
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.1
    f_alpha: float = 0.99

    name = "fire"

    def __post_init__(self):
        super().__post_init__()
        _require_positive({"dt_start": self.dt_start, "dt_max": self.dt_max})


@dataclasses.dataclass(frozen=True)
class LbfgsSettings(StoppingSettings):
    """L-BFGS parameters besides the stopping rule (module docstring of minimise.py): preconditioner:
    'lindh' starts each structure from Lindh's model Hessian (evaluation.model_hessian), 'none' from
    alpha·1 (alpha in eV/Å², ASE's default 70), 'auto' (default) Lindh up to MAX_PRECONDITIONED_ATOMS atoms;
    memory: stored (s, y) pairs; energy_rise (eV): a rise over one step larger than this clears the
    structure's history."""

    memory: int = 20
    alpha: float = 70.0
    energy_rise: float = 0.01
    preconditioner: str = "auto"

    name = "lbfgs"

    def uses_lindh(self, num_atoms: int) -> bool:
        """Whether structures of ``num_atoms`` atoms start from Lindh's model Hessian (else 1/alpha)."""
        if self.preconditioner == "auto":
            return num_atoms <= MAX_PRECONDITIONED_ATOMS
        if self.preconditioner == "lindh" and num_atoms > MAX_PRECONDITIONED_ATOMS:
            raise UserError(f"the Lindh preconditioner is a dense 3N x 3N matrix per structure and allows at most "
                            f"{MAX_PRECONDITIONED_ATOMS} atoms, got {num_atoms}: use preconditioner none")
        return self.preconditioner == "lindh"

    def __post_init__(self):
        super().__post_init__()
        if self.preconditioner not in PRECONDITIONERS:
            raise UserError(f"preconditioner must be one of {', '.join(PRECONDITIONERS)}, got {self.preconditioner!r}")
        _require_positive({"memory": self.memory, "alpha (eV/Å²)": self.alpha})
        if isinstance(self.memory, bool) or int(self.memory) != self.memory:
            raise UserError(f"memory must be a whole number of (s, y) pairs, got {self.memory!r}")
        if not self.energy_rise >= 0:
            raise UserError(f"energy_rise must be >= 0 eV, got {self.energy_rise!r}")


OPTIMIZERS = {"fire": FireSettings, "lbfgs": LbfgsSettings}
# so3k minima's default (docs/results/ala3_minima/README.md: same minima as ASE's L-BFGS, fewer steps than FIRE).
DEFAULT_OPTIMIZER = "lbfgs"


def optimizer_settings(optimizer: str, **values):
    """The settings of optimiser ``optimizer`` ('fire' or 'lbfgs') with ``values`` (fields of its class)."""
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[optimizer](**values)
