"""Speed/accuracy frontier of distilled students, measured in one run: a table, OUT.json and a plot.

    python bench/bench_frontier.py MODEL.so3k [MODEL.so3k ...] --test TEST.extxyz --out OUT.json \
        [--teacher so3lr:DIR] [--plot frontier.png] [--rounds 5] [--calls 5]

accuracy  each model (float64, all pairs) on TEST's teacher-labelled frames: force MAE/RMSE (meV/Å) and
          energy MAE per atom after one offset per atom (bench_student.accuracy).
speed     one ``Potential.evaluate`` of 8 perturbed Ac-Ala15-NHMe (8 x 162 atoms, the folding study's
          call), float32, long-range terms over all pairs; all models and the teacher timed in
          interleaved rounds after compilation; median ms and the ratio to the teacher's median.

The models of docs/active_learning.md's frontier were trained from scratch for the same wall time on one
pinned core each (bench/train_frontier.sh), so the curve compares architectures
at equal training cost, not fully trained models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_student import SO3LR_DIR, accuracy, interleaved_times, load, log, read_test_frames, speed_batch


def architecture(potential) -> str:
    c = potential.config
    long_range = "long-range terms" if c.needs_long_range_pairs else "local"
    return (f"{c.num_layers} x {c.num_features}, degrees {','.join(map(str, c.degrees))}, {c.cutoff:g} Å, "
            f"{long_range}")


def parameter_count(potential) -> int:
    import jax

    return int(sum(leaf.size for leaf in jax.tree.leaves(potential.params)))


def speeds(specs: dict[str, str], rounds: int, calls: int) -> dict:
    numbers, positions = speed_batch()
    models = {name: load(spec, "float32", None) for name, spec in specs.items()}
    return interleaved_times(models, numbers, positions, rounds, calls)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        axis.plot(row["ratio_to_teacher"], row["force_mae_meV_per_A"], "o", ms=7)
        axis.annotate(f"{row['name']}\n{row['architecture']}", (row["ratio_to_teacher"], row["force_mae_meV_per_A"]),
                      fontsize=6.5, xytext=(4, 4), textcoords="offset points")
    axis.axvline(0.25, color="0.6", ls="--", lw=1)
    axis.axhline(40.0, color="0.6", ls=":", lw=1)
    axis.set(xlabel="call time / SO3LR's (8 × 162 atoms, float32, all pairs)",
             ylabel="force MAE against SO3LR (meV/Å, held-out frames)",
             title="students at equal training time: speed against accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model files (.so3k)")
    parser.add_argument("--test", required=True, help="teacher-labelled frames (extxyz, may be .xz)")
    parser.add_argument("--teacher", default=f"so3lr:{SO3LR_DIR}")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()

    frames = read_test_frames(args.test)
    # a training run's export is OUTPUT_DIR/model.so3k: name it by its folder
    names = {(Path(spec).parent.name if Path(spec).stem == "model" else Path(spec).stem): spec for spec in args.models}
    rows = []
    for name, spec in names.items():
        log(f"accuracy of {name} on {len(frames)} frames")
        result = accuracy(spec, frames)["overall"]
        potential = load(spec, "float32", None)
        rows.append({"name": name, "model": spec, "architecture": architecture(potential),
                     "parameters": parameter_count(potential), "force_mae_meV_per_A": result["force_mae_meV_per_A"],
                     "force_rmse_meV_per_A": result["force_rmse_meV_per_A"],
                     "energy_mae_meV_per_atom": result["energy_mae_meV_per_atom"]})
    times = speeds({**names, "SO3LR": args.teacher}, args.rounds, args.calls)
    teacher = times["SO3LR"]["median_ms"]
    for row in rows:
        row["call_ms"] = times[row["name"]]["median_ms"]
        row["ratio_to_teacher"] = row["call_ms"] / teacher
    print(f"\none call of 8 x 162 atoms, float32, all pairs; SO3LR {teacher:.0f} ms (median); "
          f"accuracy on {len(frames)} frames (float64)")
    print(f"{'model':<16} {'architecture':<46} {'params':>7} {'ms':>6} {'/ SO3LR':>8} {'F MAE':>7} {'F RMSE':>7} "
          f"{'E MAE':>6}")
    for row in sorted(rows, key=lambda r: r["ratio_to_teacher"]):
        print(f"{row['name']:<16} {row['architecture']:<46} {row['parameters']:7d} {row['call_ms']:6.0f} {row['ratio_to_teacher']:8.3f} "
              f"{row['force_mae_meV_per_A']:7.1f} {row['force_rmse_meV_per_A']:7.1f} "
              f"{row['energy_mae_meV_per_atom']:6.2f}")
    args.out.write_text(json.dumps({"test_frames": len(frames), "teacher": args.teacher, "times": times,
                                    "rows": rows, "units": {"call_ms": "ms", "force": "meV/Å",
                                                            "energy": "meV/atom"}}, indent=1) + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
