"""Analysis of i-PI + PLUMED sampling runs (``so3k analyze``)."""
