"""so3k_driver: SO3krates / SO3LR machine-learned force fields in JAX, served to i-PI.

Importing the package has no side effects on JAX's global configuration; float64 evaluation
is enabled only inside the calls of a float64 model.
"""

from .version import __version__

__all__ = ["Potential", "ModelConfig", "__version__"]


def __getattr__(name):
    # Lazy imports keep `import so3k_driver` cheap (JAX is imported on first use).
    if name == "Potential":
        from .evaluation.potential import Potential

        return Potential
    if name == "ModelConfig":
        from .model.config import ModelConfig

        return ModelConfig
    raise AttributeError(name)
