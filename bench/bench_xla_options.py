"""What the CPU compile options of ``so3k_driver/evaluation/xla_options.py`` buy, per model call.

    python bench/bench_xla_options.py [--rounds 12] [--out FILE.json]

For every case one process loads the model twice, once compiled with the options (the default) and
once with XLA's own defaults (``SO3K_XLA_CPU_OPTIONS=0`` while it is built), and times energy + forces
calls of both alternately (float32 unless stated, all pairs), so that both see the same machine.
Printed: the median per setting and their ratio (options / XLA defaults; < 1: the options are faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from so3k_driver.io.model_files import BUNDLED_MODELS, MODEL_ALIASES

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "so3k_driver" / "data"
SO3LR = REPO.parent / "shared" / "reference" / "so3lr"
STUDENT = REPO / "docs" / "results" / "so3lr_student_v3" / "student_v4_epoch7.so3k"

# name: (model spec, dtype, structure file, batch size)
CASES = {
    "ala3-xtb 1x42": ("ala3-xtb", "float32", "Ac-Ala3-NHMe_ext.xyz", 1),
    "ala3-xtb 8x42": ("ala3-xtb", "float32", "Ac-Ala3-NHMe_ext.xyz", 8),
    "student 1x162": (str(STUDENT), "float32", "Ac-Ala15-NHMe_folded.xyz", 1),
    "student 8x162": (str(STUDENT), "float32", "Ac-Ala15-NHMe_folded.xyz", 8),
    "so3lr 1x42": (f"so3lr:{SO3LR}", "float32", "Ac-Ala3-NHMe_ext.xyz", 1),
    "so3lr 1x42 float64": (f"so3lr:{SO3LR}", "float64", "Ac-Ala3-NHMe_ext.xyz", 1),
    "so3lr 1x162": (f"so3lr:{SO3LR}", "float32", "Ac-Ala15-NHMe_folded.xyz", 1),
}


def available_cases() -> dict:
    def present(spec):
        return spec in BUNDLED_MODELS or spec in MODEL_ALIASES or Path(spec.removeprefix("so3lr:")).exists()
    return {name: case for name, case in CASES.items() if present(case[0])}


def interleaved(case, rounds: int) -> dict:
    import ase.io
    import numpy as np

    from so3k_driver.evaluation import xla_options
    from so3k_driver.evaluation.potential import Potential

    spec, dtype, structure, batch = case
    atoms = ase.io.read(DATA / structure)
    numbers = np.tile(atoms.numbers, (batch, 1))
    positions = atoms.positions[None] + 0.03 * np.random.default_rng(0).normal(size=(batch, len(atoms), 3))
    potentials = {}
    for label, switch in (("options", ""), ("xla defaults", "0")):
        os.environ[xla_options.ENVIRONMENT] = switch
        xla_options.cpu_compiler_options.cache_clear()
        potentials[label] = Potential.load(spec, dtype=dtype, lr_cutoff=None)
        for _ in range(2):
            potentials[label].evaluate(numbers, positions)
    times = {label: [] for label in potentials}
    energies = {}
    for index in range(rounds):
        for label in (list(potentials) if index % 2 == 0 else list(potentials)[::-1]):
            start = time.perf_counter()
            energies[label] = float(potentials[label].evaluate(numbers, positions).energy[0])
            times[label].append(time.perf_counter() - start)
    result = {label: {"median_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t)} for label, t in times.items()}
    result["energy_difference_eV"] = abs(energies["options"] - energies["xla defaults"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="timed calls per setting and case")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    results = {}
    print(f"{'case':<20} {'options':>10} {'XLA defaults':>13} {'ratio':>6}  (median ms)")
    for name, case in available_cases().items():
        result = results[name] = interleaved(case, args.rounds)
        on, off = result["options"]["median_ms"], result["xla defaults"]["median_ms"]
        print(f"{name:<20} {on:10.1f} {off:13.1f} {on / off:6.2f}  |dE| {result['energy_difference_eV']:.1e} eV",
              flush=True)
    if args.out:
        args.out.write_text(json.dumps({"cases": results, "rounds": args.rounds, "load_average": os.getloadavg()},
                                       indent=1))


if __name__ == "__main__":
    main()
