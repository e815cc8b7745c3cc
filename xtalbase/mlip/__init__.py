"""Machine-learning interatomic potentials (HDNNP): training data, descriptors, networks."""
