"""The settings of a sampling study: validated, immutable, saved as DIR/study.json and read back.

A study is thermostatted MD of one molecule at one temperature, or replica exchange (REMD) over
several, optionally with well-tempered metadynamics (PLUMED METAD) at each temperature.
Units: temperatures K, times fs, metadynamics heights kJ/mol, widths Å (end-to-end distance) or
rad (backbone torsions), strides and paces in MD steps.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

from ..errors import UserError

# The one place a multiple-walker study's naming is decided: walker k's label is W<k> (its PLUMED input
# plumed_W<k>.dat and COLVAR.W<k>; PLUMED itself names its hills HILLS.<k>) and its i-PI outputs are
# W-<k>_<prefix>.out, W-<k>_<prefix>.pos_0.xyz.
WALKER_MARKER = "W"
WALKER_OUTPUT_PREFIX = f"{WALKER_MARKER}-"


def walker_label(k: int) -> str:
    """Walker k's label, 'W<k>': plumed_W<k>.dat, COLVAR.W<k>."""
    return f"{WALKER_MARKER}{k}"

METAD_CVS = ("end-to-end", "backbone", "helix", "helix-form", "helix-torsions", "none")
# Hill width when none is given, in the CV's unit: Å (end-to-end), rad (backbone), H-bonds (helix,
# helix-form: a difference of two counts, so its thermal spread is about √2 × the helix count's), torsions
# (helix-torsions)
DEFAULT_METAD_SIGMA = {"end-to-end": 0.5, "backbone": 0.35, "helix": 0.25, "helix-form": 0.35,
                       "helix-torsions": 0.5, "none": 0.5}
BACKENDS = ("socket", "direct")
DTYPES = (None, "float32", "float64")
SETTINGS_FILE = "study.json"
# Studies prepared before lr_cutoff was a setting ran with the drivers' default of 12 Å; they keep it, so
# that a resumed run goes on with the physics it started with.
LEGACY_LR_CUTOFF_A = 12.0


def parse_temperatures(text: str) -> tuple[float, ...]:
    """Temperatures in K from "300" (one), "300,340,385" (a list) or "300:450:8" (8 temperatures in
    geometric progression from 300 to 450 K, rounded to 0.1 K: equal exchange acceptance between
    neighbours when the heat capacity is constant)."""
    text = str(text).strip()
    try:
        if ":" in text:
            low, high, count = text.split(":")
            low, high, count = float(low), float(high), int(count)
            if count < 2 or not 0 < low < high:
                raise ValueError
            import numpy as np

            return tuple(float(t) for t in np.round(np.geomspace(low, high, count), 1))
        return tuple(float(value) for value in text.split(","))
    except ValueError:
        raise UserError(f"temperatures must be K, K1,K2,... or LOW:HIGH:COUNT (COUNT >= 2, 0 < LOW < HIGH), "
                        f"got {text!r}") from None


