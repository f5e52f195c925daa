"""Several devices share a batch (one call per device, dispatched together): tested on a CPU split
into two XLA host devices, the way it runs on two GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, numpy as np, jax
from so3k_driver.evaluation.potential import Potential
from physics_suite import bundled_molecule

numbers, positions = bundled_molecule()
rng = np.random.default_rng(0)
batch = np.stack([positions + rng.normal(scale=0.03, size=positions.shape) for _ in range(5)])
shared = Potential.load("ala3-xtb", dtype="float64", device="cpu:all", pairs_per_call=None)
single = Potential.load("ala3-xtb", dtype="float64", device="cpu:0", pairs_per_call=None)
used = []
original = shared._dispatch
def recording(index, call, *args):
    out = original(index, call, *args)
    used.append(sorted(str(d) for d in out.outputs.energies.devices()))
    return out
shared._dispatch = recording
a, b = shared.evaluate(numbers, batch), single.evaluate(numbers, batch)
print(json.dumps({"devices": len(jax.devices("cpu")), "used": used,
                  "energy": float(np.abs(a.energy - b.energy).max()), "forces": float(np.abs(a.forces - b.forces).max()),
                  "compiles": shared.compile_count}))
"""


def test_two_devices_share_a_batch_and_give_the_same_numbers():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2
    assert len(report["used"]) == 2 and report["used"][0] != report["used"][1]  # 3 + 2 structures, one per device
    assert report["energy"] < 1e-10 and report["forces"] < 1e-10
    assert report["compiles"] == 2  # one compiled shape on each device


def test_bad_device_specs_are_refused():
    import pytest

    from so3k_driver.evaluation.potential import Potential

    for spec, message in [("cpu:7", "only"), ("cpu:x", "look like")]:
        with pytest.raises(ValueError, match=message):
            Potential.load("ala3-xtb", device=spec)


MINIMISE_SCRIPT = r"""
import dataclasses, json, numpy as np, jax
from so3k_driver.evaluation import minimise as minimise_module
from so3k_driver.evaluation.optimizers import LbfgsSettings
from so3k_driver.evaluation.potential import Potential
from physics_suite import bundled_molecule

numbers, positions = bundled_molecule()
rng = np.random.default_rng(1)
frames = np.stack([positions + rng.normal(scale=0.05, size=positions.shape) for _ in range(2)])
used = []
make = minimise_module.optimizer_call_for
def recording(*args):
    call = make(*args)
    def wrapped(*a):
        state, iterations = call(*a)
        used.append(sorted(str(d) for d in state.positions.devices()))
        return state, iterations
    return wrapped
minimise_module.optimizer_call_for = recording
settings = LbfgsSettings(max_steps=30, structures_per_call=2)
results = {}
for device in ("cpu:1", "cpu:0"):
    potential = Potential.load("ala3-xtb", dtype="float64", device=device)
    results[device] = minimise_module.minimise(potential, numbers, frames, settings)
print(json.dumps({"used": used, "energy": float(np.abs(results["cpu:1"].energy - results["cpu:0"].energy).max())}))
"""


def test_minimisation_runs_on_the_potentials_device():
    """``so3k minima --device`` and a Potential on a chosen device: the batched optimiser runs there, not
    on JAX's default device."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    result = subprocess.run([sys.executable, "-c", MINIMISE_SCRIPT], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    devices = [d for (d,) in report["used"]]  # one device per call: cpu:1's calls first, then cpu:0's
    assert devices[0] != devices[-1] and devices[0].endswith("1") and devices[-1].endswith("0"), devices
    assert devices.count(devices[0]) == devices.index(devices[-1])  # every call of a potential on its device
    assert report["energy"] < 1e-10
