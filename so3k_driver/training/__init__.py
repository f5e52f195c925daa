"""Training, testing and data labelling for SO3krates models (units: Å, eV, eV/Å throughout)."""