def _check(condition: bool, name: str, value, requirement: str) -> None:
    if not condition:
        raise UserError(f"{name} must be {requirement}, got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class MetadSettings:
    """Well-tempered metadynamics on a collective variable (cv), one METAD per temperature.

    cv: "end-to-end" (distance between the first and last carbonyl C, Å), "backbone" (phi/psi of
    the central residue, rad), "helix" (smooth count of i→i+4 backbone hydrogen bonds), "helix-form"
    (that count minus the i→i+3 one: α against 3₁₀ helix, for runs started from helices), "helix-torsions"
    (how α-helical every backbone φ and ψ is: PLUMED's ALPHABETA, Σ ½(1 + cos(θ − θ_α)) over all of them, 0 to 2 × residues; unlike the H-bond count it pushes an extended chain too) or
    "none" (no bias). height: initial hill height, kJ/mol. sigma: hill width in the CV's unit (None: the
    CV's DEFAULT_METAD_SIGMA). pace: MD steps between hills. bias_factor: well-tempered γ (> 1).
    grid_max: upper grid bound of the end-to-end distance, Å. colvar_stride: MD steps between COLVAR lines.
    """

    cv: str = "end-to-end"
    height: float = 1.0
    sigma: float | None = None
    pace: int = 50
    bias_factor: float = 10.0
    grid_max: float = 80.0
    colvar_stride: int = 10

    def __post_init__(self):
        _check(self.cv in METAD_CVS, "metad cv", self.cv, "one of " + ", ".join(METAD_CVS))
        if self.sigma is None:
            object.__setattr__(self, "sigma", DEFAULT_METAD_SIGMA[self.cv])
        _check(_is_number(self.height) and self.height > 0, "metad height (kJ/mol)", self.height, "> 0")
        _check(_is_number(self.sigma) and self.sigma > 0, "metad sigma", self.sigma, "> 0")
        _check(_is_int(self.pace) and self.pace >= 1, "metad pace (MD steps)", self.pace, "an integer >= 1")
        _check(_is_number(self.bias_factor) and self.bias_factor > 1, "metad bias factor", self.bias_factor, "> 1")
        _check(_is_number(self.grid_max) and self.grid_max > 0, "metad grid max (Å)", self.grid_max, "> 0")
        _check(_is_int(self.colvar_stride) and self.colvar_stride >= 1, "COLVAR stride (MD steps)",
               self.colvar_stride, "an integer >= 1")

    @property
    def enabled(self) -> bool:
        return self.cv != "none"


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """One study. structure: the starting structure file (Å) as given; model: FILE.so3k, mlff:DIR,
    so3lr:DIR or 'default'; temperatures (K, ascending; several = REMD); steps: total MD steps;
    timestep_fs; thermostat_tau_fs: Langevin time constant; exchange_stride: i-PI's REMD stride,
    each pair of replicas is tried with probability 1/stride per MD step; output_stride: MD steps
    between trajectory frames and property lines;
    backend: "socket" (i-PI + so3k serve drivers) or "direct" (the model inside i-PI); dtype:
    evaluation precision (None = the model's own); seed: i-PI's random seed; hydrogen_mass: amu of
    every hydrogen (None = natural masses; e.g. 4 allows 2 fs steps; the total mass grows, the other
    atoms keep theirs; configurational averages do not depend on masses, dynamics do); lr_cutoff:
    long-range cutoff (Å) of the electrostatics and dispersion of SO3LR-type models, None = all pairs
    (a study is gas phase; models without long-range terms ignore it). earlier_models: the models
    a continued study ran with before ``model``, oldest first, each {"model": spec, "until_step": the
    MD step from which the next one took over} (``so3k sample run --model``). walkers: metadynamics
    walkers at the one temperature that build one bias together (PLUMED's multiple walkers: walker k
    writes HILLS.k and reads the others' hills every pace steps); 1 = a single system. start_frames: the
    frame of ``structure`` (0-based) each system starts from, in i-PI's order (replicas by temperature, or
    walkers), when ``structure`` holds several frames (``sampling.run.start_frame_indices``); None = a
    one-frame structure, where every system starts. model_fingerprint: ``io.model_files.model_fingerprint``
    of ``model`` when the study began or last changed model (None: a study from before it was recorded);
    a continued study refuses a model whose fingerprint differs."""

    structure: str
    model: str
    temperatures: tuple[float, ...]
    steps: int
    timestep_fs: float = 0.5
    thermostat_tau_fs: float = 100.0
    exchange_stride: int = 10
    output_stride: int = 10
    metad: MetadSettings = MetadSettings()
    backend: str = "socket"
    dtype: str | None = None
    seed: int = 31415
    hydrogen_mass: float | None = None
    lr_cutoff: float | None = None
    earlier_models: tuple = ()
    walkers: int = 1
    start_frames: tuple[int, ...] | None = None
    model_fingerprint: str | None = None

    def __post_init__(self):
        _check(isinstance(self.structure, str) and self.structure != "", "structure", self.structure, "a file name")
        _check(isinstance(self.model, str) and self.model != "", "model", self.model, "a model spec")
        temperatures = self.temperatures
        if isinstance(temperatures, str):
            temperatures = parse_temperatures(temperatures)
        try:
            temperatures = tuple(float(t) for t in temperatures)
        except (TypeError, ValueError):
            raise UserError(f"temperatures must be numbers in K, got {self.temperatures!r}") from None
        _check(len(temperatures) >= 1 and all(math.isfinite(t) and t > 0 for t in temperatures),
               "temperatures (K)", self.temperatures, "one or more values > 0")
        _check(all(a < b for a, b in zip(temperatures, temperatures[1:])), "temperatures (K)", self.temperatures,
               "in ascending order without repeats")
        object.__setattr__(self, "temperatures", temperatures)
        _check(_is_int(self.steps) and self.steps >= 1, "steps", self.steps, "an integer >= 1")
        _check(_is_number(self.timestep_fs) and 0 < self.timestep_fs <= 10, "timestep (fs)", self.timestep_fs,
               "in (0, 10] fs")
        _check(_is_number(self.thermostat_tau_fs) and self.thermostat_tau_fs > 0, "thermostat tau (fs)",
               self.thermostat_tau_fs, "> 0")
        _check(_is_int(self.exchange_stride) and self.exchange_stride >= 1, "exchange stride (MD steps)",
               self.exchange_stride, "an integer >= 1")
        _check(_is_int(self.output_stride) and self.output_stride >= 1, "output stride (MD steps)",
               self.output_stride, "an integer >= 1")
        _check(isinstance(self.metad, MetadSettings), "metad", self.metad, "a MetadSettings")
        _check(self.backend in BACKENDS, "backend", self.backend, "one of " + ", ".join(BACKENDS))
        _check(self.dtype in DTYPES, "dtype", self.dtype, "float32, float64 or None (the model's own)")
        _check(_is_int(self.seed) and self.seed >= 0, "seed", self.seed, "an integer >= 0")
        _check(self.hydrogen_mass is None or (_is_number(self.hydrogen_mass) and self.hydrogen_mass > 0),
               "hydrogen mass (amu)", self.hydrogen_mass, "> 0 amu or None (natural masses)")
        earlier = tuple(dict(entry) if isinstance(entry, dict) else entry for entry in self.earlier_models)
        _check(all(isinstance(e, dict) and set(e) == {"model", "until_step"} and isinstance(e["model"], str)
                   and _is_int(e["until_step"]) and e["until_step"] >= 0 for e in earlier),
               "earlier models", self.earlier_models, 'entries {"model": spec, "until_step": step >= 0}')
        object.__setattr__(self, "earlier_models", earlier)
        _check(self.lr_cutoff is None or (_is_number(self.lr_cutoff) and self.lr_cutoff > 0),
               "long-range cutoff (Å)", self.lr_cutoff, "> 0 Å, or None for all pairs (so3k sample init --lr-cutoff 0)")
        _check(_is_int(self.walkers) and self.walkers >= 1, "walkers", self.walkers, "an integer >= 1")
        if self.walkers > 1:
            _check(len(temperatures) == 1, "temperatures (K) with several walkers", self.temperatures,
                   "one temperature (walkers share one bias at one temperature; replica exchange takes several)")
            _check(self.metad.enabled, "metad cv with several walkers", self.metad.cv,
                   "a biased CV (walkers share a metadynamics bias)")
        _check(self.model_fingerprint is None or (isinstance(self.model_fingerprint, str)
                                                   and re.fullmatch("[0-9a-f]{16}", self.model_fingerprint)),
               "model fingerprint", self.model_fingerprint, "None or 16 hex digits (io.model_files.model_fingerprint)")
        if self.start_frames is not None:
            starts = self.start_frames
            _check(isinstance(starts, (list, tuple)) and len(starts) == self.systems
                   and all(_is_int(i) and i >= 0 for i in starts), "start frames", starts,
                   f"None or one frame index >= 0 per system ({self.systems})")
            object.__setattr__(self, "start_frames", tuple(starts))

    @property
    def replica_exchange(self) -> bool:
        return len(self.temperatures) > 1

    @property
    def systems(self) -> int:
        """Systems i-PI steps together: one per temperature, or one per walker."""
        return len(self.temperatures) * self.walkers

    def strides_in_time(self) -> str:
        """The strides, which count MD steps, as simulated time (ps) at this time step, e.g. "frames every
        0.5 ps, a hill every 0.25 ps": a stride chosen for 2 fs means 1.5 × the time at 3 fs."""
        def ps(steps: int) -> str:
            return f"{steps * self.timestep_fs / 1000:.4g} ps"

        parts = [f"frames every {ps(self.output_stride)}"]
        if self.replica_exchange:
            parts.append(f"an exchange tried per pair every {ps(self.exchange_stride)} on average")
        if self.metad.enabled:
            parts += [f"a hill every {ps(self.metad.pace)}", f"COLVAR every {ps(self.metad.colvar_stride)}"]
        return ", ".join(parts)

    def to_json(self) -> str:
        record = dataclasses.asdict(self)
        record["temperatures"] = list(self.temperatures)
        record["earlier_models"] = list(self.earlier_models)
        record["start_frames"] = None if self.start_frames is None else list(self.start_frames)
        record["units"] = {"temperatures": "K", "timestep_fs": "fs", "thermostat_tau_fs": "fs",
                           "strides, steps, pace": "MD steps", "metad.height": "kJ/mol",
                           "metad.sigma": "Å (end-to-end), rad (backbone), H-bonds (helix, helix-form), torsions (helix-torsions)",
                           "metad.grid_max": "Å",
                           "hydrogen_mass": "amu", "lr_cutoff": "Å (null: all pairs)",
                           "start_frames": "0-based frame of structure per system (null: one frame, all start there)"}
        return json.dumps(record, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "study settings") -> "StudySettings":
        try:
            record = json.loads(text)
            record.pop("units", None)
            record.setdefault("lr_cutoff", LEGACY_LR_CUTOFF_A)
            metad = MetadSettings(**record.pop("metad", {}))
            return cls(metad=metad, **record)
        except (json.JSONDecodeError, TypeError, AttributeError) as error:
            raise UserError(f"{source} is not a valid study settings file: {error}") from None

    def save(self, folder) -> Path:
        path = Path(folder) / SETTINGS_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, folder) -> "StudySettings":
        path = Path(folder) / SETTINGS_FILE
        if not path.is_file():
            raise UserError(f"{folder} is not a study folder: {path} is missing (prepare one with `so3k sample init`)")
        return cls.from_json(path.read_text(), str(path))

    @property
    def sampling_models(self) -> tuple[str, ...]:
        """Every model spec that has sampled this study, earliest first (earlier_models, then model)."""
        return tuple(entry["model"] for entry in self.earlier_models) + (self.model,)

    @classmethod
    def load_if_present(cls, folder) -> "StudySettings | None":
        """The settings of a study folder; None for a run folder without study.json (a plain i-PI run)."""
        return cls.load(folder) if (Path(folder) / SETTINGS_FILE).is_file() else None
