"""Model files: the project's own format and the authors' layouts.

Specs accepted by :func:`load_model`:
- ``PATH.so3k`` (or a directory holding ``config.json`` + ``params.npz``): the project's format, a zip
  archive with ``config.json`` (schema version, model configuration, species, cutoff, dtype, units,
  code version, free-form metadata) and ``params.npz`` (flattened parameter tree, no pickles).
- ``mlff:DIR``: the authors' SO3krates layout, ``params.pkl`` + ``hparams.json``.
- ``so3lr:DIR``: the published SO3LR layout, ``params.pkl`` + ``hyperparameters.json``.
- a bundled model by name (:data:`BUNDLED_MODELS`): ``so3lr-student`` (distilled from SO3LR on Ac-Ala
  peptide configurations, for sampling them), also called ``default`` (:data:`MODEL_ALIASES`), and
  ``ala3-xtb`` (a small GFN2-xTB model of Ac-Ala3-NHMe, for tests and demonstrations on that molecule
  only); their cards are in docs/model_card.md.

Pickles are read with :class:`RestrictedUnpickler`, which builds numpy arrays and plain containers
only and refuses every other global, so a malicious file raises and executes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..version import __version__
from ..model.config import ModelConfig
from ..errors import ModelFileError
from .parameter_shapes import expected_shapes

SCHEMA_VERSION = 1
# Architecture keys a .so3k configuration must state (the others have defaults that cannot change shapes
# silently: a shape they change is caught by check_parameters).
REQUIRED_CONFIG_KEYS = ("num_layers", "num_features", "num_heads", "degrees", "cutoff", "species")
UNITS = {"length": "angstrom", "energy": "eV", "forces": "eV/angstrom", "stress": "eV/angstrom^3"}
# Models shipped in so3k_driver/data, by the name a model spec uses for them
BUNDLED_MODELS = {"so3lr-student": "so3lr_student.so3k", "ala3-xtb": "ala3_xtb.so3k",
                  # earlier defaults (v6: 2026-12-02 to 12-04, v10: 2026-12-04 to 12-05), kept so that studies
                  # begun with them can go on with them
                  "so3lr-student-v6": "so3lr_student_v6.so3k", "so3lr-student-v10": "so3lr_student_v10.so3k"}
# Other names of bundled models: 'default' is the one a user should reach for first.
MODEL_ALIASES = {"default": "so3lr-student"}
# What a MODEL argument may be, for help texts and errors
MODEL_SPECS = ("FILE.so3k, mlff:DIR, so3lr:DIR or a bundled model "
               "(default = so3lr-student, so3lr-student-v10, so3lr-student-v6, ala3-xtb)")



# The globals a pickle of numpy arrays legitimately needs (numpy 1.x and 2.x module paths).
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that accepts numpy arrays, numpy scalars and plain containers, nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module in ("flax.core.frozen_dict", "flax.core") and name == "FrozenDict":
            return dict
        raise ModelFileError(
            f"refusing to load pickle: it references {module}.{name}, which is not a numpy array or "
            "plain container (a parameter file should contain nothing else)"
        )


def restricted_load_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            return RestrictedUnpickler(handle).load()
    except ModelFileError:
        raise
    except Exception as error:  # corrupt or truncated file
        raise ModelFileError(f"cannot read parameter pickle {path}: {error}") from error


def leaves(tree: dict, prefix: str = ""):
    """(path, leaf) pairs of a nested parameter dict, paths joined with '/'."""
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from leaves(value, name)
        else:
            yield name, value


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    return {name: np.asarray(value) for name, value in leaves(tree, prefix)}


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


# --------------------------------------------------------------------------------------------
# The project's own format


def save_model(path: str | Path, config: ModelConfig, params: dict, dtype: str = "float32",
               metadata: dict | None = None, committee_size: int | None = None) -> Path:
    """Write ``params`` (a Flax parameter tree, ``{'params': ...}``) and ``config`` to a ``.so3k`` file.

    committee_size: M when ``params`` is a committee (every leaf stacked along a leading axis M;
    see :func:`save_committee`); the header records it and ``Potential.load`` evaluates all M at once."""
    path = Path(path)
    header = {
        "schema_version": SCHEMA_VERSION,
        "format": "so3k_driver model",
        "code_version": __version__,
        "model": config.to_dict(),
        "species": list(config.species),
        "cutoff_angstrom": config.cutoff,
        "dtype": dtype,
        "units": UNITS,
        "metadata": metadata or {},
    }
    if committee_size is not None:
        header["committee_size"] = int(committee_size)
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v, np.float32) for k, v in flatten(params).items()})
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(header, indent=1))
        archive.writestr("params.npz", buffer.getvalue())
    tmp.replace(path)  # never leave a half-written model under the real name
    return path


def save_committee(path: str | Path, specs: list[str], metadata: dict | None = None) -> Path:
    """Write the models ``specs`` (same architecture and species; e.g. trained with different seeds)
    as one committee file: one jitted call evaluates all members (``Potential``)."""
    from ..model.forces import stack_parameters

    loaded = [load_model(spec) for spec in specs]
    configs = {json.dumps(config.to_dict(), sort_keys=True) for config, _, _ in loaded}
    if len(configs) != 1:
        raise ModelFileError(f"committee members must share one configuration; {', '.join(specs)} differ")
    if any("committee_size" in header for _, _, header in loaded):
        raise ModelFileError("a committee member is itself a committee; give single models")
    try:
        params = stack_parameters([p for _, p, _ in loaded])
    except ValueError as error:
        raise ModelFileError(str(error)) from None
    members = {"members": list(map(str, specs)), **(metadata or {})}
    return save_model(path, loaded[0][0], params, metadata=members, committee_size=len(specs))


def _read_own_format(path: Path) -> tuple[ModelConfig, dict, dict]:
    try:
        if path.is_dir():
            header = json.loads((path / "config.json").read_text())
            arrays = np.load(path / "params.npz", allow_pickle=False)
            flat = {k: arrays[k] for k in arrays.files}
        else:
            with zipfile.ZipFile(path) as archive:
                header = json.loads(archive.read("config.json"))
                arrays = np.load(io.BytesIO(archive.read("params.npz")), allow_pickle=False)
                flat = {k: arrays[k] for k in arrays.files}
    except (OSError, KeyError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, json.JSONDecodeError,
            UnicodeDecodeError, ValueError, NotImplementedError, RuntimeError, zlib.error) as error:
        # RuntimeError/NotImplementedError: zipfile's answers to encrypted or unknown compression
        raise ModelFileError(f"{path} is not a readable so3k model file (truncated or corrupted?): {error}") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: config.json does not hold a JSON object")
    version = header.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ModelFileError(f"{path}: schema version {version} is not supported (this code reads {SCHEMA_VERSION})")
    model = header.get("model")
    if not isinstance(model, dict):
        raise ModelFileError(f"{path}: config.json lacks the 'model' configuration")
    lacking = [key for key in REQUIRED_CONFIG_KEYS if key not in model]
    if lacking:
        raise ModelFileError(f"{path}: the model configuration lacks {', '.join(map(repr, lacking))}")
    config = _config(lambda: ModelConfig.from_dict(model), path)
    if "species" in header and tuple(header["species"]) != tuple(config.species):
        raise ModelFileError(f"{path}: its 'species' field {header['species']} differs from the configuration's "
                             f"{list(config.species)}")
    if "cutoff_angstrom" in header and float(header["cutoff_angstrom"]) != float(config.cutoff):
        raise ModelFileError(f"{path}: its 'cutoff_angstrom' field {header['cutoff_angstrom']} differs from the "
                             f"configuration's cutoff {config.cutoff} Å")
    params = unflatten(flat)
    check_parameters(config, params, path, committee_size=header.get("committee_size"))
    return config, params, header


def _config(build, source) -> ModelConfig:
    """ModelConfig from build(); a missing key or an invalid value is a ModelFileError naming source."""
    try:
        return build()
    except KeyError as error:
        raise ModelFileError(f"{source}: the model configuration lacks {error}") from None
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{source}: invalid model configuration: {error}") from None


def _shapes(tree, prefix: str = "") -> dict[str, tuple]:
    return {name: tuple(getattr(value, "shape", np.shape(value))) for name, value in leaves(tree, prefix)}


def check_parameters(config: ModelConfig, params: dict, source, committee_size: int | None = None) -> None:
    """ModelFileError unless params holds every array the configuration needs, with its shape.

    The expected shapes come from tracing the model's initialisation, remembered per configuration
    and code (parameter_shapes.py). Extra arrays are allowed (the authors' files carry heads a
    configuration may not use). A committee of M members has every shape prefixed by M.
    """
    expected = expected_shapes(config)
    actual = _shapes(params)
    lead = (int(committee_size),) if committee_size else ()
    missing = sorted(set(expected) - set(actual))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ModelFileError(f"{source}: parameter array(s) {', '.join(missing[:3])}{more} missing for this "
                             "configuration")
    for name, shape in expected.items():
        if actual[name] != lead + shape:
            raise ModelFileError(f"{source}: parameter {name} has shape {actual[name]}, the configuration "
                                 f"({'species, ' if 'embed' in name.lower() else ''}features, layers) expects "
                                 f"{lead + shape}")


# --------------------------------------------------------------------------------------------
# The authors' layouts


def config_from_mlff_hparams(h: dict) -> ModelConfig:
    """ModelConfig from an mlff ``hparams.json`` (flat keys as written by the authors' sparse builder)."""
    if "model" in h:  # nested layout (SO3LR style)
        h = {**h["model"], "avg_num_neighbors": h.get("data", {}).get("avg_num_neighbors")}
    kwargs = dict(
        num_layers=h["num_layers"],
        num_features=h["num_features"],
        num_heads=h["num_heads"],
        degrees=tuple(h["degrees"]),
        radial_basis=h.get("radial_basis_fn", "physnet"),
        num_radial=h.get("num_radial_basis_fn", 32),
        cutoff_fn=h.get("cutoff_fn", "cosine"),
        cutoff=float(h["cutoff"]),
        residual_mlp_1=bool(h.get("residual_mlp_1", False)),
        residual_mlp_2=bool(h.get("residual_mlp_2", False)),
        layer_norm_1=bool(h.get("layer_normalization_1", False)),
        layer_norm_2=bool(h.get("layer_normalization_2", False)),
        message_normalization=h.get("message_normalization", "sqrt_num_features"),
        avg_num_neighbors=h.get("avg_num_neighbors"),
        qk_nonlinearity=h.get("qk_non_linearity", "identity"),
        activation=h.get("activation_fn", "silu"),
        energy_regression_dim=h.get("energy_regression_dim", h["num_features"]),
        energy_activation=h.get("energy_activation_fn", "silu"),
        learn_atomic_scales=bool(h.get("energy_learn_atomic_type_scales", False)),
        learn_atomic_shifts=bool(h.get("energy_learn_atomic_type_shifts", False)),
        charge_embedding=bool(h.get("use_charge_embed", False)),
        spin_embedding=bool(h.get("use_spin_embed", False)),
        zbl_repulsion=bool(h.get("zbl_repulsion_bool", False)),
        electrostatics=bool(h.get("electrostatic_energy_bool", False)),
        dispersion=bool(h.get("dispersion_energy_bool", False)),
        electrostatic_sigma=float(h.get("electrostatic_energy_scale", 4.0)),
        dispersion_scale=float(h.get("dispersion_energy_scale", 1.2)),
    )
    if kwargs["electrostatics"] or kwargs["dispersion"]:
        kwargs["species"] = tuple(range(1, 100))  # charge and Hirshfeld tables have 100 rows
    return ModelConfig(**kwargs)


def _read_authors_layout(directory: Path, hparams_name: str) -> tuple[ModelConfig, dict, dict]:
    if not directory.is_dir():
        raise ModelFileError(f"{directory} is not a directory (expected params.pkl and {hparams_name} in it)")
    missing = [n for n in ("params.pkl", hparams_name) if not (directory / n).is_file()]
    if missing:
        raise ModelFileError(f"{directory} lacks {', '.join(missing)}")
    try:
        hparams = json.loads((directory / hparams_name).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{directory / hparams_name}: invalid JSON: {error}") from error
    if not isinstance(hparams, dict):
        raise ModelFileError(f"{directory / hparams_name}: not a JSON object")
    config = _config(lambda: config_from_mlff_hparams(hparams), directory / hparams_name)
    tree = restricted_load_pickle(directory / "params.pkl")
    if not isinstance(tree, dict) or not isinstance(tree.get("params"), dict):
        raise ModelFileError(f"{directory / 'params.pkl'} does not hold a {{'params': ...}} parameter tree")
    params = {"params": tree["params"]}
    check_parameters(config, params, directory / "params.pkl")
    return config, params, {"source": str(directory), "hparams": hparams}


def absolute_model_spec(spec: str) -> str:
    """``spec`` with its file or folder made absolute (``mlff:DIR``, ``so3lr:DIR``, FILE), so that a run
    started from another folder finds the same model; a bundled model's name stays as it is."""
    spec = str(spec)
    for prefix in ("mlff:", "so3lr:"):
        if spec.startswith(prefix):
            return prefix + str(Path(spec[len(prefix):]).expanduser().resolve())
    if spec in BUNDLED_MODELS or spec in MODEL_ALIASES:
        return spec
    return str(Path(spec).expanduser().resolve())


def model_fingerprint(spec: str) -> str:
    """16 hex digits of SHA-256 over the model's configuration and every parameter (name, dtype, shape,
    values): equal exactly when two specs compute the same function. A study records it, so that a model
    file overwritten in place, or a bundled ``default`` that a package update replaced, is noticed."""
    config, params, _ = load_model(spec)
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for name, value in sorted(flatten(params).items()):
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def bundled_model_with_fingerprint(fingerprint: str) -> str | None:
    """The name of the bundled model whose parameters have this fingerprint, or None: tells a study that
    recorded the earlier ``default`` which name that model is bundled under now."""
    for name, file in BUNDLED_MODELS.items():
        if resources.files("so3k_driver.data").joinpath(file).is_file() and model_fingerprint(name) == fingerprint:
            return name
    return None


def load_model(spec: str) -> tuple[ModelConfig, dict, dict]:
    """Load (config, params, header) for a model spec (see the module docstring)."""
    spec = str(spec)
    if spec.startswith("mlff:"):
        return _read_authors_layout(Path(spec[5:]).expanduser(), "hparams.json")
    if spec.startswith("so3lr:"):
        return _read_authors_layout(Path(spec[6:]).expanduser(), "hyperparameters.json")
    spec = MODEL_ALIASES.get(spec, spec)
    if spec in BUNDLED_MODELS:
        bundled = resources.files("so3k_driver.data").joinpath(BUNDLED_MODELS[spec])
        if not bundled.is_file():
            raise ModelFileError(f"this installation has no bundled model {spec!r}; pass a model file, mlff:DIR or so3lr:DIR")
        with resources.as_file(bundled) as path:
            return _read_own_format(Path(path))
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelFileError(f"model {spec!r} not found (give {MODEL_SPECS})")
    return _read_own_format(path)
