"""The training loop: padded batches, optax, EMA weights, validation, early stopping, orbax
checkpoints with exact resume, a JSON-lines metrics log, a learning-curve plot and model export.

Energies are trained as residuals after the per-element least-squares shifts (computed on the host
in float64), and the shifts are added to ``observables_0/energy_offset`` at export. Units: eV, eV/Å.
Resume: batch order depends only on (seed, epoch) and checkpoints are taken at epoch ends, so a
resumed run repeats the uninterrupted one step for step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import signal
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..evaluation import xla_options
from ..evaluation.frames import LR_CUTOFF_INFO_KEY
from ..model.config import ModelConfig
from ..model.energy import EnergyModel
from ..model.forces import initial_parameters
from ..progress import Progress
from .batching import Capacities, PairCache, batch_order, make_batch
from .checkpoints import Checkpoints
from .data import (ATOM_TARGETS, MIXED, Dataset, fit_energy_shifts, load_dataset, resolve_lr_cutoff, split_indices,
                   write_extxyz)
from .evaluation import atom_target_metrics, error_metrics, format_metrics
from .loss import loss_and_metrics, predict
from .optimizer import learning_rate_schedule, make_optimizer, trainable_mask
from .settings import TrainSettings

DEFAULT_SMALL_MODEL = {"num_layers": 2, "num_features": 48, "num_heads": 4, "energy_regression_dim": 48}


@dataclasses.dataclass
class Prepared:
    config: ModelConfig
    train: Dataset
    valid: Dataset
    shifts: np.ndarray  # (119,) eV per element
    train_pairs: PairCache
    valid_pairs: PairCache
    capacities: Capacities
    initial_params: dict | None = None  # fine-tuning: the starting model's parameters


def prepare(s: TrainSettings) -> Prepared:
    """Load data (converted to eV), split, fit shifts, build pair lists and capacities.

    Fine-tuning (``init_from``): the configuration and parameters are the starting model's, and the
    per-element shifts are fitted to what it gets wrong (E_data - E_model), so a model already on the
    data's energy reference keeps its offsets and one on another reference is moved onto it."""
    data = load_dataset(s.data, s.energy_unit, s.energy_key, s.forces_key)
    train_idx, valid_idx = split_indices(len(data), s.num_train, s.num_valid, s.split_seed)
    train, valid = data.subset(train_idx), data.subset(valid_idx)
    initial_params = None
    if s.init_from:
        config, initial_params = _starting_model(s, data)
    else:
        config = ModelConfig.from_dict({**s.model, "species": list(data.species), "learn_atomic_shifts": True})
    if config.needs_long_range_pairs:
        _check_labels_lr_cutoff(s, data)
    shifts = _fine_tuning_shifts(s, config, initial_params, train) if s.init_from else fit_energy_shifts(train)
    train_pairs, valid_pairs = (PairCache.build(part, config.cutoff, config.needs_long_range_pairs, s.lr_cutoff)
                                for part in (train, valid))
    max_pairs = max(train_pairs.max_pairs, valid_pairs.max_pairs if len(valid) else 0)
    max_long = max(train_pairs.max_long_range_pairs, valid_pairs.max_long_range_pairs if len(valid) else 0)
    capacities = Capacities.for_data(s.batch_size, data.max_atoms, max_pairs, max_long)
    return Prepared(config, train, valid, shifts, train_pairs, valid_pairs, capacities, initial_params)


def _check_labels_lr_cutoff(s: TrainSettings, data: Dataset) -> None:
    """Refuse to train an SO3LR-type model with another long-range cutoff than its labels were made
    with: the energies would differ by the long-range terms in between (~4 eV for SO3LR on
    Ac-Ala15-NHMe between 12 Å and all pairs), and the model would learn the difference; refuse frames
    that record different ones for the same reason."""
    if data.labels_lr_cutoff == MIXED:
        raise ValueError(f"{data.source}: its frames record different long-range cutoffs ({LR_CUTOFF_INFO_KEY}); "
                         "a model trained on them would learn the long-range terms in between: relabel them "
                         "with one setting")
    _, warning = resolve_lr_cutoff(s.lr_cutoff, data)
    if warning:
        setting = "null" if data.labels_lr_cutoff is None else f"{data.labels_lr_cutoff:g}"
        raise ValueError(f"{warning}; train with lr_cutoff: {setting} (e.g. --set lr_cutoff={setting}) to match")


