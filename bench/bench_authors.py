"""Energy+forces latency of one structure: ours against the authors' code, interleaved in one run.

    python bench/bench_authors.py --authors-python AUTHORS_ENV/bin/python     # an environment with mlff + so3lr
    python bench/bench_authors.py --authors-python PY --models so3lr --dtypes float32 --atoms 42,162

The authors' code (mlff v1.0 + so3lr, jax 0.5.3) runs in its own environment through
`bench/authors_timer.py --serve`; ours runs in this process. For each case the two take turns:
`--rounds` rounds of `--calls` timed calls each, after warm-up calls that compile. Both sides time
what a user of each pays per call, host work included: ours `Potential.evaluate_atoms` (pair list,
checks, packing, copies), theirs the calculator `so3lr.So3lrCalculator` builds
(`mlffCalculatorSparse.calculate`: neighbour-list update, energy and forces, copies). SO3LR runs with
the authors' default long-range cutoff of 12 Å and 2 Å dispersion damping on both sides (the
settings of the shared reference numbers). Paper SO3krates: the shared random weights. Our side starts
again with glibc's huge pages, as the so3k commands and i-PI drivers do (`--no-huge-pages`: as a library
user's script without them); theirs runs with glibc's defaults, as their users do.

Printed per case: medians over all timed calls with the 25-75 % range, and the speed-up as the median
of the per-round ratios (their median / ours) with its range over rounds. --json writes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "so3k_driver" / "data"
SHARED = REPO.parent / "shared" / "reference"
TIMER = Path(__file__).resolve().parent / "authors_timer.py"


def structures(folder: Path) -> dict[int, Path]:
    """Gas-phase test structures by atom count, written as xyz files both processes read."""
    import ase.io
    from ase.build import nanotube

    tube = nanotube(6, 6, length=16)
    tube.pbc = False
    tube.cell = None
    tube_file = folder / "nanotube_6_6_384.xyz"
    ase.io.write(tube_file, tube)
    return {42: DATA / "Ac-Ala3-NHMe_ext.xyz", 162: DATA / "Ac-Ala15-NHMe_ext.xyz", 384: tube_file}


def our_potential(model: str, dtype: str):
    from so3k_driver.evaluation.potential import Potential

    if model == "so3lr":
        return Potential.load(f"so3lr:{SHARED / 'so3lr'}", dtype=dtype, lr_cutoff=12.0, dispersion_damping=2.0)
    return Potential.load(f"mlff:{SHARED / 'so3krates_random'}", dtype=dtype)


def our_times_ms(potential, atoms, calls: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        potential.evaluate_atoms(atoms)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        potential.evaluate_atoms(atoms)
        times.append((time.perf_counter() - start) * 1e3)
    return times


class AuthorsTimer:
    """The authors' code in its own interpreter, answering one JSON line per request."""

    def __init__(self, python: str, environment: dict | None = None):
        self.process = subprocess.Popen([python, str(TIMER), "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=environment)

    def times_ms(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"authors' code: {answer['error']}")
        return answer

    def close(self) -> None:
        self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self.process.stdin.flush()
        self.process.wait(timeout=60)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(q2), float(q3)


def authors_environment(ours: dict) -> dict:
    """Their process's environment: ours without the huge-page tunables our side was started with (their
    users run with glibc's defaults)."""
    from so3k_driver.evaluation.host_memory import HUGE_PAGE_TUNABLES

    environment = dict(ours)
    if environment.get("GLIBC_TUNABLES") == HUGE_PAGE_TUNABLES:
        del environment["GLIBC_TUNABLES"]
    return environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--authors-python", required=True, help="python of the environment with mlff and so3lr")
    parser.add_argument("--models", default="paper,so3lr")
    parser.add_argument("--dtypes", default="float32")
    parser.add_argument("--atoms", default="42,162,384")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write all timings here")
    parser.add_argument("--no-huge-pages", action="store_true",
                        help="our side without glibc's huge pages (a library user's script that did not set them)")
    args = parser.parse_args()
    if not args.no_huge_pages:
        from so3k_driver.evaluation.host_memory import restart_with_huge_pages

        restart_with_huge_pages()  # as every so3k command and i-PI driver starts (docs/performance.md)
    import ase.io
    import jax

    folder = Path(tempfile.mkdtemp(prefix="bench_authors_"))
    files = structures(folder)
    authors = AuthorsTimer(args.authors_python, authors_environment(os.environ))
    rows = []
    try:
        for model in args.models.split(","):
            for dtype in args.dtypes.split(","):
                potential = our_potential(model, dtype)
                for natoms in (int(n) for n in args.atoms.split(",")):
                    atoms = ase.io.read(files[natoms])
                    theirs_model = "so3lr" if model == "so3lr" else "so3krates"
                    request = {"model": theirs_model, "xyz": str(files[natoms]), "dtype": dtype,
                               "lr_cutoff": 12.0 if model == "so3lr" else None, "region": "calc"}
                    ours_all, theirs_all, ratios = [], [], []
                    first = None
                    for round_index in range(args.rounds):
                        warmup = 3 if round_index == 0 else 1
                        ours = our_times_ms(potential, atoms, args.calls, warmup)
                        answer = authors.times_ms(**request, repeats=args.calls, warmup=warmup)
                        first = first or answer
                        theirs = answer["times_ms"]
                        ours_all += ours
                        theirs_all += theirs
                        ratios.append(statistics.median(theirs) / statistics.median(ours))
                        print(f"  {model} {dtype} {natoms} atoms, round {round_index + 1}: ours "
                              f"{statistics.median(ours):.1f} ms, theirs {statistics.median(theirs):.1f} ms",
                              file=sys.stderr, flush=True)
                    ours_energy = float(potential.evaluate_atoms(atoms).energy[0])
                    rows.append({"model": model, "dtype": dtype, "natoms": natoms, "ours_ms": ours_all,
                                 "theirs_ms": theirs_all, "round_ratios": ratios,
                                 "energy_ours_eV": ours_energy, "energy_theirs_eV": first["energy"],
                                 "theirs_includes": first["includes"], "theirs_code": first["code"]})
    finally:
        authors.close()

    print(f"ours: jax {jax.__version__}, {jax.devices()[0].platform}, GLIBC_TUNABLES="
          f"{os.environ.get('GLIBC_TUNABLES', '(unset)')}; theirs: glibc defaults, {rows[0]['theirs_code'] if rows else '-'}")
    print(f"{'model':<6} {'dtype':<8} {'atoms':>5} {'ours ms (25-75 %)':>22} {'theirs ms (25-75 %)':>24} "
          f"{'speed-up (range over rounds)':>30} {'|dE| eV':>9}")
    for row in rows:
        o, t, r = quartiles(row["ours_ms"]), quartiles(row["theirs_ms"]), row["round_ratios"]
        print(f"{row['model']:<6} {row['dtype']:<8} {row['natoms']:>5} {o[1]:8.1f} ({o[0]:5.1f}-{o[2]:5.1f}) "
              f"{t[1]:10.1f} ({t[0]:6.1f}-{t[2]:6.1f}) {statistics.median(r):14.2f}x ({min(r):.2f}-{max(r):.2f}) "
              f"{abs(row['energy_ours_eV'] - row['energy_theirs_eV']):9.1e}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
