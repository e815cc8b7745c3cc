"""One module per ``xtalbase`` command group; each imports heavy libraries only inside its commands."""
