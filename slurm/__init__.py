"""A throwaway Slurm cluster for the tests (slurm/cluster.py). Standard library only: this package
imports no project module (tests/test_layers.py)."""
