"""Use cases: one module each, taking ports and nothing else."""
