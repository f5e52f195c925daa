"""Optax optimiser: gradient clipping + AMSGrad/Adam/AdamW with warmup and exponential decay."""

from __future__ import annotations

import optax

from .settings import TrainSettings


def learning_rate_schedule(s: TrainSettings):
    decay = optax.exponential_decay(s.learning_rate, transition_steps=max(s.decay_steps, 1), decay_rate=s.decay_rate)
    if s.warmup_steps <= 0:
        return decay
    warmup = optax.linear_schedule(0.0, s.learning_rate, s.warmup_steps)
    return optax.join_schedules([warmup, decay], boundaries=[s.warmup_steps])


def make_optimizer(s: TrainSettings) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(s)
    base = {"amsgrad": optax.amsgrad, "adam": optax.adam, "adamw": optax.adamw}[s.optimizer](schedule)
    if s.clip_norm:
        return optax.chain(optax.clip_by_global_norm(s.clip_norm), base)
    return base
