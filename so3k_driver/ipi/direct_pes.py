"""In-process SO3krates PES for i-PI's ``<ffdirect><pes>custom</pes>`` (no socket, no driver process).

i-PI loads this file by path and passes ``<parameters>{config: /path/pes.json}</parameters>``; the JSON
holds ``model`` (a Potential spec), ``template`` (structure file giving the atomic numbers) and optional
``dtype``/``batch_size``. Gas phase: the cell is ignored and the virial is zero. The physics and the
unit conversion are those of the socket driver (so3k_driver.ipi.pes → ipi.compute), force check included.
"""

from __future__ import annotations

import json

from so3k_driver.ipi.pes import SO3kratesDriver

__DRIVER_NAME__ = "so3k_direct"
__DRIVER_CLASS__ = "SO3kDirectPES"


class SO3kDirectPES(SO3kratesDriver):
    def __init__(self, config: str, **kwargs):  # i-PI passes the <parameters> as keywords
        with open(config) as handle:
            settings = json.load(handle)
        self.batch_size = int(settings.get("batch_size", 1))
        super().__init__(model=settings["model"], structure=settings["template"], dtype=settings.get("dtype"), **kwargs)

    def compute(self, cell, pos):
        try:
            # a short batch is evaluated in calls sized for batch_size: one compiled shape
            return super().compute(cell, pos, pad_to=self.batch_size)
        except Exception as error:
            # i-PI calls this from its polling thread: an exception there only ends that thread and
            # i-PI waits forever. Ask i-PI to stop instead (it writes RESTART and exits).
            from ipi.utils.softexit import softexit

            softexit.trigger(status="bad", message=f"so3k direct PES: {type(error).__name__}: {error}")
            raise
