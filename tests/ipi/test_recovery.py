"""ipi/recovery.py: outputs cut back to a checkpoint before a resume (the replica-exchange log here;
properties, trajectories and PLUMED files in tests/ipi/test_faults.py and tests/sampling)."""

from so3k_driver.ipi import recovery

# i-PI 3.3.1 writes an exchange with its 0-based loop index k; the checkpoint after loop index k has
# <step> k + 1 (a finished 100-step study: last exchange line 99, RESTART step 100)
CHECKPOINT = """<simulation>
  <output prefix='sim'> <properties filename='out' stride='10'> [ step ] </properties> </output>
  <step> {step} </step>
  <smotion mode='multi'>
    <smotion mode='metad'> <metad> <metaff> [ plumed0 ] </metaff> </metad> </smotion>
    <smotion mode='remd'> <remd> <stride> 2 </stride> {swapfile} </remd> </smotion>
  </smotion>
</simulation>
"""
SWAPS = "         2     1     0\n         4     0     1\n         6     0     1\n         8     1     0\n        10  1"


def test_exchanges_after_the_checkpoint_are_cut(tmp_path):
    (tmp_path / "sim.remd_idx").write_text(SWAPS)
    checkpoint = tmp_path / "sim.restart_0"
    checkpoint.write_text(CHECKPOINT.format(step=6, swapfile=""))  # i-PI's default name, remd_idx
    changed = recovery.truncate_outputs(str(tmp_path), str(checkpoint))
    assert changed == [str(tmp_path / "sim.remd_idx")]
    # exchange 6 was made in loop index 6, i.e. after the state of step 6: the resumed run makes it again
    assert (tmp_path / "sim.remd_idx").read_text() == "         2     1     0\n         4     0     1\n"


def test_a_named_swap_file_and_a_line_cut_by_a_kill(tmp_path):
    (tmp_path / "sim.swaps").write_text(SWAPS)
    checkpoint = tmp_path / "RESTART"
    checkpoint.write_text(CHECKPOINT.format(step=100, swapfile="<swapfile> swaps </swapfile>"))
    assert recovery.truncate_outputs(str(tmp_path), str(checkpoint)) == [str(tmp_path / "sim.swaps")]
    assert (tmp_path / "sim.swaps").read_text() == SWAPS[: SWAPS.rindex("\n") + 1]  # only the cut line goes
    assert recovery.truncate_outputs(str(tmp_path), str(checkpoint)) == []  # nothing more to cut


def test_no_replica_exchange_no_swap_file():
    from xml.etree import ElementTree

    root = ElementTree.fromstring("<simulation><smotion mode='metad'/></simulation>")
    assert recovery.swap_file(root, "/w", "sim") is None
