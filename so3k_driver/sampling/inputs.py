"""i-PI inputs of a sampling study: NVT at one temperature or replica exchange (REMD) over several,
each optionally with well-tempered metadynamics through PLUMED. Units: K, fs, Å; outputs in Å, eV, ps.

REMD+METAD layout (see the 3.3.1 notes): one ``<ffplumed>`` per temperature, every replica lists all
of them under ``<bias>`` with one-hot ``<bias_weights>`` (weights travel with the temperature on an
exchange, so each well-tempered METAD bias stays at its temperature), and inside
``<smotion mode='multi'>`` metad is listed BEFORE remd (the other order crashes i-PI 3.3.1 at the
first accepted swap). This module is the only place that layout is written: the shipped
ipi_inputs/remd_metad.xml is generated from it (so3k_driver.sampling.bundled_inputs).
"""

from __future__ import annotations

from .settings import WALKER_OUTPUT_PREFIX, StudySettings
from ..ipi.ipi_xml import masses_element

MODEL_FORCEFIELD = "so3k"
DEFAULT_PREFIX = "sim"
DEFAULT_INIT_FILE = "init.xyz"
SYSTEM_INIT_FILE = "init_{}.xyz"  # system k's own start when the systems start from different frames


def system_init_file(k) -> str:
    """The starting structure of system k (an index, or i-PI's template label IDX)."""
    return SYSTEM_INIT_FILE.format(k)


SINGLE_SYSTEM_LATENCY_S = 1e-4
LATENCY_PER_REPLICA_S = 1.5e-3
MAX_LATENCY_S = 0.02
# i-PI's default 1e-4 s flushes a batch after 0.8 ms without a new request (8 replicas): replicas that
# queue 1-2 ms apart (threads sharing the GIL) were split, 1.08 calls per step; 1 ms: 1.01
# (bench/bench_remd_step.py, docs/ipi.md). A full batch waits at most one interval for the next poll.
DIRECT_BATCH_LATENCY_S = 1e-3


def socket_latency(replicas: int) -> float:
    """i-PI's socket poll interval (s) for a study of ``replicas`` systems.

    i-PI steps the replicas in threads that queue their force requests one after another (they
    share the GIL: ~1-2 ms each on 2 busy cores); its socket thread wakes every <latency> and sends
    whatever is queued, then waits for the answer. With 1e-4 s a REMD step goes out in two pieces,
    i.e. two model calls. Waking about when the last replica has queued (1.5 ms per replica, at
    most 20 ms) sends most steps whole, at little cost: the wait overlaps i-PI's own stepping
    (measured in docs/ipi.md). One system (all its beads queued at once): 1e-4 s."""
    return SINGLE_SYSTEM_LATENCY_S if replicas <= 1 else min(MAX_LATENCY_S, LATENCY_PER_REPLICA_S * replicas)


CHECKPOINT_STRUCTURE_STEPS = 1000


