"""Reading and adjusting i-PI XML inputs (and RESTART files, which are i-PI XML too) for ``so3k run``."""

from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET

from ..errors import IpiInputError

HYDROGEN = 1

@dataclasses.dataclass
class SocketSettings:
    """One <ffsocket>: its name (what <force forcefield='...'> refers to) and where it listens."""

    name: str
    mode: str  # unix | inet | shm
    address: str
    port: int
    batch_size: int
    prefix: str

    @property
    def unix_path(self) -> str:
        return self.address if self.address.startswith("/") else self.prefix + self.address


@dataclasses.dataclass
class OutputSettings:
    prefix: str
    properties_file: str | None  # filename attribute of <properties>, e.g. 'out'
    total_steps: int | None
    start_step: int


def load(path: str) -> ET.ElementTree:
    try:
        tree = ET.parse(path)
    except ET.ParseError as error:
        raise IpiInputError(f"{path} is not valid XML: {error}") from None
    except FileNotFoundError:
        raise IpiInputError(f"input file {path} not found") from None
    if tree.getroot().tag != "simulation":
        raise IpiInputError(f"{path}: root element is <{tree.getroot().tag}>, expected i-PI's <simulation>")
    return tree


def _text(element, default=None):
    return element.text.strip() if element is not None and element.text is not None else default


def apply_overrides(root, *, input_dir: str, structure=None, steps=None, address=None, port=None,
                    temperature=None, hydrogen_mass=None) -> None:
    """Fill the placeholders of an input from ``so3k run`` options; make file paths absolute.

    structure: an i-PI xyz file (``structures.ipi_structure_file``) that every <file> then reads.
    steps: the new <total_steps> (MD steps counted from the start of the first piece of a run).
    hydrogen_mass: amu given to every hydrogen of every <initialize> (see set_hydrogen_masses)."""
    for file_element in root.iter("file"):
        if structure is not None:
            path = ours = os.path.abspath(structure)
            file_element.set("mode", "xyz")
        elif file_element.text and not os.path.isabs(file_element.text.strip()):
            path, ours = os.path.join(input_dir, file_element.text.strip()), input_dir
        else:
            continue
        _check_no_template_label(ours, _template_labels(enclosing_template(root, file_element)), path)
        file_element.text = f" {path} "
    # i-PI resolves PLUMED input paths against its working directory, which is the run folder.
    for plumed_input in root.iter("plumed_dat"):
        if plumed_input.text and not os.path.isabs(plumed_input.text.strip()):
            plumed_input.text = f" {os.path.join(input_dir, plumed_input.text.strip())} "
    if steps is not None:
        total = root.find("total_steps")
        if total is None:
            total = ET.SubElement(root, "total_steps")
        total.text = f" {steps} "
    sockets = root.findall("ffsocket")
    if address is not None or port is not None:
        if not sockets:
            raise IpiInputError("the input has no <ffsocket> whose address could be set")
        several = len(sockets) > 1
        # Each ffsocket needs its own socket: unix/shm ADDRESS-<forcefield name>, inet PORT+k.
        for index, ffsocket in enumerate(sockets):
            if address is not None:
                own = several and ffsocket.get("mode", "inet").strip().lower() != "inet"
                _child(ffsocket, "address").text = f" {address}-{ffsocket.get('name', index)} " if own else f" {address} "
            if port is not None:
                _child(ffsocket, "port").text = f" {port + index} "
    if temperature is not None:
        if root.find("system_template") is not None or len(root.findall("system")) != 1:
            raise IpiInputError("--temperature needs a single <system>; edit the temperatures of a REMD input in the XML")
        system = root.find("system")
        for element in [system.find("ensemble/temperature"), system.find("initialize/velocities")]:
            if element is not None:
                element.text = f" {temperature} "
                element.set("units", "kelvin")
    if hydrogen_mass is not None:
        set_hydrogen_masses(root, hydrogen_mass)


def atom_masses(numbers, hydrogen_mass: float | None = None):
    """Masses (N,) in dalton (amu): standard atomic weights (ASE's table), hydrogens set to
    hydrogen_mass when given. The total mass changes; nothing is taken from the bonded heavy atom."""
    import numpy as np
    from ase.data import atomic_masses

    numbers = np.asarray(numbers, dtype=int)
    masses = atomic_masses[numbers].astype(float)
    if hydrogen_mass is not None:
        masses[numbers == HYDROGEN] = hydrogen_mass
    return masses


