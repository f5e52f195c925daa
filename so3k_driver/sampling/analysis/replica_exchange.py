"""How well a replica-exchange run mixes: acceptance per temperature pair, round trips, walks.

What i-PI 3.3.1 does (``ipi/engine/smotion/remd.py``): at every MD step it tries to swap the
ensembles (temperature, and the bias of that temperature) of *every pair* of configurations, each
pair with probability 1/stride, so a pair is tried ``steps / stride`` times on average, neighbours
and distant pairs alike. After a step with an accepted swap it writes one line to
``PREFIX.remd_idx``: ``step p_0 … p_{n-1}``, where ``p_k`` is the index of the temperature that
configuration ``k`` (output ``T-k_*``) holds from then on. Attempts are not written, so acceptance is
accepted swaps over expected attempts. With several swaps in one step (common with many replicas and a
small stride) the file shows only their product, a cycle of configurations; the swaps are recovered as
the fewest swaps, in i-PI's loop order, that make it, and a cycle that several such sequences make
shares its count between them.

A round trip is a configuration's walk from the lowest temperature to the highest and back: the
number of round trips is what decorrelates the lowest-temperature ensemble, far more than the
acceptance alone.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...ipi.properties import complete_rows

PLOT = "replica_exchange.png"
MAX_CYCLE = 6  # 15 pairs choose 5 = 3003 candidate sequences; longer cycles are counted, not attributed


@dataclass
class ExchangeStatistics:
    temperatures: list[float]     # K, ascending; index = temperature index of the swap file
    steps: int                    # MD steps the run covers
    stride: float | None          # i-PI's <remd><stride>: each pair tried with probability 1/stride per step
    accepted: int                 # accepted swaps (single swaps plus those inside multi-swap steps)
    pair_accepted: np.ndarray     # (T, T) accepted swaps between temperature indices i < j (upper triangle);
                                  # several swaps in one step that i-PI's loop order leaves ambiguous share a count
    unattributed: int             # accepted swaps in cycles of more than MAX_CYCLE configurations
    round_trips: list[int]        # per configuration: lowest → highest → lowest temperature
    walk_steps: np.ndarray        # (R + 1,) step of each permutation, the first the run's start
    walks: np.ndarray             # (R + 1, n) temperature index of each configuration from that step on

    @property
    def expected_attempts(self) -> float | None:
        """Tries per pair of temperatures: steps / stride (None when the stride is unknown)."""
        return self.steps / self.stride if self.stride else None

    def temperature_indices_at(self, steps) -> np.ndarray:
        """(S, n) temperature index of each configuration in the frames of MD steps ``steps``: a swap
        written at step s shows in the outputs from step s + 1 on (as i-PI 3.3.1 writes them)."""
        return self.walks[np.searchsorted(self.walk_steps[1:], np.asarray(steps), side="left")]

    def neighbour_acceptance(self) -> list[float | None]:
        """Accepted / expected attempts for each pair of neighbouring temperatures (i, i + 1)."""
        attempts = self.expected_attempts
        return [float(self.pair_accepted[i, i + 1] / attempts) if attempts else None
                for i in range(len(self.temperatures) - 1)]

    def as_dict(self) -> dict:
        acceptance = self.neighbour_acceptance()
        return {"temperatures_K": self.temperatures, "steps": self.steps, "stride": self.stride,
                "accepted_swaps": self.accepted, "unattributed_swaps": self.unattributed,
                "expected_attempts_per_pair": self.expected_attempts,
                "neighbour_pairs": [{"temperatures_K": [self.temperatures[i], self.temperatures[i + 1]],
                                     "accepted": float(self.pair_accepted[i, i + 1]), "acceptance": acceptance[i]}
                                    for i in range(len(self.temperatures) - 1)],
                "distant_pairs_accepted": float(np.triu(self.pair_accepted, 2).sum()),
                "round_trips": self.round_trips}


def read_swaps(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps (R,), permutations (R, n)) of the accepted swaps in '<prefix>.remd_idx', or None
    without such a file. A killed run's last, cut line is left out."""
    files = sorted(Path(run_dir).glob("*.remd_idx"))
    if not files:
        return None
    rows = complete_rows(files[0])
    if rows.shape[1] < 3:  # nothing written yet: (0, 0) or a file of cut lines
        return np.zeros(0, dtype=int), np.zeros((0, 0), dtype=int)
    return rows[:, 0].astype(int), rows[:, 1:].astype(int)


def exchange_statistics(run_dir: Path, temperatures, steps: int, stride: float | None) -> ExchangeStatistics | None:
    """Mixing statistics of a replica-exchange run (None without a swap file).

    temperatures: the run's temperatures in K (ascending, as the swap file's indices); steps: the MD
    steps it covers; stride: i-PI's <remd><stride> (from the input), None if unknown."""
    swaps = read_swaps(run_dir)
    if swaps is None:
        return None
    swap_steps, permutations = swaps
    n = len(temperatures)
    if permutations.shape[1] not in (0, n):
        raise ValueError(f"the swap file of {run_dir} has {permutations.shape[1]} replicas, the run {n} temperatures")
    walks = np.vstack([np.arange(n)[None, :], permutations.reshape(-1, n)])
    pair_accepted = np.zeros((n, n))
    accepted = unattributed = 0
    for before, after in zip(walks[:-1], walks[1:]):
        for cycle in _cycles(before, after):
            accepted += len(cycle) - 1  # a k-cycle takes at least k - 1 swaps
            decompositions = _swap_sequences(cycle, before, after)
            if not decompositions:
                unattributed += len(cycle) - 1
            for pairs in decompositions:  # equally likely: each gets its share
                for i, j in pairs:
                    pair_accepted[i, j] += 1 / len(decompositions)
    return ExchangeStatistics([float(t) for t in temperatures], int(steps), stride, accepted, pair_accepted,
                              unattributed, [round_trips(walks[:, k], n) for k in range(n)],
                              np.concatenate([[0], swap_steps]), walks)


