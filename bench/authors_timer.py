#!/usr/bin/env python
"""Time the SO3krates / SO3LR authors' own JAX code (mlff v1.0 + so3lr) on one structure.

Runs in a separate environment that has the authors' packages (jax 0.5.3, mlff, so3lr, glp, jraph; how
it was built: docs/performance.md, "Against the authors' code"); `bench/bench_authors.py` drives it
through --serve and interleaves its timings with ours. Paper SO3krates uses the shared random weights
(--so3krates-params, default ../shared/reference/so3krates_random).

Path timed (default --region calc): the authors' ASE calculator `mlff.md.mlffCalculatorSparse`, i.e. exactly
what `so3lr.So3lrCalculator` builds (so3lr main passes an extra `calculate_hessian` kwarg that mlff v1.0 lacks,
so we call mlffCalculatorSparse.create_from_ckpt_dir directly with the same arguments). One timed call is
`calc.calculate(atoms, ['energy','forces'], all_changes)`: ASE bookkeeping, atoms -> glp System (host->device),
the jitted glp neighbour-list update (local 4.5/5 Å list + long-range list), the jitted energy+forces
(value_and_grad) and the device->host copy of the results. --region jit_only times only the jitted
energy+forces function on a prebuilt neighbour list (blocked until ready).

One-shot:  time_authors.py --model so3lr --xyz ala3.xyz --dtype float32 --repeats 20
Serve:     time_authors.py --serve   (stdin: one JSON per line, e.g.
           {"model":"so3lr","xyz":"...","dtype":"float32","repeats":20,"lr_cutoff":12.0,"region":"calc"};
           missing keys fall back to the command-line values; answers one JSON line per request on stdout;
           {"cmd":"quit"} or EOF ends.)
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

SO3KRATES_PARAMS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference" / "so3krates_random"
# Options the authors' workdir format needs beside the paper hyperparameters: a purely local model.
LOCAL_MODEL_OPTIONS = {
    "energy_regression_dim": 132, "num_features_head": 33, "cutoff_lr": None,
    "layers_behave_like_identity_fn_at_init": False, "use_charge_embed": False, "use_spin_embed": False,
    "energy_learn_atomic_type_scales": False, "energy_learn_atomic_type_shifts": False,
    "electrostatic_energy_bool": False, "electrostatic_energy_scale": 1.0, "dispersion_energy_bool": False,
    "dispersion_energy_cutoff_lr_damping": None, "dispersion_energy_scale": 1.0, "zbl_repulsion_bool": False,
}


def so3krates_workdir(params_dir: pathlib.Path) -> pathlib.Path:
    """A temporary workdir in the authors' layout (hyperparameters.json + params.pkl) for the paper model."""
    import tempfile
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="so3krates_random_"))
    hyperparameters = json.loads((params_dir / "hparams.json").read_text()) | LOCAL_MODEL_OPTIONS
    config = {"model": hyperparameters, "data": {"avg_num_neighbors": None, "energy_shifts": {}},
              "neighborlist_format_lr": "sparse"}
    (workdir / "hyperparameters.json").write_text(json.dumps(config, indent=1))
    (workdir / "params.pkl").symlink_to(params_dir / "params.pkl")
    return workdir
_REAL_STDOUT = sys.stdout


def _x64_ctx(dtype):
    from jax.experimental import enable_x64, disable_x64
    return enable_x64() if dtype == "float64" else disable_x64()


def _build_calculator(model, dtype, lr_cutoff):
    import numpy as np
    from mlff.md import mlffCalculatorSparse
    np_dtype = np.dtype(dtype)
    if model == "so3lr":
        import so3lr
        workdir = pathlib.Path(so3lr.__file__).parent / "params"
        # so3lr.So3lrCalculator defaults: lr_cutoff=12, damping=2. The authors' code requires damping=None when
        # lr_cutoff is None (all pairs, gas phase) -- mlff then builds the long-range list with a 1e6 Å cutoff.
        damping = 2.0 if lr_cutoff is not None else None
        return mlffCalculatorSparse.create_from_ckpt_dir(
            ckpt_dir=workdir, lr_cutoff=lr_cutoff, dispersion_energy_cutoff_lr_damping=damping,
            from_file=True, calculate_stress=False, dtype=np_dtype)
    elif model == "so3krates":
        # paper SO3krates hyperparameters with the shared random weights (purely local model, 5 Å)
        return mlffCalculatorSparse.create_from_ckpt_dir(
            ckpt_dir=so3krates_workdir(SO3KRATES_PARAMS), from_file=True, calculate_stress=False, dtype=np_dtype)
    raise ValueError(f"unknown model {model!r}")


