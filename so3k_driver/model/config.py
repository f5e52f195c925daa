"""Model hyperparameters: one frozen dataclass shared by the model, the file formats and training.

Defaults are the SO3krates paper configuration (Frank et al., Nat. Commun. 2024): F = 132 features,
3 layers, 4 heads, degrees {1, 2, 3}, 5 Å cosine cutoff, 32 PhysNet radial functions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

RADIAL_BASES = ("physnet", "bernstein", "gaussian", "bessel")
CUTOFF_FUNCTIONS = ("cosine", "phys", "polynomial", "exponential")
MESSAGE_NORMALIZATIONS = ("sqrt_num_features", "avg_num_neighbors")
ACTIVATIONS = ("silu", "identity", "tanh", "gelu")
MAX_ATOMIC_NUMBER = 118


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of an SO3krates (or SO3LR) model.

    Lengths in Å, energies in eV.
    """

    num_layers: int = 3
    num_features: int = 132
    num_heads: int = 4
    degrees: tuple[int, ...] = (1, 2, 3)
    radial_basis: str = "physnet"
    num_radial: int = 32
    cutoff_fn: str = "cosine"
    cutoff_polynomial_degree: int = 6
    cutoff: float = 5.0
    residual_mlp_1: bool = False
    residual_mlp_2: bool = False
    layer_norm_1: bool = False
    layer_norm_2: bool = False
    message_normalization: str = "sqrt_num_features"
    avg_num_neighbors: float | None = None
    qk_nonlinearity: str = "identity"
    activation: str = "silu"
    energy_regression_dim: int = 132
    energy_activation: str = "silu"
    learn_atomic_scales: bool = False
    learn_atomic_shifts: bool = False
    # Elements the model was trained on (atomic numbers). Others are refused at evaluation.
    species: tuple[int, ...] = tuple(range(1, MAX_ATOMIC_NUMBER + 1))
    # SO3LR additions (spec sections 2.2 and 2.8).
    charge_embedding: bool = False
    spin_embedding: bool = False
    zbl_repulsion: bool = False
    electrostatics: bool = False
    dispersion: bool = False
    electrostatic_sigma: float = 4.0
    dispersion_scale: float = 1.2

    def __post_init__(self):
        object.__setattr__(self, "degrees", tuple(int(d) for d in self.degrees))
        object.__setattr__(self, "species", tuple(sorted(int(z) for z in self.species)))
        self.validate()

    def validate(self) -> None:
        problems = []
        if self.radial_basis not in RADIAL_BASES:
            problems.append(f"radial_basis {self.radial_basis!r} not in {RADIAL_BASES}")
        if self.cutoff_fn not in CUTOFF_FUNCTIONS:
            problems.append(f"cutoff_fn {self.cutoff_fn!r} not in {CUTOFF_FUNCTIONS}")
        if self.message_normalization not in MESSAGE_NORMALIZATIONS:
            problems.append(f"message_normalization {self.message_normalization!r} not in {MESSAGE_NORMALIZATIONS}")
        if self.message_normalization == "avg_num_neighbors" and not self.avg_num_neighbors:
            problems.append("message_normalization 'avg_num_neighbors' needs avg_num_neighbors > 0")
        for name in ("activation", "energy_activation", "qk_nonlinearity"):
            if getattr(self, name) not in ACTIVATIONS:
                problems.append(f"{name} {getattr(self, name)!r} not in {ACTIVATIONS}")
        if not self.degrees or min(self.degrees) < 1 or max(self.degrees) > 4:
            problems.append(f"degrees must be a non-empty subset of 1..4, got {self.degrees}")
        if self.num_features % self.num_heads:
            problems.append(f"num_features {self.num_features} not divisible by num_heads {self.num_heads}")
        if self.num_features % len(self.degrees):
            problems.append(f"num_features {self.num_features} not divisible by the number of degrees {len(self.degrees)}")
        if self.cutoff <= 0:
            problems.append(f"cutoff must be positive, got {self.cutoff}")
        if not self.species or min(self.species) < 1 or max(self.species) > MAX_ATOMIC_NUMBER:
            problems.append("species must be atomic numbers in 1..118")
        if problems:
            raise ValueError("invalid model configuration: " + "; ".join(problems))

    @property
    def is_so3lr(self) -> bool:
        return self.zbl_repulsion or self.electrostatics or self.dispersion or self.charge_embedding

    @property
    def needs_long_range_pairs(self) -> bool:
        return self.electrostatics or self.dispersion

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["degrees"] = list(self.degrees)
        d["species"] = list(self.species)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model configuration keys: {unknown}")
        return cls(**d)
