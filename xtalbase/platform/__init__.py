"""Engine and sessions, configuration, provenance capture, the query API and executors."""
