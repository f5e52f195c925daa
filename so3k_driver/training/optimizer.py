"""Optax optimiser: gradient clipping + AMSGrad/Adam/AdamW with warmup and exponential decay."""

from __future__ import annotations

import jax
import optax

from .settings import TrainSettings


def learning_rate_schedule(s: TrainSettings):
    decay = optax.exponential_decay(s.learning_rate, transition_steps=max(s.decay_steps, 1), decay_rate=s.decay_rate)
    if s.warmup_steps <= 0:
        return decay
    warmup = optax.linear_schedule(0.0, s.learning_rate, s.warmup_steps)
    return optax.join_schedules([warmup, decay], boundaries=[s.warmup_steps])


def make_optimizer(s: TrainSettings, trainable=None) -> optax.GradientTransformation:
    """trainable: None (every parameter) or a pytree of bools like the parameters; frozen ones never move."""
    schedule = learning_rate_schedule(s)
    base = {"amsgrad": optax.amsgrad, "adam": optax.adam, "adamw": optax.adamw}[s.optimizer](schedule)
    if s.clip_norm:
        base = optax.chain(optax.clip_by_global_norm(s.clip_norm), base)
    if trainable is None:
        return base
    labels = jax.tree.map(lambda train: "train" if train else "frozen", trainable)
    return optax.multi_transform({"train": base, "frozen": optax.set_to_zero()}, labels)


def trainable_mask(params: dict, train_last_layers: int | None):
    """Which parameters a fine-tune updates: all (None), or the last N SO3krates layers ``layers_t`` and
    every readout (``observables_*``: energy, charges, Hirshfeld ratios); embeddings and earlier layers stay."""
    if train_last_layers is None:
        return None
    layers = sorted((k for k in params["params"] if k.startswith("layers_")), key=lambda k: int(k.split("_")[1]))
    chosen = set(layers[len(layers) - train_last_layers:]) if train_last_layers else set()
    return {"params": {name: jax.tree.map(lambda _: name in chosen or name.startswith("observables_"), subtree)
                       for name, subtree in params["params"].items()}}
