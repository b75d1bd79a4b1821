"""Certification: proofs (or refutations) that no perturbation within epsilon changes a
prediction. Pure functions on a `ReluNetwork` (FGP, the exact MILP, IBP/CROWN, Lipschitz
margins) or on any callable (randomized smoothing)."""
