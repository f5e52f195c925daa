"""Interpolate the parameters of two models of one architecture (issue #11: a fine-tune that went too far).

    python bench/interpolate_models.py A.so3k B.so3k --weight 0.5 -o MIX.so3k

Writes (1 - w) * A + w * B, leaf by leaf, as a ``.so3k`` file whose metadata names both sources and w.
Meant for a fine-tune B started from A (same configuration, same species): such pairs usually stay in one
basin of the loss, so the path between them trades what the fine-tune gained against what it broke
("model soups"; Wortsman et al. 2022). Whether it does here is measured, never assumed
(``bench/errors_by_shape.py`` on held-out frames).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_a", help="model spec (w = 0)")
    parser.add_argument("model_b", help="model spec (w = 1), a fine-tune of A")
    parser.add_argument("--weight", type=float, required=True, help="w, the share of B (0 < w < 1)")
    parser.add_argument("-o", "--out", required=True, help="the interpolated .so3k file")
    args = parser.parse_args()
    if not 0.0 < args.weight < 1.0:
        raise SystemExit(f"--weight {args.weight}: give a share of B strictly between 0 and 1")

    from so3k_driver.io.model_files import flatten, load_model, save_model, unflatten

    config_a, params_a, header_a = load_model(args.model_a)
    config_b, params_b, header_b = load_model(args.model_b)
    if json.dumps(config_a.to_dict(), sort_keys=True) != json.dumps(config_b.to_dict(), sort_keys=True):
        raise SystemExit(f"{args.model_a} and {args.model_b} differ in configuration; they cannot be interpolated")
    if "committee_size" in header_a or "committee_size" in header_b:
        raise SystemExit("give single models, not committees")
    flat_a, flat_b = flatten(params_a), flatten(params_b)
    if flat_a.keys() != flat_b.keys() or any(flat_a[k].shape != flat_b[k].shape for k in flat_a):
        raise SystemExit(f"{args.model_a} and {args.model_b} have different parameter trees")
    w = args.weight
    mixed = {k: (1.0 - w) * np.asarray(flat_a[k], np.float64) + w * np.asarray(flat_b[k], np.float64)
             for k in flat_a}
    change = {k: float(np.linalg.norm(np.asarray(flat_b[k]) - np.asarray(flat_a[k]))
                       / max(float(np.linalg.norm(flat_a[k])), 1e-30)) for k in flat_a}
    save_model(args.out, config_a, unflatten(mixed), metadata={
        "interpolated": {"a": args.model_a, "b": args.model_b, "weight_of_b": w}})
    largest = sorted(change.items(), key=lambda item: -item[1])[:3]
    print(f"wrote {args.out}: {1 - w:g} x {args.model_a} + {w:g} x {args.model_b}; "
          f"largest relative change A -> B: " + ", ".join(f"{k} {v:.2g}" for k, v in largest))


if __name__ == "__main__":
    sys.exit(main())
