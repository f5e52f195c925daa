"""Host code around the pure-JAX model: the Potential, batching, neighbour lists, input checks, minimiser."""
