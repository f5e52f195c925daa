"""Serving SO3krates/SO3LR to i-PI: wire protocol, transports, the driver loop, the ``so3k run``
launcher and an i-PI PES module. Nothing here imports JAX until a model is loaded."""
