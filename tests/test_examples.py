"""The worked examples (examples/*/run.sh) run end to end in quick mode, as a newcomer runs them: through
the shell script, with so3k found on PATH, writing the analysis the script's header promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from so3k_driver.sampling.analysis.plumed_files import read_plumed

REPO = Path(__file__).resolve().parents[1]


def run_example(name: str, out: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OUT": str(out), **env,
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", str(REPO / "examples" / name / "run.sh"), "quick"], env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_ala3_metadynamics_example_builds_a_phi_psi_bias_and_its_free_energy_surface(tmp_path):
    out = tmp_path / "ala3"
    run_example("ala3_metad", out)
    hills = read_plumed(out / "HILLS")
    assert len(hills["height"]) == 30  # 300 steps, a hill every 10
    assert {"phi2", "psi2"} <= set(hills)
    summary = (out / "analysis" / "summary.md").read_text()
    assert "Free energy (reweighted metadynamics)" in summary and "C7eq" in summary
    assert (out / "analysis" / "fes_phi_psi.png").stat().st_size > 10_000


def test_ala15_folding_example_runs_replica_exchange_with_the_helix_torsion_bias(tmp_path):
    out = tmp_path / "ala15"
    run_example("ala15_folding", out)
    colvars = sorted(out.glob("COLVAR.T*"))
    assert len(colvars) == 4  # one per replica
    for colvar in colvars:  # biased on the helix torsions (ALPHABETA), end-to-end distance recorded beside it
        assert {"ab", "e2e"} <= set(read_plumed(colvar))
    assert [len(read_plumed(h)["height"]) for h in sorted(out.glob("HILLS.T*"))] == [10] * 4  # 100 steps, pace 10
    summary = (out / "analysis" / "summary.md").read_text()
    rows = [line.split("|")[1].strip() for line in summary.splitlines() if line.startswith("| ") and "→" in line and line[2].isdigit()]
    assert rows == ["300", "343.4", "393.1", "450"]  # geometric 300-450 K
    assert "Replica exchange:" in summary and (out / "analysis" / "replica_exchange.png").is_file()
