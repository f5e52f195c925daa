"""The force field of study inputs. Socket: i-PI's poll interval grows with the replicas, so that a
REMD step reaches the driver whole (one model call) instead of in two pieces. Direct: a batched
<ffdirect> is threaded and polled every 1 ms, so a short batch waits for late replicas."""

import re

import pytest

from so3k_driver.sampling import inputs as study_inputs
from so3k_driver.sampling.settings import MetadSettings, StudySettings


@pytest.mark.parametrize("replicas, latency", [(1, 1e-4), (2, 3e-3), (4, 6e-3), (8, 0.012), (40, 0.02)])
def test_poll_interval_is_1_5_ms_per_replica_up_to_20_ms(replicas, latency):
    assert study_inputs.socket_latency(replicas) == pytest.approx(latency)
    text = study_inputs.socket_forcefield("addr", batch_size=replicas)
    assert float(re.search(r"<latency> (\S+) </latency>", text).group(1)) == pytest.approx(latency)
    assert f"<batch_size> {replicas} </batch_size>" in text


def test_a_remd_study_input_carries_the_latency_of_its_replicas():
    settings = StudySettings(structure="mol.xyz", model="ala3-xtb", temperatures="300:450:8", steps=10,
                             metad=MetadSettings(cv="none"))
    forcefield = study_inputs.socket_forcefield("addr", batch_size=len(settings.temperatures))
    text = study_inputs.study_xml(settings, forcefield, None)
    assert "<latency> 0.012 </latency>" in text and text.count("<instance>") == 8


@pytest.mark.parametrize("replicas", [2, 8])
def test_a_batched_direct_forcefield_is_threaded_and_polled_every_millisecond(replicas):
    """i-PI flushes a short batch after batch_size polls without a new request: at its default 1e-4 s
    an 8-replica step of Ac-Ala3-NHMe went out in two calls on 8 % of the steps (bench/bench_remd_step.py)."""
    text = study_inputs.direct_forcefield("pes.py", "pes.json", batch_size=replicas)
    assert "threaded='true'" in text and f"<batch_size> {replicas} </batch_size>" in text
    latency = float(re.search(r"<latency> (\S+) </latency>", text).group(1))
    assert latency == pytest.approx(study_inputs.DIRECT_BATCH_LATENCY_S) and latency == pytest.approx(1e-3)


def test_a_single_system_direct_forcefield_is_evaluated_in_i_pis_own_thread():
    text = study_inputs.direct_forcefield("pes.py", "pes.json", batch_size=1)
    assert "threaded='false'" in text and "<latency>" not in text
