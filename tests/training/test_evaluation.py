"""Error metrics of training/evaluation.py: overall and per element."""

import numpy as np
import pytest

from so3k_driver.training.evaluation import error_metrics, force_errors_by_element, format_element_errors


def test_force_errors_by_element_split_the_overall_error_by_atom_type():
    """Two structures (H2O, CH4) with known force errors: each element's MAE/RMSE is over its own atoms'
    components, and the atom-weighted mean of the element MAEs is the overall force MAE."""
    rng = np.random.default_rng(1)
    numbers = [np.array([8, 1, 1]), np.array([6, 1, 1, 1, 1])]
    reference = [rng.normal(size=(3, 3)), rng.normal(size=(5, 3))]
    error = {8: 0.3, 1: 0.05, 6: -0.1}  # the same offset on every component of an element's atoms
    predicted = [r + np.array([error[z] for z in n])[:, None] for n, r in zip(numbers, reference)]
    by_element = force_errors_by_element(numbers, predicted, reference)
    assert list(by_element) == ["H", "C", "O"]  # by atomic number
    assert [by_element[s]["atoms"] for s in ("H", "C", "O")] == [6, 1, 1]
    for symbol, z in (("H", 1), ("C", 6), ("O", 8)):
        assert by_element[symbol]["mae_eV_per_A"] == pytest.approx(abs(error[z]))
        assert by_element[symbol]["rmse_eV_per_A"] == pytest.approx(abs(error[z]))
    overall = error_metrics([0.0, 0.0], [0.0, 0.0], [3, 5], predicted, reference)["forces_mae_eV_per_A"]
    weighted = sum(e["mae_eV_per_A"] * e["atoms"] for e in by_element.values()) / 8
    assert weighted == pytest.approx(overall)
    assert format_element_errors(by_element) == ("forces MAE by element (meV/Å): H 50.0 (6 atoms), "
                                                 "C 100.0 (1 atom), O 300.0 (1 atom)")
    with pytest.raises(ValueError, match="7 atomic numbers for 8 force rows"):
        force_errors_by_element([numbers[0], numbers[1][:4]], predicted, reference)


def test_atom_target_metrics_skip_unlabelled_atoms_and_are_printed():
    from so3k_driver.training.evaluation import atom_target_metrics, format_metrics

    predicted = [np.array([0.1, -0.2, 0.3]), np.array([0.0, 0.5])]
    reference = [np.array([0.1, -0.1, np.nan]), np.array([0.2, np.nan])]  # NaN: no label for that atom
    m = atom_target_metrics("partial_charges", predicted, reference)
    assert m["partial_charges_mae"] == pytest.approx((0.0 + 0.1 + 0.2) / 3)
    assert m["partial_charges_rmse"] == pytest.approx(np.sqrt((0.0 + 0.01 + 0.04) / 3))
    assert atom_target_metrics("partial_charges", predicted[:1], [np.full(3, np.nan)]) == {}
    base = {"energy_mae_eV": 0.1, "energy_rmse_eV": 0.2, "energy_per_atom_mae_eV": 0.01, "forces_mae_eV_per_A": 0.1,
            "forces_rmse_eV_per_A": 0.2, "num_structures": 2}
    assert "partial charges RMSE 0.1291 e" in format_metrics(base | m)
    assert "partial charges" not in format_metrics(base)