class Runner:
    def __init__(self):
        self.cache = {}  # (model, natoms, dtype, lr_cutoff) -> calculator (its jitted fns live on it)

    def run(self, model, xyz, dtype, repeats, lr_cutoff=None, region="calc", warmup=3, frame=0):
        import numpy as np
        import ase.io
        import jax
        from ase.calculators.calculator import all_changes
        if model != "so3lr":
            lr_cutoff = None
        atoms = ase.io.read(xyz, index=frame)
        atoms.pbc = False
        atoms.cell = None
        natoms = len(atoms)
        key = (model, natoms, dtype, lr_cutoff)
        with _x64_ctx(dtype):
            t0 = time.perf_counter()
            built = key not in self.cache
            if built:
                self.cache[key] = _build_calculator(model, dtype, lr_cutoff)
            calc = self.cache[key]
            props = ["energy", "forces"]
            calc.calculate(atoms, props, all_changes)  # allocates neighbours + compiles
            compile_s = time.perf_counter() - t0
            energy = float(calc.results["energy"])
            if region == "calc":
                def call():
                    calc.calculate(atoms, props, all_changes)
                    return calc.results["forces"]
                includes = ("mlffCalculatorSparse.calculate (= so3lr.So3lrCalculator): ASE bookkeeping + "
                            "atoms->glp System host->device + jitted glp neighbour-list update (local + long-range) "
                            "+ jitted energy+forces + results device->host")
            elif region == "jit_only":
                from glp import atoms_to_system
                system = atoms_to_system(atoms, dtype=np.dtype(dtype))
                neighbors = calc.spatial_partitioning.update_fn(system.R, calc.neighbors, new_cell=None)
                def call():
                    return jax.block_until_ready(calc.calculate_fn(system, neighbors))
                includes = "jitted energy+forces only (prebuilt glp neighbour list, inputs on device), block_until_ready"
            else:
                raise ValueError(f"unknown region {region!r}")
            for _ in range(warmup):
                call()
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                call()
                times.append((time.perf_counter() - t) * 1e3)
        nb = calc.neighbors
        npairs = int((np.asarray(nb.centers) < natoms).sum()) if nb is not None else None
        out = {"model": model, "natoms": natoms, "dtype": dtype, "times_ms": [round(x, 3) for x in times],
               "median_ms": round(statistics.median(times), 3) if times else None, "includes": includes,
               "region": region, "lr_cutoff": lr_cutoff, "energy": energy, "n_local_pairs": npairs,
               "built": built, "first_call_s": round(compile_s, 3), "warmup": warmup,
               "code": "mlff kabylda v1.0@191dcf1 + so3lr main@5ec39b9, jax 0.5.3 CPU"}
        return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="so3lr", choices=["so3lr", "so3krates"])
    p.add_argument("--xyz")
    p.add_argument("--frame", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lr-cutoff", type=float, default=None,
                   help="SO3LR long-range cutoff in Å; default None = all pairs (damping None, as the code requires)")
    p.add_argument("--region", default="calc", choices=["calc", "jit_only"])
    p.add_argument("--serve", action="store_true")
    a = p.parse_args()

    sys.stdout = sys.stderr  # keep library chatter off the JSON channel
    runner = Runner()

    def emit(obj):
        _REAL_STDOUT.write(json.dumps(obj) + "\n")
        _REAL_STDOUT.flush()

    if not a.serve:
        if not a.xyz:
            p.error("--xyz is required")
        emit(runner.run(a.model, a.xyz, a.dtype, a.repeats, a.lr_cutoff, a.region, a.warmup, a.frame))
        return
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                break
            emit(runner.run(req.get("model", a.model), req.get("xyz", a.xyz), req.get("dtype", a.dtype),
                            int(req.get("repeats", a.repeats)), req.get("lr_cutoff", a.lr_cutoff),
                            req.get("region", a.region), int(req.get("warmup", a.warmup)),
                            int(req.get("frame", a.frame))))
        except Exception as e:  # answer every request with one line
            emit({"error": f"{type(e).__name__}: {e}", "request": line})


if __name__ == "__main__":
    main()
