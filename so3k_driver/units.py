"""Physical constants and the one place where unit conversions live.

Internal units of the package: Å (length), eV (energy), eV/Å (force), eV/Å^3 (stress),
eV (virial). i-PI talks atomic units (bohr, hartree); conversions to and from it use
only the factors below. Values are CODATA 2014 as used by ASE (``ase.units``), so numbers
agree with ASE-based tools and with the SO3LR reference code.
"""

BOHR_IN_ANGSTROM = 0.5291772105638411
HARTREE_IN_EV = 27.211386024367243
FINE_STRUCTURE = 0.007297352566206496
# Coulomb constant e^2/(4 pi eps0) in eV * Å.
COULOMB_EV_ANGSTROM = HARTREE_IN_EV * BOHR_IN_ANGSTROM
KCAL_PER_MOL_IN_EV = 0.04336410390059322
KJ_PER_MOL_IN_EV = 0.010364269574711572
BOLTZMANN_EV_PER_K = 8.617330337217213e-05
SPEED_OF_LIGHT_CM_PER_PS = 2.99792458e-2  # a frequency of 1/ps is 33.356 cm^-1
# 1 eV in amu Å^2 / ps^2: a force constant of k eV/Å^2 on a mass of m amu vibrates at
# omega = sqrt(k / m * EV_IN_AMU_ANGSTROM2_PER_PS2) rad/ps.
EV_IN_AMU_ANGSTROM2_PER_PS2 = 9648.533290731906
HBAR_EV_PS = 6.582119513599133e-4
# 1 amu Å^2 in kg m^2 (moments of inertia; CODATA 2014 atomic mass unit).
AMU_ANGSTROM2_IN_KG_M2 = 1.660539040e-47
# i-PI's time units in ps (its atomic unit of time is hbar/hartree).
PICOSECONDS_PER_TIME_UNIT = {"picosecond": 1.0, "femtosecond": 1e-3, "nanosecond": 1e3,
                             "atomic_unit": 2.4188843265857e-5}

ANGSTROM_IN_BOHR = 1.0 / BOHR_IN_ANGSTROM
EV_IN_HARTREE = 1.0 / HARTREE_IN_EV
EV_PER_ANGSTROM_IN_HARTREE_PER_BOHR = BOHR_IN_ANGSTROM / HARTREE_IN_EV


def energy_to_ev(value, unit: str):
    """Convert an energy (scalar or array) given in ``unit`` to eV."""
    return value * _energy_factor(unit)


def _energy_factor(unit: str) -> float:
    factors = {
        "ev": 1.0,
        "mev": 1e-3,
        "hartree": HARTREE_IN_EV,
        "ha": HARTREE_IN_EV,
        "kcal/mol": KCAL_PER_MOL_IN_EV,
        "kj/mol": KJ_PER_MOL_IN_EV,
    }
    try:
        return factors[unit.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown energy unit {unit!r}; known: eV, meV, hartree, kcal/mol, kJ/mol"
        ) from None
