"""Pure JAX/Flax: SO3krates and SO3LR modules, the model configuration and the one force function."""