def _cycles(before: np.ndarray, after: np.ndarray) -> list[np.ndarray]:
    """The cycles (arrays of configuration indices) that take the permutation ``before`` to ``after``."""
    where = {int(t): k for k, t in enumerate(before)}  # temperature index -> configuration before
    changed = set(np.flatnonzero(before != after).tolist())
    cycles = []
    while changed:
        start = changed.pop()
        cycle, k = [start], where[int(after[start])]  # the configuration that held start's new temperature
        while k != start:
            changed.discard(k)
            cycle.append(k)
            k = where[int(after[k])]
        cycles.append(np.array(cycle))
    return cycles


def _swap_sequences(cycle: np.ndarray, before: np.ndarray, after: np.ndarray) -> list[list[tuple[int, int]]]:
    """Every way i-PI can have made one cycle in one step with the fewest swaps: len(cycle) - 1 swaps of
    configuration pairs (i, j), j < i, tried in i-PI's loop order (i ascending, then j ascending), each
    given as the temperature-index pairs it exchanged. Empty for cycles longer than MAX_CYCLE."""
    if len(cycle) > MAX_CYCLE:
        return []
    members = sorted(int(k) for k in cycle)
    loop_order = [(i, j) for i in members for j in members if j < i]
    target = after[members]
    found = []
    for chosen in itertools.combinations(loop_order, len(cycle) - 1):
        state, pairs = before.copy(), []
        for i, j in chosen:
            pairs.append((int(min(state[i], state[j])), int(max(state[i], state[j]))))
            state[i], state[j] = state[j], state[i]
        if np.array_equal(state[members], target):
            found.append(pairs)
    return found


def round_trips(walk: np.ndarray, count: int) -> int:
    """Completed lowest → highest → lowest trips of one configuration's walk of temperature indices
    (a walk that starts at the top counts from its first visit to the bottom)."""
    trips, state = 0, None
    for index in walk:
        if index == 0:
            trips += state == "top"
            state = "bottom"
        elif index == count - 1 and state == "bottom":
            state = "top"
    return trips


def markdown(stats: ExchangeStatistics, ps_per_step: float | None) -> list[str]:
    lines = [f"Replica exchange: {stats.accepted} accepted swaps in {stats.steps} steps"]
    if stats.expected_attempts:
        lines[0] += (f"; i-PI tries every pair of temperatures, each {stats.expected_attempts:.0f} times "
                     f"on average (stride {stats.stride:g})")
    lines[0] += "."
    acceptance = stats.neighbour_acceptance()
    t = stats.temperatures
    pairs = ", ".join(f"{t[i]:g}↔{t[i + 1]:g} K {_count(stats.pair_accepted[i, i + 1])}"
                      + (f" ({100 * acceptance[i]:.0f} %)" if acceptance[i] is not None else "")
                      for i in range(len(t) - 1))
    lines.append(f"Neighbour swaps accepted (acceptance): {pairs}; between non-neighbours: "
                 f"{_count(np.triu(stats.pair_accepted, 2).sum())}"
                 + (f"; in cycles too long to attribute: {stats.unattributed}" if stats.unattributed else "")
                 + ".")
    total = sum(stats.round_trips)
    count = len(stats.round_trips)
    per = (f" (each configuration one per {stats.steps * ps_per_step * count / total:.1f} ps on average)"
           if total and ps_per_step else "")
    lines.append(f"Round trips {t[0]:g} → {t[-1]:g} → {t[0]:g} K per configuration: "
                 f"{', '.join(str(r) for r in stats.round_trips)}; {total} in all{per}.")
    return lines


def _count(value: float) -> str:
    """A swap count, shared counts of ambiguous steps with one decimal."""
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def plot(path, stats: ExchangeStatistics, ps_per_step: float | None) -> None:
    """Left: each configuration's temperature over time (its walk, one row each); right: neighbour acceptance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    scale = ps_per_step or 1.0
    sample_steps = np.linspace(0, stats.steps, 2000)  # one column per sample: swaps between samples merge
    indices = stats.temperature_indices_at(sample_steps).T  # (n, samples)
    count = len(stats.temperatures)
    colours = plt.get_cmap("coolwarm", count)
    image = left.imshow(indices, aspect="auto", interpolation="nearest", cmap=colours, vmin=-0.5, vmax=count - 0.5,
                        extent=(0, stats.steps * scale, indices.shape[0] - 0.5, -0.5))
    bar = fig.colorbar(image, ax=left, ticks=range(count))
    bar.ax.set_yticklabels([f"{t:g}" for t in stats.temperatures])
    bar.set_label("temperature (K)")
    left.set_yticks(range(indices.shape[0]), [f"T-{k} ({stats.round_trips[k]} round trips)"
                                              for k in range(indices.shape[0])], fontsize=7)
    left.set(xlabel="time (ps)" if ps_per_step else "MD step", title="temperature of each configuration over time")
    acceptance = stats.neighbour_acceptance()
    labels = [f"{stats.temperatures[i]:g}–{stats.temperatures[i + 1]:g}" for i in range(len(acceptance))]
    if all(a is not None for a in acceptance):
        right.bar(labels, acceptance)
        right.set(ylabel="acceptance (accepted / tried, 0–1)", ylim=(0, 1))
    else:
        right.bar(labels, [stats.pair_accepted[i, i + 1] for i in range(len(acceptance))])
        right.set(ylabel="accepted swaps (count)")
    right.set(xlabel="neighbouring temperatures (K)", title="swaps between neighbours")
    right.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
