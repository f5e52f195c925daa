"""Pure-JAX host code around the model: the potential, batching, neighbour lists, input checks."""
