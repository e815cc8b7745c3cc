"""Symmetry engine names and the default tolerance: constants only, so the CLI's option table imports nothing heavy."""

#: Default distance tolerance in Å (pymatgen's and Materials Project's default).
DEFAULT_SYMPREC = 0.01
#: Symmetry engines: spglib (default) and moyopy.
SYMMETRY_ENGINES = ("spglib", "moyo")
DEFAULT_ENGINE = "spglib"
