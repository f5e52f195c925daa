"""Harmonic free energies of the distinct minima of ``so3k minima --harmonic T[,T...]``.

For each of the lowest ``max_minima`` minima: the Hessian by central differences of the forces
(:func:`so3k_driver.evaluation.vibrations.finite_difference_hessian`, 6N structures in batched calls),
the normal modes, and at each temperature T

    F(T) = E + F_vib,quantum(T) + F_rot,classical(T)     (eV)

(vibrations as quantum harmonic oscillators, the molecule as a classical rigid rotor with symmetry
number 1; translation is the same for every minimum of one molecule and left out). Differences of F
between minima of the same atoms rank them as a harmonic superposition picture does: soft minima
gain entropy, stiff ones lose it. Imaginary modes (a saddle point, or a minimum not converged tightly
enough) are counted and left out of F; such minima are flagged. The classical vibrational free energy,
which classical MD samples and which does not depend on the masses, is reported as well, and both again
with Grimme's quasi-RRHO entropy for modes below ~100 cm^-1 (:func:`vibrations.quasi_rrho_free_energy`),
whose F swings about half as much with the 1-3 cm^-1 modes of floppy chains as the harmonic one; ranked as
``free_energy_qrrho_eV`` (quantum). Every minimum's wavenumbers are kept, so other schemes need no new
Hessians.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from ..evaluation import vibrations
from ..progress import Progress

FREE_ENERGY_PLOT = "free_energies.png"
# The treatments of the vibrations that rank the minima (quantum vibrations + classical rotor): key suffix
# of free_energy{suffix}_eV and vibrational_quantum{suffix}_eV, and the name printed and plotted.
RANKINGS = (("", "harmonic"), ("_qrrho", "quasi-RRHO"))


def minimum_thermochemistry(potential, numbers, positions, temperatures, **hessian_options) -> dict:
    """Frequencies (cm^-1) and free energies (eV, keyed by temperature in K as text) of one minimum;
    hessian_options (step, total_charge, unpaired_electrons, ...) go to finite_difference_hessian."""
    hessian = vibrations.finite_difference_hessian(potential, numbers, positions, **hessian_options)
    masses = vibrations.atomic_masses(numbers)
    modes = vibrations.normal_modes(hessian, positions, masses)
    real = modes.frequencies_cm1[modes.frequencies_cm1 > 0]
    per_temperature = lambda function, **options: {f"{t:g}": function(real, t, **options)  # noqa: E731
                                                   for t in temperatures}
    return {
        "frequencies_cm1": np.round(modes.frequencies_cm1, 3).tolist(),
        "imaginary_modes": modes.imaginary_count,
        "rigid_body_leak_cm1": round(modes.rigid_body_leak_cm1, 3),
        "zero_point_energy_eV": vibrations.zero_point_energy(real),
        "vibrational_quantum_eV": per_temperature(vibrations.harmonic_free_energy),
        "vibrational_classical_eV": per_temperature(vibrations.harmonic_free_energy, quantum=False),
        "vibrational_quantum_qrrho_eV": per_temperature(vibrations.quasi_rrho_free_energy),
        "vibrational_classical_qrrho_eV": per_temperature(vibrations.quasi_rrho_free_energy, quantum=False),
        "rotational_eV": {f"{t:g}": vibrations.rotational_free_energy(positions, masses, t) for t in temperatures},
    }


def harmonic_free_energies(potential, minima: list, temperatures, max_minima: int, show_progress: bool = True,
                           **charges) -> dict:
    """Thermochemistry of the lowest ``max_minima`` of ``minima`` (so3k_driver.sampling.minima.Minimum,
    sorted by energy): per minimum and in ``free_energy_eV[T]`` / ``relative_free_energy_eV[T]`` lists
    in the order of ``minima``. Minima of different atoms are compared only when they share the lowest
    minimum's atoms; the others get None."""
    start = time.perf_counter()
    chosen = minima[:max_minima]
    entries = []
    display = Progress(total=len(chosen), description="harmonic free energies", unit="minimum") \
        if show_progress else None
    with display or contextlib.nullcontext():
        for k, minimum in enumerate(chosen):
            entry = minimum_thermochemistry(potential, minimum.atoms.numbers, minimum.atoms.positions, temperatures,
                                            **charges)
            entry["energy_eV"] = minimum.energy
            for suffix, _ in RANKINGS:
                vibrational = entry[f"vibrational_quantum{suffix}_eV"]
                entry[f"free_energy{suffix}_eV"] = {t: minimum.energy + vibrational[t] + entry["rotational_eV"][t]
                                                    for t in vibrational}
            entries.append(entry)
            if display is not None:
                display.update(k + 1, with_imaginary_modes=sum(e["imaginary_modes"] > 0 for e in entries))
    reference = chosen[0].atoms.numbers if chosen else None
    comparable = [np.array_equal(m.atoms.numbers, reference) for m in chosen]
    keys = [f"{t:g}" for t in temperatures]
    result = {
        "temperatures_K": [float(t) for t in temperatures],
        "minima_computed": len(chosen),
        "with_imaginary_modes": sum(e["imaginary_modes"] > 0 for e in entries),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    for suffix, _ in RANKINGS:
        name = f"free_energy{suffix}_eV"
        best = {t: int(np.argmin([e[name][t] if c else np.inf for e, c in zip(entries, comparable)])) for t in keys}
        lowest = {t: entries[best[t]][name][t] if entries else None for t in keys}
        result[name] = {t: [e[name][t] for e in entries] for t in keys}
        result[f"relative_{name}"] = {t: [e[name][t] - lowest[t] if c else None for e, c in zip(entries, comparable)]
                                      for t in keys}
        result[f"lowest_free_energy{suffix}_minimum"] = best
    result["quasi_rrho"] = {"cutoff_cm1": vibrations.QUASI_RRHO_CUTOFF_CM1,
                            "average_moment_amu_A2": round(vibrations.QUASI_RRHO_AVERAGE_MOMENT_AMU_A2, 3),
                            "reference": "Grimme, Chem. Eur. J. 18, 9955 (2012)"}
    result["minima"] = entries
    result["units"] = {"energies": "eV", "frequencies": "cm^-1", "temperatures": "K"}
    return result


def plot_free_energies(path: Path, harmonic: dict) -> None:
    """F - F_min against E - E_min (eV) per minimum, one marker set per temperature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    energies = np.array([e["energy_eV"] for e in harmonic["minima"]])
    fig, axis = plt.subplots(figsize=(6, 5))
    for (suffix, name), marker in zip(RANKINGS, "ox"):
        for t, relative in harmonic.get(f"relative_free_energy{suffix}_eV", {}).items():
            keep = [k for k, r in enumerate(relative) if r is not None]
            axis.scatter(energies[keep] - energies[keep].min(), [relative[k] for k in keep], s=18, marker=marker,
                         label=f"{t} K" if not suffix else f"{t} K, {name}")
    flagged = [k for k, e in enumerate(harmonic["minima"]) if e["imaginary_modes"]]
    if flagged:
        first = next(iter(harmonic["relative_free_energy_eV"].values()))
        axis.scatter(energies[flagged] - energies.min(), [first[k] for k in flagged], s=60, facecolors="none",
                     edgecolors="red", label="imaginary modes")
    limit = [0, max(1e-3, float(np.ptp(energies)))]
    axis.plot(limit, limit, color="grey", lw=0.7, label="F − F_min = E − E_min")
    axis.set(xlabel="E − E_min (eV)", ylabel="F − F_min (eV)",
             title=f"Harmonic free energies of the {harmonic['minima_computed']} lowest minima")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
