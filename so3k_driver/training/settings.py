"""Training settings: one dataclass, read from YAML or TOML, overridable from the command line.

Units: energies eV after loading (``energy_unit`` declares the file's unit; forces are taken as
``energy_unit``/Å), lengths Å, times seconds. The ``model`` table overrides
:class:`so3k_driver.model.config.ModelConfig` fields (species are taken from the data).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class TrainSettings:
    data: str = ""
    energy_unit: str = "eV"            # unit of energies in the file (eV, kcal/mol, ...), forces per Å
    energy_key: str | None = None      # extxyz info key (default: calculator / 'energy')
    forces_key: str | None = None      # extxyz array key (default: calculator / 'forces')
    num_train: int = 100
    num_valid: int | None = None       # None: all remaining structures
    split_seed: int = 0
    seed: int = 0                      # parameter init and batch order
    model: dict = dataclasses.field(default_factory=dict)
    init_from: str | None = None       # fine-tune: start from this MODEL spec (e.g. so3lr:DIR); ignores 'model'
    train_last_layers: int | None = None  # fine-tune only the last N message-passing layers + readouts (None: all)
    batch_size: int = 4
    epochs: int = 100
    max_steps: int | None = None       # stop after this many optimiser steps (None: no limit)
    time_limit_s: float | None = None  # stop after this wall time, at an epoch end (None: no limit)
    optimizer: str = "amsgrad"         # amsgrad | adam | adamw
    learning_rate: float = 1e-3
    warmup_steps: int = 0
    decay_steps: int = 10000           # exponential decay: lr * decay_rate ** (step / decay_steps)
    decay_rate: float = 0.1
    clip_norm: float | None = 10.0     # global gradient-norm clipping (None: off)
    energy_weight: float = 0.01        # loss = w_E * MSE(E) [eV²] + w_F * MSE(F) [(eV/Å)²] + w_S * MSE(stress)
    force_weight: float = 1.0
    stress_weight: float = 0.0         # w_S, per (eV/Å³)²; > 0 trains on the stress labels of periodic data
    charge_weight: float = 0.0         # per e²: distil the teacher's partial charges (extxyz 'partial_charges')
    hirshfeld_weight: float = 0.0      # distil the teacher's Hirshfeld ratios (extxyz 'hirshfeld_ratios')
    lr_cutoff: float | None = 12.0     # Å, long-range pairs of SO3LR-type models (None: all pairs, gas phase)
    dispersion_damping: float = 2.0    # Å, SO3LR's dispersion switch-off width below lr_cutoff
    ema_decay: float = 0.99            # exponential moving average of the weights (0: off)
    patience: int | None = 20          # early stopping: epochs without validation improvement
    eval_every: int = 1                # epochs between validations
    checkpoint_every: int = 1          # epochs between orbax checkpoints
    output_dir: str = "so3k_training"
    export: str | None = None          # .so3k path (default: OUTPUT_DIR/model.so3k)
    resume: bool = True                # continue from the latest checkpoint in OUTPUT_DIR
    progress: bool = True
    plot: bool = True

    @property
    def target_weights(self) -> dict[str, float]:
        """Loss weights of the per-atom targets (names as in the data), zero ones included."""
        return {"partial_charges": self.charge_weight, "hirshfeld_ratios": self.hirshfeld_weight}

    def export_path(self) -> Path:
        return Path(self.export) if self.export else Path(self.output_dir) / "model.so3k"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings: {unknown} (known: {sorted(known)})")
        settings = cls(**d)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.data:
            raise ValueError("no training data given (set 'data')")
        if self.optimizer not in ("amsgrad", "adam", "adamw"):
            raise ValueError(f"optimizer must be amsgrad, adam or adamw, got {self.optimizer!r}")
        if self.batch_size < 1 or self.num_train < 1 or self.epochs < 0:
            raise ValueError("batch_size and num_train must be >= 1 and epochs >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")
        weights = {"energy_weight": self.energy_weight, "force_weight": self.force_weight,
                   "stress_weight": self.stress_weight, "charge_weight": self.charge_weight,
                   "hirshfeld_weight": self.hirshfeld_weight}
        negative = {k: v for k, v in weights.items() if v < 0}
        if negative:
            raise ValueError(f"loss weights must be >= 0, got {negative}")
        if self.train_last_layers is not None and self.train_last_layers < 0:
            raise ValueError(f"train_last_layers must be >= 0 (or None for all), got {self.train_last_layers}")
        if self.init_from and self.model:
            raise ValueError("give either 'init_from' (fine-tune a model as it is) or 'model' (a new architecture), not both")
        if self.lr_cutoff is not None and self.lr_cutoff <= self.dispersion_damping:
            raise ValueError(f"lr_cutoff ({self.lr_cutoff} Å) must exceed dispersion_damping ({self.dispersion_damping} Å)")


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) file, or JSON (.json), into a dict."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text) or {}


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (value parsed as YAML; ``model.key=value`` for model fields)."""
    import yaml

    d = {**d, "model": dict(d.get("model") or {})}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        parsed = yaml.safe_load(value)
        if key.startswith("model."):
            d["model"][key[len("model."):]] = parsed
        else:
            d[key] = parsed
    return d
