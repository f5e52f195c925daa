"""What multiple time stepping buys at SO3LR quality (issue #12). A benchmark, not a test.

    .venv/bin/python bench/bench_mts.py --fast STUDENT.so3k [--slow so3lr:DIR] [--structure ipi_inputs/ala15_ext.xyz]
        [--ps 1.0] [--hydrogen-mass 4] [--cases slow1,slow2,mts4,mts6,mts8] [--json OUT.json] [--list]

NVE of one Ac-Ala15-NHMe (gas phase, all pairs, float32), velocities drawn at --velocity-temperature,
every hydrogen --hydrogen-mass amu, through `so3k run`'s library (`run_simulation`, one driver per
<ffsocket>). Reference cases run SO3LR alone ('slow', time step 1 or 2 fs). MTS cases run i-PI's
multiple time stepping (<nmts> [1, n]): the outer level gets F_slow - F_fast every n inner steps, the
inner level the cheap student F_fast every 2 fs, so the trajectory follows SO3LR's forces while
SO3LR is called once per outer step. Cases run one after another (not interleaved: each is a
different computation, and the per-case timing comes from the drivers' steady state).

Reported per case: conserved-quantity drift (slope of a straight line through i-PI's `conserved`,
meV/ps per atom) and its spread around that line (meV per atom), the time per outer step (the SO3LR
driver's steady-state ms per call, which spans one outer step including its inner student calls),
and simulated ps per hour of wall time for this one system on these cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_cases import chosen_cases

REPO = Path(__file__).resolve().parents[1]
SO3LR_DIR = REPO.parent / "shared" / "reference" / "so3lr"
DEFAULT_STRUCTURE = REPO / "ipi_inputs" / "ala15_ext.xyz"
FS_PER_PS = 1000.0


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    outer_fs: float  # i-PI's <timestep>
    inner_steps: int  # <nmts> [1, inner_steps]; 1 = no MTS, SO3LR alone

    @property
    def mts(self) -> bool:
        return self.inner_steps > 1

    def what(self) -> str:
        if not self.mts:
            return f"--slow alone, {self.outer_fs:g} fs"
        return (f"MTS: SO3LR - student every {self.outer_fs:g} fs, student every "
                f"{self.outer_fs / self.inner_steps:g} fs")


CASES = [Case("slow1", 1.0, 1), Case("slow2", 2.0, 1), Case("mts4", 4.0, 2), Case("mts6", 6.0, 3),
         Case("mts8", 8.0, 4)]
# Time-step scans of one model (--slow), not run by default: e.g. --slow so3lr-student --cases slow2,slow3,slow4
# with heavy hydrogens against --hydrogen-mass 1.008 --cases slow05.
EXTRA_CASES = [Case("slow05", 0.5, 1), Case("slow3", 3.0, 1), Case("slow4", 4.0, 1)]


def input_xml(case: Case, structure: Path, outer_steps: int, velocity_k: float, seed: int) -> str:
    sockets = "<ffsocket name='slow' mode='unix' pbc='false'> <address> slow </address> <latency> 1e-4 </latency> </ffsocket>"
    forces = "<force forcefield='slow'> </force>"
    nmts = ""
    if case.mts:
        sockets += ("\n  <ffsocket name='fast' mode='unix' pbc='false'> <address> fast </address> "
                    "<latency> 1e-4 </latency> </ffsocket>")
        forces = ("<force forcefield='slow'> <mts_weights> [ 1, 0 ] </mts_weights> </force>\n"
                  "      <force forcefield='fast'> <mts_weights> [ -1, 1 ] </mts_weights> </force>")
        nmts = f"<nmts> [ 1, {case.inner_steps} ] </nmts>"
    return f"""<simulation verbosity='low' safe_stride='100'>
  <output prefix='sim'>
    <properties stride='1' filename='out'> [ step, time{{picosecond}}, conserved{{electronvolt}},
      potential{{electronvolt}}, temperature{{kelvin}} ] </properties>
    <checkpoint stride='100000'/>
  </output>
  <total_steps> {outer_steps} </total_steps>
  <prng><seed> {seed} </seed></prng>
  {sockets}
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> {structure} </file>
      <velocities mode='thermal' units='kelvin'> {velocity_k:g} </velocities>
    </initialize>
    <forces>
      {forces}
    </forces>
    <motion mode='dynamics'>
      <dynamics mode='nve'>
        <timestep units='femtosecond'> {case.outer_fs:g} </timestep>
        {nmts}
      </dynamics>
    </motion>
  </system>
</simulation>
"""


def conserved_figures(properties: Path, atoms: int) -> dict:
    """Drift (meV/ps per atom) and spread around the fitted line (meV per atom) of i-PI's conserved quantity."""
    from so3k_driver.ipi.properties import read_properties

    table = read_properties(properties)
    time_ps, conserved = np.asarray(table["time"], float), np.asarray(table["conserved"], float)
    slope, intercept = np.polyfit(time_ps, conserved, 1)
    residual = conserved - (slope * time_ps + intercept)
    temperature = np.asarray(table["temperature"], float)
    return {"drift_meV_per_ps_per_atom": 1e3 * slope / atoms, "spread_meV_per_atom": 1e3 * residual.std() / atoms,
            "mean_temperature_K": float(temperature.mean()), "frames": int(len(time_ps)),
            "simulated_ps": float(time_ps[-1] - time_ps[0])}


