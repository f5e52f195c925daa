"""Replica-exchange mixing from i-PI's swap file: swaps attributed to temperature pairs, round
trips, acceptance against i-PI's way of trying swaps (every pair, probability 1/stride per step)."""

import numpy as np
import pytest

from so3k_driver.sampling.analysis import replica_exchange
from so3k_driver.sampling.analysis.replica_exchange import exchange_statistics, round_trips

# configuration k holds temperature index p_k after each line's step; the run starts at the identity
SWAPS = ("4 1 0 2\n"     # configurations 0, 1 swap temperatures 0 <-> 1
         "9 1 2 0\n"     # configurations 1, 2 swap temperatures 0 <-> 2 (not neighbours)
         "12 2 1 0\n"    # configurations 0, 1 swap temperatures 1 <-> 2
         "20 0 2 1\n")   # three configurations move in one step: a 3-cycle of two swaps, made either by
                         # (1,0) then (2,0) [temperatures 1<->2, 0<->1] or by (2,0) then (2,1) [0<->2, 1<->2]


def test_swaps_are_attributed_to_temperature_pairs_and_walks_follow_the_file(tmp_path):
    (tmp_path / "sim.remd_idx").write_text(SWAPS)
    stats = exchange_statistics(tmp_path, [300.0, 350.0, 400.0], steps=40, stride=10)
    assert stats.accepted == 5 and stats.unattributed == 0
    # the 3-cycle's two decompositions in i-PI's loop order share it: half a swap to each of their pairs
    np.testing.assert_allclose(stats.pair_accepted[[0, 0, 1], [1, 2, 2]], [1.5, 1.5, 2.0])
    assert stats.walks[:, 0].tolist() == [0, 1, 1, 2, 0]
    assert stats.round_trips == [1, 0, 0]  # configuration 2 starts at the top: top -> bottom is no round trip
    assert stats.temperature_indices_at([0, 4, 5, 40]).tolist() == [[0, 1, 2], [0, 1, 2], [1, 0, 2], [0, 2, 1]]
    assert stats.expected_attempts == 4 and stats.neighbour_acceptance() == [0.375, 0.5]
    record = stats.as_dict()
    assert record["distant_pairs_accepted"] == 1.5 and record["round_trips"] == [1, 0, 0]


def test_two_disjoint_swaps_in_one_step_are_both_attributed(tmp_path):
    (tmp_path / "sim.remd_idx").write_text("3 1 0 3 2\n")
    stats = exchange_statistics(tmp_path, [300.0, 330.0, 360.0, 400.0], steps=10, stride=None)
    assert stats.accepted == 2 and stats.unattributed == 0
    assert stats.pair_accepted[0, 1] == 1 and stats.pair_accepted[2, 3] == 1
    assert stats.neighbour_acceptance() == [None, None, None]  # unknown stride: counts only


def test_a_cycle_too_long_to_decompose_is_counted_not_attributed(tmp_path):
    (tmp_path / "sim.remd_idx").write_text("3 1 2 3 4 5 6 0\n")  # 7 configurations in one cycle: 6 swaps
    stats = exchange_statistics(tmp_path, [300.0 + 20 * k for k in range(7)], steps=10, stride=2)
    assert stats.accepted == 6 and stats.unattributed == 6 and stats.pair_accepted.sum() == 0


def test_round_trips_count_bottom_top_bottom():
    assert round_trips(np.array([0, 1, 2, 1, 0, 2, 0]), 3) == 2
    assert round_trips(np.array([1, 2, 1, 0, 1]), 3) == 0
    assert round_trips(np.array([0, 1, 1, 0]), 3) == 0


def test_acceptance_recovers_the_true_rate_of_a_simulated_ipi_exchange(tmp_path):
    """i-PI 3.3.1's loop (remd.py): every step, every pair of configurations tried with probability
    1/stride, accepted with the pair's probability; a line after each step with an accepted swap.
    With 6 pairs and stride 10, about 10 % of the swaps share their step with another."""
    rng = np.random.default_rng(7)
    temperatures, stride, steps = [300.0, 340.0, 385.0, 436.0], 10, 20000
    n = len(temperatures)
    accept = {1: 0.5, 2: 0.2, 3: 0.05}  # by distance between temperature indices
    permutation, lines = np.arange(n), []
    for step in range(steps):
        swapped = False
        for i in range(n):
            for j in range(i):
                if rng.uniform() > 1 / stride:
                    continue
                if rng.uniform() < accept[abs(permutation[i] - permutation[j])]:
                    permutation[i], permutation[j] = permutation[j], permutation[i]
                    swapped = True
        if swapped:
            lines.append(f"{step} " + " ".join(map(str, permutation)))
    (tmp_path / "sim.remd_idx").write_text("\n".join(lines) + "\n")
    stats = exchange_statistics(tmp_path, temperatures, steps, stride)
    tried = steps / stride  # 2000 per pair: binomial and Poisson noise ~0.016 on 0.5
    assert np.allclose(stats.neighbour_acceptance(), 0.5, atol=0.06)
    assert abs(stats.pair_accepted[0, 2] / tried - 0.2) < 0.04 and abs(stats.pair_accepted[0, 3] / tried - 0.05) < 0.02
    assert stats.unattributed == 0 and abs(stats.pair_accepted.sum() - stats.accepted) < 1e-6
    assert all(trips > 10 for trips in stats.round_trips)


def test_markdown_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "sim.remd_idx").write_text(SWAPS)
    stats = exchange_statistics(tmp_path, [300.0, 350.0, 400.0], steps=40, stride=10)
    text = "\n".join(replica_exchange.markdown(stats, ps_per_step=0.002))
    assert "300↔350 K 1.5 (38 %)" in text and "1 in all (each configuration one per 0.2 ps on average)" in text
    replica_exchange.plot(tmp_path / "walks.png", stats, 0.002)
    assert (tmp_path / "walks.png").stat().st_size > 5000


def test_a_swap_file_of_another_width_is_refused(tmp_path):
    (tmp_path / "sim.remd_idx").write_text("4 1 0\n")
    with pytest.raises(ValueError, match="2 replicas, the run 3 temperatures"):
        exchange_statistics(tmp_path, [300.0, 350.0, 400.0], steps=10, stride=10)


def test_the_stride_is_read_from_an_ipi_input():
    from conftest import REPO
    from so3k_driver.ipi import ipi_xml

    assert ipi_xml.exchange_stride(ipi_xml.load(str(REPO / "ipi_inputs" / "remd.xml")).getroot()) == 2
    assert ipi_xml.exchange_stride(ipi_xml.load(str(REPO / "ipi_inputs" / "nvt.xml")).getroot()) is None