def _starting_model(s: TrainSettings, data: Dataset) -> tuple[ModelConfig, dict]:
    from ..io.model_files import load_model

    config, params, header = load_model(s.init_from)
    if header.get("committee_size"):
        raise ValueError(f"init_from {s.init_from} is a committee; fine-tune its members one by one")
    missing = sorted(set(data.species) - set(config.species))
    if missing:
        raise ValueError(f"{s.data} has elements {missing} (atomic numbers) that {s.init_from} does not know")
    if "energy_offset" not in params["params"].get("observables_0", {}):
        raise ValueError(f"{s.init_from} has no per-element energy offsets (learn_atomic_shifts): it cannot be "
                         "moved onto the data's energy reference")
    return config, jax.tree.map(lambda a: np.asarray(a, np.float32), params)


SHIFTS_FILE = "fine_tuning_shifts.json"


def _fine_tuning_shifts(s: TrainSettings, config: ModelConfig, params: dict, train: Dataset) -> np.ndarray:
    """Per-element shifts (eV) fitted to E_data - E_starting_model on ``train``, kept in
    OUTPUT_DIR/fine_tuning_shifts.json with what they depend on (starting model, training energies), so
    that a resumed fine-tune reads them back instead of evaluating the starting model again: ~5 minutes
    for 3920 Ac-Ala15-NHMe frames on 2 CPU cores, and the exported model needs the same shifts."""
    path = Path(s.output_dir) / SHIFTS_FILE
    depends_on = {"init_from": str(s.init_from), "lr_cutoff": s.lr_cutoff, "dispersion_damping": s.dispersion_damping,
                  "num_train": len(train), "train_energy_sum_eV": float(np.sum(train.energies)),
                  "train_atoms": int(sum(len(n) for n in train.numbers))}
    if s.resume and path.exists():
        stored = json.loads(path.read_text())
        if stored.get("depends_on") == depends_on:
            return np.array(stored["shifts_eV"], np.float64)
    residual = dataclasses.replace(train, energies=train.energies - _model_energies(config, params, train, s))
    shifts = fit_energy_shifts(residual)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"depends_on": depends_on, "shifts_eV": shifts.tolist()}))
    return shifts


def _model_energies(config: ModelConfig, params: dict, data: Dataset, s: TrainSettings,
                   batch_size: int = 8) -> np.ndarray:
    """Energies (eV) of the starting model on ``data``, with the run-time options training uses.

    Structures with the same atom count and periodicity go through in batches of ``batch_size``
    (one compiled shape per size), 30 Ac-Ala15-NHMe frames/s on 2 CPU cores, with a progress bar:
    before, one structure per call made the preparation of 3920 frames a silent 3 minutes."""
    from ..evaluation.potential import Potential

    potential = Potential(config, params, dtype="float64", lr_cutoff=s.lr_cutoff,
                          dispersion_damping=s.dispersion_damping)
    groups: dict[tuple, list[int]] = {}
    for i, numbers in enumerate(data.numbers):
        groups.setdefault((len(numbers), tuple(bool(p) for p in data.pbc[i])), []).append(i)
    energies = np.empty(len(data))
    done = 0
    bar = (Progress(len(data), description="starting model on the training data (float64)", unit="structure")
           if s.progress else None)
    with bar if bar is not None else contextlib.nullcontext():
        for (_, pbc), members in groups.items():
            periodic = any(pbc)
            for first in range(0, len(members), batch_size):
                chunk = members[first:first + batch_size]
                energies[chunk] = potential.evaluate(
                    np.stack([data.numbers[i] for i in chunk]), np.stack([data.positions[i] for i in chunk]),
                    data.cells[chunk] if periodic else None, np.array(pbc),
                    total_charge=data.total_charge[chunk], unpaired_electrons=data.unpaired_electrons[chunk],
                    pad_to=batch_size).energy
                done += len(chunk)
                if bar is not None:
                    bar.update(done)
    return energies


def residual_energies(data: Dataset, shifts: np.ndarray) -> Dataset:
    """A copy of ``data`` with the per-element shifts subtracted from the energies (float64)."""
    offsets = np.array([shifts[n].sum() for n in data.numbers])
    return dataclasses.replace(data, energies=data.energies - offsets)


