"""In-process SO3krates PES for i-PI's ``<ffdirect><pes>custom</pes>`` (no socket, no driver process).

i-PI loads this file by path and passes ``<parameters>{config: /path/pes.json}</parameters>`` (a relative
path is relative to i-PI's working directory); the JSON holds ``model`` (a Potential spec), ``template``
(structure file giving the atomic numbers; relative paths in the JSON are relative to its folder) and optional
``dtype``, ``device``, ``batch_size``, the model options named in DRIVER_OPTIONS (pbc: periodic with
the virial, default gas phase), ``structures_per_step`` and ``stats_file`` (model calls and their
steady-state timing as JSON, like the socket driver's ``so3k_driver_calls.json``; written when i-PI
exits and every STATS_EVERY_S during the run). Physics and unit conversion are those of the socket driver
(so3k_driver.ipi.pes → ipi.compute), force and bond checks included. ``so3k run --backend direct`` writes
the JSON (ipi_xml.sockets_to_direct).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

import numpy as np

from so3k_driver.ipi.compute import direct_error_message
from so3k_driver.ipi.pes import SO3kratesDriver
from so3k_driver.ipi.server import CallCounter, Request

__DRIVER_NAME__ = "so3k_direct"
__DRIVER_CLASS__ = "SO3kDirectPES"
# Further model options the JSON may hold (SO3kratesDriver keywords; Å, e, eV/Å, × sum of covalent radii)
# i-PI does not always run its exit functions to the end (a soft exit from one thread while another leaves
# by os._exit: one piece of five of the SO3LR helix metadynamics, 2026-12-06, left no counts), so the
# counts are also written during the run and are then at most this old (s)
STATS_EVERY_S = 60.0
# i-PI steps several systems (replicas, walkers) in threads that share the GIL with the thread that runs this
# PES, and Python hands the GIL over every 5 ms by default. With 0.5 ms a fresh folding study's step at 3 fs (8 x
# 162 atoms, REMD + helix-torsion metadynamics, student v13) took ~0.93 x the time (6 of 7 comparisons); at 2 fs,
# late in a study and for Ac-Ala3-NHMe no change was measurable either way (docs/ipi.md, "The GIL's switch
# interval"). Set only when i-PI runs several systems, and only over Python's default: an interval chosen by
# whoever started i-PI is kept.
SEVERAL_SYSTEMS_SWITCH_INTERVAL_S = 5e-4
PYTHON_DEFAULT_SWITCH_INTERVAL_S = 5e-3
DRIVER_OPTIONS = ("pbc", "lr_cutoff", "dispersion_damping", "total_charge", "unpaired_electrons", "max_force",
                  "max_bond_stretch")


class SO3kDirectPES(SO3kratesDriver):
    def __init__(self, config: str, **kwargs):  # i-PI passes the <parameters> as keywords
        with open(config) as handle:
            settings = json.load(handle)
        # relative paths in the configuration are relative to its folder (a study folder may move)
        here = os.path.dirname(os.path.abspath(config))
        for key in ("template", "stats_file"):
            if settings.get(key) and not os.path.isabs(settings[key]):
                settings[key] = os.path.join(here, settings[key])
        self.batch_size = int(settings.get("batch_size", 1))
        if self.batch_size > 1 and sys.getswitchinterval() == PYTHON_DEFAULT_SWITCH_INTERVAL_S:
            sys.setswitchinterval(SEVERAL_SYSTEMS_SWITCH_INTERVAL_S)
        self.counter = CallCounter(per_step=settings.get("structures_per_step"))
        self.stats_file = settings.get("stats_file")
        self._last_return = None
        self._stats_written = time.perf_counter()
        if self.stats_file:
            # i-PI ends with a soft exit that may leave by os._exit (no atexit): register with it too
            from ipi.utils.softexit import softexit

            softexit.register_function(self.write_stats)
            atexit.register(self.write_stats)
        options = {key: str(settings[key]) for key in DRIVER_OPTIONS if settings.get(key) is not None}
        super().__init__(model=settings["model"], structure=settings["template"], dtype=settings.get("dtype"),
                         device=settings.get("device"), **options, **kwargs)
        self.counter.compiles = lambda: self.potential.compile_count

    def compute(self, cell, pos):
        started = time.perf_counter()
        if self._last_return is not None:
            # between our calls i-PI integrates and writes its outputs: the "idle" of a socket driver
            self.counter.record_idle(started - self._last_return)
        try:
            # a short batch is evaluated in calls sized for batch_size: one compiled shape
            results = super().compute(cell, pos, pad_to=self.batch_size)
        except Exception as error:
            # i-PI calls this from its polling thread: an exception there only ends that thread and
            # i-PI waits forever. Ask i-PI to stop instead (it writes RESTART and exits).
            from ipi.utils.softexit import softexit

            softexit.trigger(status="bad", message=direct_error_message(error))
            raise
        finished = time.perf_counter()
        positions = np.asarray(pos if isinstance(pos, list) else [pos], dtype=np.float64)
        self.counter.record_call([Request(np.zeros((len(positions), 3, 3)), positions.reshape(len(positions), -1, 3))],
                                 started, finished)
        self._last_return = time.perf_counter()
        if self.stats_file and self._last_return - self._stats_written > STATS_EVERY_S:
            self.write_stats()
            self._stats_written = self._last_return
        return results

    def write_stats(self) -> None:
        try:
            self.counter.write_json(self.stats_file)
        except OSError:
            pass  # i-PI is exiting; the counts are a diagnostic, not a result