def run_case(case: Case, slow: str, fast: str, structure: Path, ps: float, hydrogen_mass: float, velocity_k: float,
             dtype: str, seed: int) -> dict:
    from ase.io import read

    from so3k_driver.errors import RunFailed
    from so3k_driver.ipi.runner import RunOptions, run_simulation

    outer_steps = int(round(ps * FS_PER_PS / case.outer_fs))
    atoms = len(read(structure))
    with tempfile.TemporaryDirectory(prefix=f"bench-mts-{case.name}-") as folder:
        work = Path(folder)
        (work / "input.xml").write_text(input_xml(case, structure.resolve(), outer_steps, velocity_k, seed))
        models = {"slow": slow, **({"fast": fast} if case.mts else {})}
        started = time.perf_counter()
        record = {"case": case.name, "what": case.what(), "outer_fs": case.outer_fs, "inner_steps": case.inner_steps,
                  "outer_steps": outer_steps, "failed": None}
        try:
            result = run_simulation(RunOptions(
                input=str(work / "input.xml"), models=tuple(models.items()), workdir=str(work),
                hydrogen_mass=hydrogen_mass, dtype=dtype, driver_options={"lr_cutoff": None},
                address=f"bmts-{case.name}-{time.time_ns() % 10**8}", timeout_s=900, quiet=True))
            record["calls"] = result.calls
        except RunFailed as error:  # e.g. the bond guard: the integration went unstable
            record["failed"] = str(error).split(";")[0]
            record["calls"] = {}
        record["wall_s"] = time.perf_counter() - started
        record.update(conserved_figures(work / "sim.out", atoms))
    ms_outer = None if record["failed"] else record["calls"].get("slow", {}).get("ms_per_call")
    record["ms_per_outer_step"] = ms_outer
    record["ps_per_hour"] = 3.6e6 / (ms_outer * FS_PER_PS / case.outer_fs) if ms_outer else None
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", help="the cheap inner model (a distilled student)")
    parser.add_argument("--slow", default=f"so3lr:{SO3LR_DIR}", help="the reference model (default: SO3LR)")
    parser.add_argument("--structure", type=Path, default=DEFAULT_STRUCTURE, help="starting structure (Å)")
    parser.add_argument("--ps", type=float, default=1.0, help="simulated ps per case")
    parser.add_argument("--hydrogen-mass", type=float, default=4.0, help="amu of every hydrogen")
    parser.add_argument("--velocity-temperature", type=float, default=600.0,
                        help="K of the starting velocities (NVE: about half of it stays as kinetic energy)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=31415)
    parser.add_argument("--cases", default=",".join(c.name for c in CASES))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    cases = chosen_cases(parser, args, CASES + EXTRA_CASES, describe=Case.what)
    if cases is None:
        return 0
    if any(case.mts for case in cases) and not args.fast:
        parser.error("the MTS cases need --fast MODEL")

    from so3k_driver.evaluation.compilation_cache import use_persistent_cache

    use_persistent_cache()
    records = []
    for case in cases:
        print(f"{case.name}: {case.what()}, {args.ps:g} ps ...", file=sys.stderr, flush=True)
        record = run_case(case, args.slow, args.fast, args.structure, args.ps, args.hydrogen_mass,
                          args.velocity_temperature, args.dtype, args.seed)
        records.append(record)
        if record["failed"]:
            print(f"  FAILED after {record['simulated_ps']:.3f} ps: {record['failed']}", file=sys.stderr, flush=True)
        else:
            print(f"  drift {record['drift_meV_per_ps_per_atom']:+.3f} meV/ps/atom, spread "
                  f"{record['spread_meV_per_atom']:.3f} meV/atom, {record['ms_per_outer_step']:.1f} ms per outer step, "
                  f"{record['ps_per_hour']:.1f} ps/h, <T> {record['mean_temperature_K']:.0f} K, wall "
                  f"{record['wall_s']:.0f} s", file=sys.stderr, flush=True)
        if args.json:
            write_json(args, records)

    print(f"\nNVE of {args.structure.name}, H {args.hydrogen_mass:g} amu, {args.dtype}, all pairs, {args.ps:g} ps per case; "
          f"slow {args.slow}, fast {args.fast}")
    print(f"{'case':6s} {'outer/inner fs':>15s} {'drift meV/ps/atom':>18s} {'spread meV/atom':>16s} "
          f"{'ms/outer step':>14s} {'ps/hour':>8s}")
    for r in records:
        inner = r["outer_fs"] / r["inner_steps"]
        if r["failed"]:
            print(f"{r['case']:6s} {r['outer_fs']:>7g} / {inner:<5g} unstable: stopped after {r['simulated_ps']:.3f} ps")
            continue
        print(f"{r['case']:6s} {r['outer_fs']:>7g} / {inner:<5g} {r['drift_meV_per_ps_per_atom']:>18.3f} "
              f"{r['spread_meV_per_atom']:>16.3f} {r['ms_per_outer_step']:>14.1f} {r['ps_per_hour']:>8.1f}")
    return 0


def write_json(args, records) -> None:
    meta = {"slow": args.slow, "fast": args.fast, "structure": str(args.structure), "ps": args.ps,
            "hydrogen_mass_amu": args.hydrogen_mass, "velocity_temperature_K": args.velocity_temperature,
            "dtype": args.dtype, "seed": args.seed, "host": platform.node(), "written": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    args.json.write_text(json.dumps({"meta": meta, "cases": records}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