def _list_items(text: str | None) -> list[str]:
    """i-PI's list syntax "[ a, 'b', c ]" as strings (quotes and blanks stripped, as i-PI's read_list)."""
    return [item.strip(" \n\t'") for item in (text or "").strip().strip("[]").split(",") if item.strip(" \n\t'")]


def _template_labels(template) -> list[str]:
    """The <labels> of a <system_template> (none for None)."""
    return [] if template is None else _list_items(_text(template.find("labels"), None))


def enclosing_template(root, element):
    """The <system_template> whose <template> holds ``element``, or None."""
    for template in root.iter("system_template"):
        if any(inner is element for inner in template.iter()):
            return template
    return None


def first_instance_text(template, text: str) -> str:
    """``text`` from inside ``template`` (a <system_template>) with its labels filled in as i-PI fills them
    for the first <instance> (labels in reverse sorted order, as i-PI does), e.g. 'init_IDX.xyz' ->
    'init_0.xyz'. Every instance of a template is the same molecule, so the first one tells its
    elements; text without a label, or no template (None), leaves the text as it is."""
    labels = _template_labels(template)
    instance = template.find("instance") if template is not None else None
    if not labels or instance is None or not any(label in text for label in labels):
        return text
    values = _list_items(instance.text)
    if len(values) != len(labels):
        raise IpiInputError(f"<system_template>: {len(labels)} labels {labels} but its first <instance> has "
                            f"{len(values)} values {values}")
    for label, value in sorted(zip(labels, values), reverse=True):
        text = text.replace(label, value)
    return text


def file_of_first_instance(root, file_element) -> str:
    """The path a <file> names, for the first instance when it sits in a <system_template>."""
    return first_instance_text(enclosing_template(root, file_element), _text(file_element, ""))


def _check_no_template_label(ours: str, labels: list[str], path: str) -> None:
    """i-PI replaces a <system_template>'s labels anywhere in its <template> text, file paths included: a
    run folder named e.g. /scratch/TEMP/ would become /scratch/300/. Refuse when the part of a path that
    so3k writes into a template (``ours``: the input's folder, or a --structure path) holds a label; labels
    the input itself writes into a path (init_IDX.xyz) are meant."""
    hits = [label for label in labels if label in ours]
    if hits:
        raise IpiInputError(f"{path}: {ours} contains the <system_template> label {hits[0]!r}, which i-PI would "
                            f"replace in every system; use a folder or file name without "
                            f"{', '.join(map(repr, hits))}")


def masses_element(numbers, hydrogen_mass: float) -> str:
    """i-PI's per-atom masses for an <initialize>, hydrogens at hydrogen_mass amu (see atom_masses).

    Goes after <file> and before <velocities>: i-PI builds thermal momenta from the masses it has."""
    values = ", ".join(f"{m:.6g}" for m in atom_masses(numbers, hydrogen_mass))
    return f"<masses mode='manual' units='dalton'> [ {values} ] </masses>"


def set_hydrogen_masses(root, hydrogen_mass: float) -> None:
    """Give every hydrogen hydrogen_mass amu in each <initialize> of an input (elements read from its
    <file>); IpiInputError for a checkpoint (it keeps the masses it started with) or an input that
    already sets masses."""
    from .structures import read_numbers

    if not hydrogen_mass > 0:
        raise IpiInputError(f"hydrogen mass must be > 0 amu, got {hydrogen_mass}")
    initializers = list(root.iter("initialize"))
    if not initializers:
        raise IpiInputError("hydrogen masses: the input has no <initialize> (a checkpoint keeps the masses "
                            "it was started with)")
    for initialize in initializers:
        if initialize.find("masses") is not None:
            raise IpiInputError("hydrogen masses: the input already sets <masses>; edit them there")
        children = list(initialize)
        files = [index for index, child in enumerate(children) if child.tag == "file"]
        if not files:
            raise IpiInputError("hydrogen masses: an <initialize> has no <file> to read the elements from")
        path = file_of_first_instance(root, children[files[0]])
        try:
            numbers = read_numbers(path)
        except (ValueError, OSError) as error:
            raise IpiInputError(f"hydrogen masses: cannot read the elements of {path}: {error}") from None
        masses = ET.fromstring(masses_element(numbers, hydrogen_mass))
        masses.tail = children[files[0]].tail
        initialize.insert(files[0] + 1, masses)


def _child(parent, tag):
    element = parent.find(tag)
    return element if element is not None else ET.SubElement(parent, tag)


