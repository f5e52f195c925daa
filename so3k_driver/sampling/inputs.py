"""i-PI inputs for metadynamics and replica exchange + metadynamics (REMD+METAD) of a molecule.

REMD+METAD layout (see the 3.3.1 notes): one ``<ffplumed>`` per temperature, every replica lists all
of them under ``<bias>`` with one-hot ``<bias_weights>`` (weights travel with the temperature on an
exchange, so each well-tempered METAD bias stays at its temperature), and inside
``<smotion mode='multi'>`` metad is listed BEFORE remd (the other order crashes i-PI 3.3.1 at the
first accepted swap). Units: K, fs, Å; outputs in Å, eV, ps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MODEL_FORCEFIELD = "so3k"


@dataclass
class SamplingSettings:
    temperatures: list[float] = field(default_factory=lambda: [300.0, 340.0, 385.0, 435.0])  # K
    steps: int = 200
    timestep_fs: float = 0.5
    thermostat_tau_fs: float = 100.0      # Langevin time constant
    exchange_stride: int = 10             # steps between exchange attempts
    output_stride: int = 10               # steps between trajectory frames / property lines
    seed: int = 31415
    init_file: str = "init.xyz"           # xyz with an i-PI CELL comment, Å
    prefix: str = "sim"


def socket_forcefield(address: str, batch_size: int = 1) -> str:
    """Unix-socket force field served by ``so3k serve``/``so3k run`` (or any i-PI client) at /tmp/ipi_<address>.

    batch_size > 1 lets one driver evaluate the replicas of a REMD step in one call."""
    return (f"<ffsocket name='{MODEL_FORCEFIELD}' mode='unix' pbc='false'>\n"
            f"    <address> {address} </address> <latency> 1e-4 </latency> <timeout> 600 </timeout>\n"
            f"    <batch_size> {batch_size} </batch_size>\n  </ffsocket>")


def direct_forcefield(pes_file: str, config_file: str, batch_size: int = 1) -> str:
    """In-process force field (so3k_driver/ipi/direct_pes.py) configured by a JSON file."""
    threaded = "true" if batch_size > 1 else "false"
    return (f"<ffdirect name='{MODEL_FORCEFIELD}' pbc='false' threaded='{threaded}'>\n"
            f"    <pes> custom </pes> <pes_path> {pes_file} </pes_path>\n"
            f"    <parameters> {{config: {config_file}}} </parameters> <batch_size> {batch_size} </batch_size>\n"
            f"  </ffdirect>")


def _plumed_forcefield(name: str, init_file: str, plumed_file: str) -> str:
    return (f"<ffplumed name='{name}'>\n    <file mode='xyz'> {init_file} </file>\n"
            f"    <plumed_dat> {plumed_file} </plumed_dat>\n  </ffplumed>")


def _output(s: SamplingSettings, extra_properties: str = "") -> str:
    return (f"<output prefix='{s.prefix}'>\n"
            f"    <properties stride='{s.output_stride}' filename='out'> [ step, time{{picosecond}}, "
            f"conserved{{electronvolt}}, temperature{{kelvin}}, ensemble_temperature{{kelvin}}, "
            f"potential{{electronvolt}}, ensemble_bias{{electronvolt}}{extra_properties} ] </properties>\n"
            f"    <trajectory filename='pos' stride='{s.output_stride}' format='xyz'> positions{{angstrom}} </trajectory>\n"
            f"    <checkpoint stride='{max(s.output_stride, 100)}'/>\n  </output>")


def _dynamics(s: SamplingSettings, temperature: str) -> str:
    return (f"<motion mode='dynamics'>\n          <dynamics mode='nvt'>\n"
            f"            <timestep units='femtosecond'> {s.timestep_fs} </timestep>\n"
            f"            <thermostat mode='langevin'> <tau units='femtosecond'> {s.thermostat_tau_fs} </tau> </thermostat>\n"
            f"          </dynamics>\n        </motion>")


def remd_metad_xml(s: SamplingSettings, forcefield: str, plumed_files: list[str]) -> str:
    """REMD over s.temperatures with one METAD (plumed_files[k]) per temperature."""
    if len(plumed_files) != len(s.temperatures):
        raise ValueError("one PLUMED file per temperature is needed")
    n = len(s.temperatures)
    plumed_ffs = "\n  ".join(_plumed_forcefield(f"plumed{k}", s.init_file, f) for k, f in enumerate(plumed_files))
    weights = [f"W{k}" for k in range(n)]
    instances = "\n    ".join(
        f"<instance> [ {k}, {t:g}, {', '.join('1' if j == k else '0' for j in range(n))} ] </instance>"
        for k, t in enumerate(s.temperatures))
    bias = "\n            ".join(f"<force forcefield='plumed{k}' nbeads='1'/>" for k in range(n))
    metaff = ", ".join(f"plumed{k}" for k in range(n))
    return f"""<simulation verbosity='low' safe_stride='{s.output_stride}'>
  <!-- REMD + well-tempered metadynamics: one ffplumed per temperature, one-hot bias weights -->
  {_output(s)}
  <total_steps> {s.steps} </total_steps>
  <prng> <seed> {s.seed} </seed> </prng>
  {forcefield}
  {plumed_ffs}
  <system_template>
    <labels> [ IDX, TEMP, {', '.join(weights)} ] </labels>
    {instances}
    <template>
      <system prefix='T-IDX'>
        <initialize nbeads='1'>
          <file mode='xyz'> {s.init_file} </file>
          <velocities mode='thermal' units='kelvin'> TEMP </velocities>
        </initialize>
        <forces> <force forcefield='{MODEL_FORCEFIELD}'/> </forces>
        <ensemble>
          <temperature units='kelvin'> TEMP </temperature>
          <bias>
            {bias}
          </bias>
          <bias_weights> [ {', '.join(weights)} ] </bias_weights>
        </ensemble>
        {_dynamics(s, 'TEMP')}
      </system>
    </template>
  </system_template>
  <!-- i-PI 3.3.1: metad must come BEFORE remd, otherwise the first accepted swap crashes -->
  <smotion mode='multi'>
    <smotion mode='metad'> <metad> <metaff> [ {metaff} ] </metaff> </metad> </smotion>
    <smotion mode='remd'> <remd> <stride> {s.exchange_stride} </stride> <krescale> true </krescale>
      <swapfile> remd_idx </swapfile> </remd> </smotion>
  </smotion>
