"""Sampling studies: settings, i-PI and PLUMED inputs, peptide observables, runs and analysis."""
