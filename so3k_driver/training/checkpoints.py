"""Orbax checkpoints of the whole training state (params, optimiser, EMA, best weights, counters)."""

from __future__ import annotations

from pathlib import Path

import jax


class Checkpoints:
    """Keeps the latest ``keep`` checkpoints under ``directory``, indexed by completed epoch."""

    def __init__(self, directory: str | Path, keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

    def latest_epoch(self) -> int | None:
        return self.manager.latest_step()

    def save(self, epoch: int, state) -> None:
        self.manager.save(epoch, args=self._ocp.args.StandardSave(state))
        self.manager.wait_until_finished()

    def restore(self, epoch: int, like):
        """Restore the state saved at ``epoch`` with the structure, shapes and dtypes of ``like``."""
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), like)
        return self.manager.restore(epoch, args=self._ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self.manager.close()