def socket_settings(root) -> list[SocketSettings]:
    """Every top-level <ffsocket> of an input, in input order (empty when there is none).

    IpiInputError for an unsupported mode, two with one name, or two listening at one address."""
    settings = []
    for index, ffsocket in enumerate(root.findall("ffsocket")):
        name = ffsocket.get("name", "").strip() or f"ffsocket{index}"
        mode = ffsocket.get("mode", "inet").strip().lower()
        if mode not in ("unix", "inet", "shm"):
            raise IpiInputError(f"ffsocket {name!r}: mode {mode!r} is not supported by so3k (unix, inet, shm)")
        try:
            port = int(_text(ffsocket.find("port"), "65535"))
            batch_size = int(_text(ffsocket.find("batch_size"), "1"))
        except ValueError as error:
            raise IpiInputError(f"ffsocket {name!r}: {error}") from None
        settings.append(SocketSettings(name=name, mode=mode, address=_text(ffsocket.find("address"), "localhost"),
                                       port=port, batch_size=batch_size, prefix=root.get("sockets_prefix", "/tmp/ipi_")))
    names = [s.name for s in settings]
    if len(set(names)) < len(names):
        raise IpiInputError(f"the input has several <ffsocket>s named alike ({', '.join(names)})")
    places = [s.unix_path if s.mode != "inet" else f"{s.address}:{s.port}" for s in settings]
    if len(set(places)) < len(places):
        raise IpiInputError(f"ffsockets {', '.join(names)} listen at {', '.join(places)}: each needs its own address "
                            "(or port); --address NAME gives them NAME-<forcefield>")
    return settings


def structures_per_evaluation(root, forcefield: str) -> int | None:
    """How many structures i-PI asks forcefield for at once: beads (or the contracted nbeads of its
    <force>) summed over the systems that use it, a <system_template> counting once per <instance>.
    None when the input does not say (e.g. a checkpoint whose systems are not templated)."""
    total = 0
    template = root.find("system_template")
    systems = [(system, 1) for system in root.findall("system")]
    if template is not None:
        systems += [(system, len(template.findall("instance"))) for system in template.iter("system")]
    for system, copies in systems:
        initialize = system.find("initialize")
        beads_element = system.find("beads")
        if initialize is not None:
            beads = int(initialize.get("nbeads", "1"))
        elif beads_element is not None:
            beads = int(beads_element.get("nbeads", "1"))
        else:
            return None
        for force in system.iter("force"):
            if force.get("forcefield") == forcefield and float(force.get("weight", "1")) != 0:
                contracted = int(force.get("nbeads", "0"))
                total += copies * (contracted if contracted > 0 else beads)
    return total or None


def output_settings(root) -> OutputSettings:
    output = root.find("output")
    prefix = output.get("prefix", "i-pi") if output is not None else "i-pi"
    properties = output.find("properties") if output is not None else None
    total = _text(root.find("total_steps"))
    step = _text(root.find("step"), "0")
    return OutputSettings(prefix=prefix, properties_file=properties.get("filename", "out") if properties is not None else None,
                          total_steps=int(total) if total else None, start_step=int(step))


def number_checkpoints(root) -> None:
    """Make i-PI write each periodic checkpoint to its own file, PREFIX.restart_N (N counts writes),
    instead of overwriting PREFIX.restart: the runner keeps the newest few (recovery.rotate_checkpoints)."""
    for checkpoint in root.iter("checkpoint"):
        checkpoint.set("overwrite", "false")


def exchange_stride(root) -> float | None:
    """<smotion mode='remd'>'s <stride>: i-PI tries each pair of replicas with probability 1/stride per
    step (None without replica exchange)."""
    stride = _text(root.find(".//smotion/remd/stride"))
    return float(stride) if stride else None


def is_variable_cell(root) -> bool:
    """NPT/NST dynamics or a cell optimisation: the driver must return the virial."""
    return any(d.get("mode") in ("npt", "nst") for d in root.iter("dynamics")) or root.find(".//barostat") is not None


def uses_plumed(root) -> bool:
    """The input has a PLUMED force field (<ffplumed>): the PLUMED kernel must be loadable."""
    return root.find("ffplumed") is not None


def has_direct_forcefield(root) -> bool:
    """The model runs inside i-PI (<ffdirect>): no socket and no driver process."""
    return root.find("ffdirect") is not None


def step(path) -> int:
    """The MD step an i-PI input or restart file starts from (its <step>; 0 when it has none)."""
    return output_settings(load(str(path)).getroot()).start_step


