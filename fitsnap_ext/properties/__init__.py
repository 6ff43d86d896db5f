"""Property engine: simulated properties of any LAMMPS potential from readable decks in lammps_scripts/."""
from fitsnap_ext.properties.engine import run_properties

__all__ = ["run_properties"]
