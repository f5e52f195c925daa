"""The parameter arrays a model configuration needs, by name and shape, remembered.

Finding them means tracing the model's initialisation (``jax.eval_shape``: no numbers are computed),
which took 1.5-3 s on the project's 2-core machine, in every process that loads a model: each ``so3k``
command, each i-PI driver, and again for each load within one process. The shapes depend only on the
configuration and the code, so they are kept

- per process, by configuration;
- on disk, when the commands' persistent compilation cache is in use (``jax_compilation_cache_dir``,
  chosen by ``evaluation/compilation_cache.py``): in its folder ``so3k-parameter-shapes/`` (JAX keeps
  only its own ``*-cache`` and ``*-atime`` files there), one small JSON file per key. The key is a hash of
  the configuration, the source of the model room and the versions of JAX and Flax, so a file never
  outlives the code that wrote it. A folder that cannot be read or written only means tracing again.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from ..model.config import ModelConfig

FOLDER_NAME = "so3k-parameter-shapes"
_LIBRARIES = ("jax", "flax")
_remembered: dict[str, dict[str, tuple[int, ...]]] = {}


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """{'params/.../kernel': shape} of the parameters ``config`` needs (one model, no committee axis)."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    if text not in _remembered:
        _remembered[text] = _from_disk_or_traced(config, text)
    return dict(_remembered[text])


def _from_disk_or_traced(config: ModelConfig, text: str) -> dict[str, tuple[int, ...]]:
    folder = _disk_folder()
    path = folder / f"{cache_key(text)}.json" if folder is not None else None
    if path is not None:
        try:
            return {name: tuple(shape) for name, shape in json.loads(path.read_text()).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # absent or unreadable: trace
    shapes = _traced(config)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.part")
            partial.write_text(json.dumps(shapes))
            os.replace(partial, path)  # whole or absent for a reader in another process
        except OSError:
            pass
    return shapes


def _traced(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    import jax

    from ..model.forces import initial_parameters
    from .model_files import _shapes

    return _shapes(jax.eval_shape(lambda: initial_parameters(config)))


def cache_key(config_text: str) -> str:
    """32 hex digits over the configuration (as JSON), the model room's source files and the library
    versions: the shapes are a function of these alone."""
    digest = hashlib.sha256(config_text.encode())
    for library in _LIBRARIES:
        try:
            digest.update(f"{library}={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library}=absent".encode())
    model_room = Path(__file__).resolve().parents[1] / "model"
    for source in sorted(model_room.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:32]


def _disk_folder() -> Path | None:
    import jax

    folder = getattr(jax.config, "jax_compilation_cache_dir", None)
    return Path(folder) / FOLDER_NAME if folder else None