class Trainer:
    def __init__(self, s: TrainSettings, log=print):
        self.s = s
        self.log = log
        started = time.perf_counter()
        self.p = prepare(s)
        # the first epoch then starts with compilation: without this line a large data set looks like a hang
        per_structure = self.p.capacities.batch_size
        self.log(f"data: {len(self.p.train)} training and {len(self.p.valid)} validation structures from {s.data}, "
                 f"up to {self.p.capacities.atoms // per_structure} atoms and {self.p.capacities.pairs // per_structure} "
                 f"pairs within the cutoff each (read, split and paired in {time.perf_counter() - started:.1f} s)")
        self.module = EnergyModel(self.p.config, lr_cutoff=s.lr_cutoff, dispersion_damping=s.dispersion_damping)
        self.with_stress = s.stress_weight > 0
        if self.with_stress and not self.p.train.has_stress:
            raise ValueError(f"stress_weight is {s.stress_weight} but no training structure in {s.data} has a "
                             "stress label (periodic frames with a 'stress' result)")
        self.target_weights = {k: w for k, w in s.target_weights.items() if w > 0}
        for name in self.target_weights:
            if not self.p.train.has_atom_target(name):
                raise ValueError(f"a {name} loss weight is set but no training structure in {s.data} has "
                                 f"'{name}' per-atom labels (so3k label with a SO3LR-type teacher writes them)")
        periodic = bool(self.p.train.periodic.any() or self.p.valid.periodic.any())
        self.train_data = residual_energies(self.p.train, self.p.shifts)
        self.valid_data = residual_energies(self.p.valid, self.p.shifts)
        self.trainable = None
        if s.train_last_layers is not None:  # the mask needs the parameter tree's layout
            self.trainable = trainable_mask(self.starting_parameters(), s.train_last_layers)
        self.optimizer = make_optimizer(s, self.trainable)
        self.schedule = learning_rate_schedule(s)
        self._train_step = xla_options.jit(self._step)
        self._predict = xla_options.jit(lambda params, batch, volume: predict(self.module, params, batch, volume, periodic,
                                                                              with_extras=True))
        self.output = Path(s.output_dir)
        self.metrics_path = self.output / "metrics.jsonl"

    # --------------------------------------------------------------------------------------------
    @functools.cached_property
    def _fresh_parameters(self) -> dict:
        return initial_parameters(self.p.config, self.s.seed, self.s.lr_cutoff)

    def starting_parameters(self) -> dict:
        """The fine-tuned model's parameters, or fresh ones (built once) for a new model."""
        if self.p.initial_params is not None:
            return self.p.initial_params
        return self._fresh_parameters

    def initial_state(self) -> dict:
        params = jax.tree.map(jnp.asarray, self.starting_parameters())
        return {"params": params, "opt_state": self.optimizer.init(params), "ema": params, "best": params,
                "step": jnp.zeros((), jnp.int32), "epoch": jnp.zeros((), jnp.int32),
                "best_loss": jnp.asarray(np.inf, jnp.float32), "bad_epochs": jnp.zeros((), jnp.int32),
                "train_time_s": jnp.zeros((), jnp.float32)}

    def _step(self, state, batch, labels):
        s = self.s

        def loss_fn(params):
            return loss_and_metrics(self.module, params, batch, labels, s.energy_weight, s.force_weight,
                                    s.stress_weight, self.target_weights)

        grads, metrics = jax.grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
        params = jax.tree.map(lambda p, u: p + u, state["params"], updates)
        step = state["step"] + 1
        decay = jnp.minimum(s.ema_decay, (1.0 + step) / (10.0 + step)) if s.ema_decay > 0 else 0.0
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state["ema"], params)
        return {**state, "params": params, "opt_state": opt_state, "ema": ema, "step": step}, metrics

    # --------------------------------------------------------------------------------------------
    def predict(self, params, data: Dataset, pairs: PairCache):
        """Energies (S,) eV (residual, without shifts), forces list of (N_i, 3) eV/Å, stress
        (S, 3, 3) eV/Å^3 (None when no training structure is periodic) and, for each trained per-atom
        target (e.g. partial_charges), a list of (N_i,) predictions."""
        energies, forces, stresses = [], [], []
        targets: dict[str, list] = {name: [] for name in self.target_weights}
        for chunk in batch_order(len(data), self.s.batch_size, None):
            batch, labels = make_batch(data, pairs, chunk, self.p.capacities)
            e, f, stress, extras = self._predict(params, batch, labels.volume)
            e, f = np.asarray(e, np.float64), np.asarray(f, np.float64)
            outputs = {name: np.asarray(extras[ATOM_TARGETS[name]], np.float64) for name in targets}
            a0 = 0
            for slot, i in enumerate(chunk):
                n = len(data.numbers[i])
                energies.append(e[slot])
                forces.append(f[a0:a0 + n])
                for name, values in outputs.items():
                    targets[name].append(values[a0:a0 + n])
                if stress is not None:
                    stresses.append(np.asarray(stress[slot], np.float64))
                a0 += n
        return np.asarray(energies), forces, (np.asarray(stresses) if stresses else None), targets

    def validate(self, params) -> dict[str, float]:
        data = self.valid_data
        energies, forces, stress, targets = self.predict(params, data, self.p.valid_pairs)
        counts = [len(n) for n in data.numbers]
        m = error_metrics(energies, data.energies, counts, forces, data.forces, stress, data.stress)
        m["loss"] = self.s.energy_weight * m["energy_rmse_eV"] ** 2 + self.s.force_weight * m["forces_rmse_eV_per_A"] ** 2
        if self.with_stress and "stress_rmse_eV_per_A3" in m:
            m["loss"] += self.s.stress_weight * m["stress_rmse_eV_per_A3"] ** 2
        for name, predicted in targets.items():  # the loss's own terms, so the best epoch is chosen on them too
            target = atom_target_metrics(name, predicted, data.atom_targets[name])
            m |= target
            m["loss"] += self.target_weights[name] * target.get(f"{name}_rmse", 0.0) ** 2
        return m

    # --------------------------------------------------------------------------------------------
    def _resume(self, checkpoints: Checkpoints, state: dict) -> dict:
        latest = checkpoints.latest_epoch() if self.s.resume else None
        if latest is None:
            self.output.mkdir(parents=True, exist_ok=True)
            self.metrics_path.write_text("")
            return state
        state = checkpoints.restore(latest, state)
        self.log(f"resuming from the checkpoint after epoch {latest} (step {int(state['step'])})")
        if np.isfinite(float(state["best_loss"])) and len(self.valid_data):
            # scored again, so a run resumed under other settings or another version's validation loss
            # compares like with like when it picks the best epoch
            state = {**state, "best_loss": jnp.asarray(self.validate(state["best"])["loss"], jnp.float32)}
        if self.metrics_path.exists():  # drop log rows written after that checkpoint
            rows = [r for r in self.metrics_path.read_text().splitlines() if r and json.loads(r)["epoch"] <= latest]
            self.metrics_path.write_text("".join(r + "\n" for r in rows))
        return state

    def train(self) -> dict:
        """Train until the epochs, the time limit or patience run out, or Ctrl-C / SIGTERM (a batch
        system's stop): then the finished epochs are exported as if training had ended there."""
        with _sigterm_as_interrupt():
            return self._train()

    def _train(self) -> dict:
        s = self.s
        self.log(f"training on {len(self.p.train)} structures, validating on {len(self.p.valid)} "
                 f"({self.p.train.source}); species {list(self.p.config.species)}")
        checkpoints = Checkpoints(self.output / "checkpoints")
        state = self._resume(checkpoints, self.initial_state())
        start_epoch = int(state["epoch"])
        wall_start = time.perf_counter() - float(state["train_time_s"])
        stop_reason = "epochs done"
        for epoch in range(start_epoch + 1, s.epochs + 1):
            if s.patience is not None and int(state["bad_epochs"]) >= s.patience:
                stop_reason = f"early stopping (no improvement for {s.patience} epochs)"
                break
            if s.time_limit_s is not None and time.perf_counter() - wall_start >= s.time_limit_s:
                stop_reason = f"time limit {s.time_limit_s} s"
                break
            try:
                state, train_metrics = self._epoch(state, epoch)
            except KeyboardInterrupt:  # Ctrl-C: keep what the finished epochs learnt
                stop_reason = f"interrupted during epoch {epoch}"
                break
            row = {"epoch": epoch, "step": int(state["step"]), "lr": float(self.schedule(int(state["step"]))),
                   **{f"train_{k}": v for k, v in train_metrics.items()}}
            if epoch % s.eval_every == 0 or epoch == s.epochs:
                valid = self.validate(state["ema"])
                row.update({f"valid_{k}": v for k, v in valid.items()})
                improved = valid["loss"] < float(state["best_loss"])
                state = {**state, "best": state["ema"] if improved else state["best"],
                         "best_loss": jnp.asarray(min(valid["loss"], float(state["best_loss"])), jnp.float32),
                         "bad_epochs": jnp.asarray(0 if improved else int(state["bad_epochs"]) + 1, jnp.int32)}
                self.log(f"epoch {epoch}: train loss {train_metrics['loss']:.4g}; valid {format_metrics(valid)}")
            elapsed = time.perf_counter() - wall_start
            state = {**state, "epoch": jnp.asarray(epoch, jnp.int32), "train_time_s": jnp.asarray(elapsed, jnp.float32)}
            row["time_s"] = elapsed
            with open(self.metrics_path, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            if epoch % s.checkpoint_every == 0 or epoch == s.epochs:
                checkpoints.save(epoch, state)
        checkpoints.close()
        self.log(f"stopped: {stop_reason}")
        return self._finish(state, stop_reason)

    def _epoch(self, state, epoch: int):
        s = self.s
        chunks = batch_order(len(self.train_data), s.batch_size, seed=[s.seed, epoch])
        bar = Progress(len(chunks), description=f"epoch {epoch}/{s.epochs}", unit="batch") if s.progress else None
        totals = {"loss": 0.0, "energy_mse": 0.0, "force_mse": 0.0} | ({"stress_mse": 0.0} if self.with_stress else {})
        totals |= {f"{name}_mse": 0.0 for name in self.target_weights}
        for done, chunk in enumerate(chunks, start=1):
            batch, labels = make_batch(self.train_data, self.p.train_pairs, chunk, self.p.capacities)
            state, metrics = self._train_step(state, batch, labels)
            metrics = {k: float(v) for k, v in metrics.items()}
            for k in totals:
                totals[k] += metrics[k] / len(chunks)
            if bar:
                bar.update(done, loss=metrics["loss"], F_rmse=np.sqrt(metrics["force_mse"]))
        if bar:
            bar.close()
        return state, totals

    # --------------------------------------------------------------------------------------------
    def export_params(self, params) -> dict:
        """Parameters with the fitted per-element shifts added to the energy offsets (eV)."""
        params = jax.tree.map(np.asarray, params)
        obs = dict(params["params"]["observables_0"])
        offset = obs["energy_offset"].astype(np.float64)
        obs["energy_offset"] = offset + self.p.shifts[:len(offset)]
        return {"params": {**params["params"], "observables_0": obs}}

    def _finish(self, state, stop_reason: str) -> dict:
        from ..io.model_files import save_model

        best = state["best"] if np.isfinite(float(state["best_loss"])) else state["ema"]
        valid = self.validate(best) if len(self.valid_data) else {}
        train_time = float(state["train_time_s"])
        metadata = {
            "training_data": self.p.train.source, "energy_unit_in_file": self.s.energy_unit,
            "num_train": len(self.p.train), "num_valid": len(self.p.valid), "split_seed": self.s.split_seed,
            "epochs_trained": int(state["epoch"]), "steps": int(state["step"]), "stop_reason": stop_reason,
            "train_time_s": round(train_time, 1), "validation_errors": valid,
            "validation_file": "validation.extxyz" if len(self.p.valid) else None,
            "hyperparameters": {k: v for k, v in self.s.to_dict().items() if k not in ("model", "progress")},
        }
        if len(self.p.valid):
            write_extxyz(self.p.valid, self.output / "validation.extxyz")
        path = self.s.export_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_model(path, self.p.config, self.export_params(best), metadata=metadata)
        self.log(f"wrote {path}; validation (best EMA weights): {format_metrics(valid) if valid else 'n/a'}")
        if self.s.plot:
            from .plots import learning_curve

            learning_curve(self.metrics_path, self.output / "learning_curve.png")
        return {"model": str(path), "validation": valid, "state": state, "train_time_s": train_time}


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt (as Ctrl-C does) while training; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(settings: TrainSettings, log=print) -> dict:
    return Trainer(settings, log).train()
