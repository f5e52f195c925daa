"""Where a student's energy error on one frame of a study sits: models against a reference, atom by atom.

    python bench/inspect_frame_error.py runs/ala15_folding_v13 --time 366 --temperature 300 \
        --model default --model docs/results/so3lr_student_v15/student_v15_e6.so3k \
        --reference so3lr:/work/shared/reference/so3lr --out docs/results/.../frame_366ps

For the frame of the study at TEMPERATURE (K) nearest to TIME (ps; the demultiplexed series that
`so3k analyze` uses): each model's energy minus the reference's (eV, gas phase, all pairs, float64 for the
reference), force errors per atom (eV/Å) with the worst atoms named, the shortest contacts between
atoms that are not bonded, and bond lengths against their covalent sum. Writes FRAME.extxyz (the frame,
labelled by the reference) and report.json to --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def contacts(numbers, positions, count: int) -> list[dict]:
    """The ``count`` shortest distances (Å) between atoms three or more bonds apart."""
    from close_contacts import separated_pairs  # bench/, next to this script

    from so3k_driver.evaluation.topology import atom_label

    pairs = separated_pairs(numbers, positions)
    distances = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=-1)
    return [{"atoms": [atom_label(numbers, int(i)), atom_label(numbers, int(j))], "distance_A": round(float(d), 3)}
            for d, (i, j) in sorted(zip(distances, pairs), key=lambda row: row[0])[:count]]


def stretched_bonds(numbers, positions, count: int) -> list[dict]:
    """The ``count`` bonds longest against the sum of their covalent radii."""
    from so3k_driver.evaluation.topology import atom_label, bond_pairs, covalent_radii

    radii = covalent_radii(numbers)
    pairs = bond_pairs(numbers, positions)
    ratios = [(np.linalg.norm(positions[i] - positions[j]) / (radii[i] + radii[j]), i, j) for i, j in pairs]
    ratios.sort(reverse=True)
    return [{"atoms": [atom_label(numbers, i), atom_label(numbers, j)], "length_over_covalent": round(float(r), 3)}
            for r, i, j in ratios[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--time", type=float, required=True, help="ps")
    parser.add_argument("--temperature", type=float, default=None, help="K (default: the lowest)")
    parser.add_argument("--model", action="append", required=True, help="MODEL spec (repeatable)")
    parser.add_argument("--reference", required=True, help="MODEL spec of the reference, e.g. so3lr:DIR")
    parser.add_argument("--worst", type=int, default=8, help="atoms/contacts/bonds listed (default 8)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import ase

    from so3k_driver.evaluation.frames import predict_frames, write_extxyz
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.sampling.analysis import ipi_outputs
    from so3k_driver.sampling.analysis.end_states import largest_force_errors

    symbols, series, _ = ipi_outputs.demultiplex(Path(args.run_dir))
    chosen = series[0] if args.temperature is None else min(series, key=lambda s: abs(s.temperature - args.temperature))
    index = int(np.argmin(np.abs(chosen.time - args.time)))
    numbers = np.asarray(ipi_outputs.atomic_numbers_of(symbols))
    positions = np.asarray(chosen.positions[index], np.float64)
    frame = ase.Atoms(numbers=numbers, positions=positions)
    frame.info.update(time_ps=float(chosen.time[index]), temperature_K=chosen.temperature)

    reference = predict_frames(Potential.load(args.reference, dtype="float64", lr_cutoff=None), [frame],
                               description="reference")[0]
    e_ref, f_ref = reference.get_potential_energy(), reference.get_forces()
    report = {"run_dir": args.run_dir, "time_ps": float(chosen.time[index]), "temperature_K": chosen.temperature,
              "reference": args.reference, "models": {},
              "shortest_nonbonded_contacts": contacts(numbers, positions, args.worst),
              "most_stretched_bonds": stretched_bonds(numbers, positions, args.worst)}
    print(f"frame at {report['time_ps']:.1f} ps, {chosen.temperature:g} K; reference energy {e_ref:.4f} eV")
    for spec in args.model:
        predicted = predict_frames(Potential.load(spec, lr_cutoff=None), [frame], description=spec, quiet=True)[0]
        error = predicted.get_forces() - f_ref
        worst = largest_force_errors(numbers, error, args.worst)
        for w in worst:
            w["reference_force_eV_per_A"] = float(np.linalg.norm(f_ref[w["index"]]))
        record = {"energy_minus_reference_eV": float(predicted.get_potential_energy() - e_ref),
                  "force_mae_meV_per_A": float(np.abs(error).mean() * 1000), "worst_atoms": worst}
        report["models"][spec] = record
        print(f"{spec}: E - E_ref {record['energy_minus_reference_eV']:+.3f} eV, force MAE "
              f"{record['force_mae_meV_per_A']:.1f} meV/Å; worst atoms "
              + ", ".join(f"{w['atom']} {w['eV_per_A']:.2f}" for w in record["worst_atoms"][:4]))
    print("shortest non-bonded contacts: " + ", ".join(f"{'-'.join(c['atoms'])} {c['distance_A']:.2f} Å"
                                                      for c in report["shortest_nonbonded_contacts"][:4]))
    print("most stretched bonds (length / covalent sum): " + ", ".join(
        f"{'-'.join(b['atoms'])} {b['length_over_covalent']:.2f}" for b in report["most_stretched_bonds"][:4]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_extxyz([reference], out / f"frame_{report['time_ps']:.1f}ps.extxyz")
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}/report.json")


if __name__ == "__main__":
    main()