def total_steps(path) -> int | None:
    """The <total_steps> of an i-PI input or restart file (None when it has none)."""
    return output_settings(load(str(path)).getroot()).total_steps


DIRECT_PES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "direct_pes.py")
# the config entry of an <ffdirect>'s <parameters>, an i-PI dict: "{config: PATH}" as we write it,
# "{config: PATH, verbosity: False}" as i-PI writes it back into a restart
_CONFIG_PARAMETER = re.compile(r"(\bconfig\s*:\s*)([^,}]+?)(\s*[,}])")


def moved_path(old: str, folder: str, must_exist: bool = True) -> str | None:
    """``folder/<file name of old>`` when old is an absolute path elsewhere and (must_exist) that file is in
    folder: where a run folder that moved or was copied keeps its own files. None otherwise."""
    candidate = os.path.join(os.path.abspath(folder), os.path.basename(old))
    if os.path.isabs(old) and os.path.abspath(old) != candidate and (os.path.exists(candidate) or not must_exist):
        return candidate
    return None


def relocate(root, folder: str) -> list[tuple[str, str]]:
    """Point an input or restart written in another folder into ``folder``, in place: a study copied or
    moved, or a resume kit unpacked elsewhere. For inputs whose files all live in their folder (a study's):
    every absolute path of a <file>, <plumed_dat> or an <ffdirect>'s ``{config: PATH}`` outside ``folder``
    whose file name exists in ``folder`` is pointed there, even when the old file still exists (a copy must
    not read or write its original's files); our in-process PES (a <pes_path> naming
    so3k_driver/ipi/direct_pes.py) becomes this installation's. Returns the (old, new) paths it changed."""
    changed = []

    def point(element, old: str, new: str, text: str) -> None:
        element.text = f" {text} "
        changed.append((old, new))

    def moved(old: str) -> str | None:
        return moved_path(old, folder)

    for element in list(root.iter("file")) + list(root.iter("plumed_dat")):
        old = _text(element, "")
        if (new := moved(old)) is not None:
            point(element, old, new, new)
    for direct in root.iter("ffdirect"):
        pes_path, parameters = direct.find("pes_path"), direct.find("parameters")
        old = _text(pes_path, "")
        if _is_our_pes(old) and old != DIRECT_PES_FILE:
            point(pes_path, old, DIRECT_PES_FILE, DIRECT_PES_FILE)
        text = _text(parameters, "")
        match = _CONFIG_PARAMETER.search(text)
        if match and (new := moved(match.group(2))) is not None:
            point(parameters, match.group(2), new, text[:match.start(2)] + new + text[match.end(2):])
    return changed


def _is_our_pes(pes_path: str) -> bool:
    return pes_path.replace(os.sep, "/").endswith("so3k_driver/ipi/direct_pes.py")


def direct_configs(root) -> list[tuple[str, str]]:
    """(forcefield name, configuration path as written) of every <ffdirect> that runs our PES."""
    found = []
    for direct in root.iter("ffdirect"):
        match = _CONFIG_PARAMETER.search(_text(direct.find("parameters"), ""))
        if _is_our_pes(_text(direct.find("pes_path"), "")) and match:
            found.append((direct.get("name", ""), match.group(2).strip()))
    return found


def sockets_to_direct(root, configs: dict) -> None:
    """Replace each <ffsocket> by an <ffdirect> that runs our PES inside i-PI (so3k_driver/ipi/direct_pes.py),
    in place: configs maps the forcefield name to its JSON configuration file. Name, pbc, latency and
    batch_size are kept; a batched forcefield is polled in a thread (i-PI evaluates a batch once it is
    full or its poll loop has been idle for batch_size cycles)."""
    for index, ffsocket in enumerate(list(root)):
        if ffsocket.tag != "ffsocket":
            continue
        name = ffsocket.get("name", "").strip() or f"ffsocket{index}"
        batch_size = int(_text(ffsocket.find("batch_size"), "1"))
        direct = ET.Element("ffdirect", {"name": name, "pbc": ffsocket.get("pbc", "false"),
                                         "threaded": "true" if batch_size > 1 else "false"})
        for tag, text in (("pes", "custom"), ("pes_path", DIRECT_PES_FILE), ("parameters", f"{{config: {configs[name]}}}"),
                          ("batch_size", str(batch_size)), ("latency", _text(ffsocket.find("latency"), "1e-4"))):
            ET.SubElement(direct, tag).text = f" {text} "
        direct.tail = ffsocket.tail
        position = list(root).index(ffsocket)
        root.remove(ffsocket)
        root.insert(position, direct)