def checkpoint_stride(output_stride: int, replicas: int) -> int:
    """MD steps between i-PI checkpoints: about 1000 steps of structures (1000 for one system, 1000 /
    replicas for REMD), a multiple of output_stride so a checkpoint's step has its output records.

    A checkpoint stores and writes the whole simulation: ~12 ms per Ac-Ala3-NHMe replica on 2 busy CPU
    cores, about one model call of that replica, so every 100 steps (the former default) it cost ~1 % of
    the run and every 1000 structure-steps ~0.1 %; a crash loses at most that many steps (docs/ipi.md,
    "Where a step's time goes")."""
    target = -(-CHECKPOINT_STRUCTURE_STEPS // max(replicas, 1))  # ceil
    return max(output_stride, -(-target // output_stride) * output_stride)


def socket_forcefield(address: str, batch_size: int = 1) -> str:
    """Unix-socket force field served by ``so3k serve``/``so3k run`` (or any i-PI client) at /tmp/ipi_<address>.

    batch_size > 1 (one slot per replica) lets one driver evaluate the replicas of a REMD step in one
    call; the poll interval follows from it (socket_latency)."""
    return (f"<ffsocket name='{MODEL_FORCEFIELD}' mode='unix' pbc='false'>\n"
            f"    <address> {address} </address> <latency> {socket_latency(batch_size):g} </latency> "
            f"<timeout> 600 </timeout>\n"
            f"    <batch_size> {batch_size} </batch_size>\n  </ffsocket>")


def direct_forcefield(pes_file: str, config_file: str, batch_size: int = 1) -> str:
    """In-process force field (so3k_driver/ipi/direct_pes.py) configured by a JSON file.

    batch_size > 1: i-PI's threaded <ffdirect> evaluates a batch as soon as it is full, and a short one
    after batch_size polls that brought nothing new; its poll interval is DIRECT_BATCH_LATENCY_S, so a
    replica that queues its request a few ms after the others still joins the step's one call."""
    threaded = "true" if batch_size > 1 else "false"
    latency = f"    <latency> {DIRECT_BATCH_LATENCY_S:g} </latency>\n" if batch_size > 1 else ""
    return (f"<ffdirect name='{MODEL_FORCEFIELD}' pbc='false' threaded='{threaded}'>\n"
            f"    <pes> custom </pes> <pes_path> {pes_file} </pes_path>\n{latency}"
            f"    <parameters> {{config: {config_file}}} </parameters> <batch_size> {batch_size} </batch_size>\n"
            f"  </ffdirect>")


def _plumed_forcefield(name: str, init_file: str, plumed_file: str) -> str:
    return (f"<ffplumed name='{name}'>\n    <file mode='xyz'> {init_file} </file>\n"
            f"    <plumed_dat> {plumed_file} </plumed_dat>\n  </ffplumed>")


UNCERTAINTY_OUTPUT = "uncertainty"  # <prefix>.uncertainty_0 (REMD: T-k_<prefix>.uncertainty_0)
UNCERTAINTY_EXTRAS = "energy_uncertainty,force_uncertainty"  # the committee extras so3k serves (atomic units)


def is_committee(model: str) -> bool:
    """True when the model spec is a committee file (its header has committee_size); an unreadable
    model is not one here (the run reports it)."""
    from ..errors import ModelFileError
    from ..io.model_files import load_model

    try:
        return bool(load_model(model)[2].get("committee_size"))
    except ModelFileError:
        return False


def uncertainty_trajectory(stride: int) -> str:
    """i-PI output of a committee's per-structure spread, one record per stride: a header
    '#EXTRAS(energy_uncertainty,force_uncertainty)# Step: k' and one line with the energy spread
    (hartree) then the per-atom force spreads (N values, hartree/bohr), as the driver sent them."""
    return (f"<trajectory filename='{UNCERTAINTY_OUTPUT}' stride='{stride}' "
            f"extra_type='{UNCERTAINTY_EXTRAS}'> extras </trajectory>")


def _output(s: StudySettings, prefix: str) -> str:
    uncertainty = f"\n    {uncertainty_trajectory(s.output_stride)}" if is_committee(s.model) else ""
    return (f"<output prefix='{prefix}'>\n"
            f"    <properties stride='{s.output_stride}' filename='out'> [ step, time{{picosecond}}, "
            f"conserved{{electronvolt}}, temperature{{kelvin}}, ensemble_temperature{{kelvin}}, "
            f"potential{{electronvolt}}, ensemble_bias{{electronvolt}} ] </properties>\n"
            f"    <trajectory filename='pos' stride='{s.output_stride}' format='xyz'> positions{{angstrom}} </trajectory>{uncertainty}\n"
            f"    <checkpoint stride='{checkpoint_stride(s.output_stride, s.systems)}'/>\n  </output>")


def _system(s: StudySettings, init_file: str, masses: str, temperature: str, bias: str, prefix: str = "",
            indent: int = 2) -> str:
    """One <system>: the structure, the model's forces, the ensemble at ``temperature`` (K, or a template
    label) with ``bias`` (XML after the temperature), and the dynamics; ``masses`` comes from study_xml."""
    attribute = f" prefix='{prefix}'" if prefix else ""
    lines = [f"<system{attribute}>",
             "  <initialize nbeads='1'>",
             f"    <file mode='xyz'> {init_file} </file>{masses}",
             f"    <velocities mode='thermal' units='kelvin'> {temperature} </velocities>",
             "  </initialize>",
             f"  <forces> <force forcefield='{MODEL_FORCEFIELD}'/> </forces>",
             "  <ensemble>",
             f"    <temperature units='kelvin'> {temperature} </temperature>{bias}",
             "  </ensemble>",
             f"  {_dynamics(s)}",
             "</system>"]
    return f"\n{' ' * indent}".join(lines)


def _dynamics(s: StudySettings) -> str:
    return (f"<motion mode='dynamics'>\n          <dynamics mode='nvt'>\n"
            f"            <timestep units='femtosecond'> {s.timestep_fs} </timestep>\n"
            f"            <thermostat mode='langevin'> <tau units='femtosecond'> {s.thermostat_tau_fs} </tau> </thermostat>\n"
            f"          </dynamics>\n        </motion>")


def study_xml(s: StudySettings, forcefield: str, plumed_files: list[str] | None, *, prefix: str = DEFAULT_PREFIX,
              init_file: str = DEFAULT_INIT_FILE, comment: str | None = None, numbers=None,
              system_init_file: str | None = None) -> str:
    """The i-PI input of a study: REMD when s has several temperatures, else NVT at the one;
    plumed_files: one PLUMED input per temperature (metadynamics), or None (no bias); numbers (N,):
    the atomic numbers of init_file, needed when s.hydrogen_mass is set (i-PI masses per atom);
    system_init_file: where each replica or walker starts, with i-PI's template label IDX for its index
    (e.g. init_IDX.xyz; None: every system starts from init_file, which also serves the forcefields)."""
    if plumed_files is not None and len(plumed_files) != s.systems:
        raise ValueError(f"one PLUMED file per temperature or walker is needed: {len(plumed_files)} files for "
                         f"{s.systems} systems")
    head = f"<!-- {comment} -->\n" if comment else ""
    masses = ""
    if s.hydrogen_mass is not None:
        if numbers is None:
            raise ValueError("hydrogen_mass is set: study_xml needs the atomic numbers of the structure")
        masses = masses_element(numbers, s.hydrogen_mass)
    if system_init_file is not None and s.systems == 1:
        raise ValueError("system_init_file is for several systems (replicas or walkers); one system uses init_file")
    starts = system_init_file or init_file
    if s.replica_exchange:
        return head + _remd_xml(s, forcefield, plumed_files, prefix, init_file, _on_new_line(masses, 10), starts)
    if s.walkers > 1:
        return head + _walkers_xml(s, forcefield, plumed_files, prefix, init_file, _on_new_line(masses, 10), starts)
    return head + _nvt_xml(s, forcefield, plumed_files, prefix, init_file, _on_new_line(masses, 6))


def _on_new_line(element: str, indent: int) -> str:
    return f"\n{' ' * indent}{element}" if element else ""


def _remd_xml(s: StudySettings, forcefield: str, plumed_files, prefix: str, init_file: str, masses: str,
              starts: str) -> str:
    n = len(s.temperatures)
    metad = plumed_files is not None
    if metad:
        plumed_ffs = "\n  " + "\n  ".join(_plumed_forcefield(f"plumed{k}", init_file, f)
                                          for k, f in enumerate(plumed_files))
        weights = [f"W{k}" for k in range(n)]
        one_hot = [", " + ", ".join("1" if j == k else "0" for j in range(n)) for k in range(n)]
        labels = "IDX, TEMP, " + ", ".join(weights)
        forces = "\n            ".join(f"<force forcefield='plumed{k}' nbeads='1'/>" for k in range(n))
        bias = (f"\n          <bias>\n            {forces}\n          </bias>\n"
                f"          <bias_weights> [ {', '.join(weights)} ] </bias_weights>")
        metaff = ", ".join(f"plumed{k}" for k in range(n))
        title = "REMD + well-tempered metadynamics: one ffplumed per temperature, one-hot bias weights"
        smotion_metad = (f"\n  <!-- i-PI 3.3.1: metad must come BEFORE remd, otherwise the first accepted swap crashes -->"
                         f"\n  <smotion mode='multi'>\n    <smotion mode='metad'> <metad> <metaff> [ {metaff} ] </metaff> "
                         f"</metad> </smotion>\n    ")
        smotion_end = "\n  </smotion>"
    else:
        plumed_ffs, one_hot, labels, bias = "", [""] * n, "IDX, TEMP", ""
        title = "replica exchange (REMD) over the temperatures"
        smotion_metad, smotion_end = "\n  ", ""
    instances = "\n    ".join(f"<instance> [ {k}, {t:g}{one_hot[k]} ] </instance>" for k, t in enumerate(s.temperatures))
    return f"""<simulation verbosity='low' safe_stride='{s.output_stride}'>
  <!-- {title} -->
  {_output(s, prefix)}
  <total_steps> {s.steps} </total_steps>
  <prng> <seed> {s.seed} </seed> </prng>
  {forcefield}{plumed_ffs}
  <system_template>
    <labels> [ {labels} ] </labels>
    {instances}
    <template>
      {_system(s, starts, masses, "TEMP", bias, prefix="T-IDX", indent=6)}
    </template>
  </system_template>{smotion_metad}<smotion mode='remd'> <remd> <stride> {s.exchange_stride} </stride> <krescale> true </krescale>
      <swapfile> remd_idx </swapfile> </remd> </smotion>{smotion_end}
</simulation>
"""


def _walkers_xml(s: StudySettings, forcefield: str, plumed_files, prefix: str, init_file: str, masses: str,
                 starts: str) -> str:
    """Multiple walkers: s.walkers systems W-k at the one temperature, each biased by its own ffplumed (walker
    k of PLUMED's multiple walkers), whose hills every walker reads: one bias built by all of them."""
    t = s.temperatures[0]
    plumed_ffs = "\n  ".join(_plumed_forcefield(f"plumed{k}", init_file, f) for k, f in enumerate(plumed_files))
    instances = "\n    ".join(f"<instance> [ {k} ] </instance>" for k in range(s.walkers))
    metaff = ", ".join(f"plumed{k}" for k in range(s.walkers))
    bias = "\n          <bias> <force forcefield='plumedIDX' nbeads='1'/> </bias>"
    return f"""<simulation verbosity='low' safe_stride='{s.output_stride}'>
  <!-- {s.walkers} metadynamics walkers at {t:g} K sharing one bias (PLUMED multiple walkers: HILLS.k per walker) -->
  {_output(s, prefix)}
  <total_steps> {s.steps} </total_steps>
  <prng> <seed> {s.seed} </seed> </prng>
  {forcefield}
  {plumed_ffs}
  <system_template>
    <labels> [ IDX ] </labels>
    {instances}
    <template>
      {_system(s, starts, masses, f"{t:g}", bias, prefix=f"{WALKER_OUTPUT_PREFIX}IDX", indent=6)}
    </template>
  </system_template>
  <smotion mode='metad'> <metad> <metaff> [ {metaff} ] </metaff> </metad> </smotion>
</simulation>
"""


def _nvt_xml(s: StudySettings, forcefield: str, plumed_files, prefix: str, init_file: str, masses: str) -> str:
    t = s.temperatures[0]
    if plumed_files is not None:
        plumed_ff = "\n  " + _plumed_forcefield("plumed", init_file, plumed_files[0])
        bias = "\n      <bias> <force forcefield='plumed' nbeads='1'/> </bias>"
        smotion = "\n  <smotion mode='metad'> <metad> <metaff> [ plumed ] </metaff> </metad> </smotion>"
    else:
        plumed_ff = bias = smotion = ""
    return f"""<simulation verbosity='low' safe_stride='{s.output_stride}'>
  {_output(s, prefix)}
  <total_steps> {s.steps} </total_steps>
  <prng> <seed> {s.seed} </seed> </prng>
  {forcefield}{plumed_ff}
  {_system(s, init_file, masses, f"{t:g}", bias)}{smotion}
</simulation>
"""