</simulation>
"""


def metad_xml(s: SamplingSettings, forcefield: str, plumed_file: str) -> str:
    """Single-temperature (s.temperatures[0]) metadynamics."""
    t = s.temperatures[0]
    return f"""<simulation verbosity='low' safe_stride='{s.output_stride}'>
  {_output(s)}
  <total_steps> {s.steps} </total_steps>
  <prng> <seed> {s.seed} </seed> </prng>
  {forcefield}
  {_plumed_forcefield('plumed', s.init_file, plumed_file)}
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> {s.init_file} </file>
      <velocities mode='thermal' units='kelvin'> {t:g} </velocities>
    </initialize>
    <forces> <force forcefield='{MODEL_FORCEFIELD}'/> </forces>
    <ensemble>
      <temperature units='kelvin'> {t:g} </temperature>
      <bias> <force forcefield='plumed' nbeads='1'/> </bias>
    </ensemble>
    {_dynamics(s, str(t))}
  </system>
  <smotion mode='metad'> <metad> <metaff> [ plumed ] </metaff> </metad> </smotion>
</simulation>
"""


def ipi_xyz(atoms, box_angstrom: float = 100.0) -> str:
    """xyz text with i-PI's CELL comment (cubic box, Å); the box only matters for PLUMED without NOPBC."""
    lines = [str(len(atoms)), f"# CELL(abcABC): {box_angstrom} {box_angstrom} {box_angstrom} 90 90 90 "
             "positions{angstrom} cell{angstrom}"]
    lines += [f"{s:2s} {x:16.8f} {y:16.8f} {z:16.8f}" for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)]
    return "\n".join(lines) + "\n"
