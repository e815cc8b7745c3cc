"""CSP models: the interface and registry (:mod:`.base`), CPU baselines (:mod:`.baselines`), DiffCSP in torch."""
