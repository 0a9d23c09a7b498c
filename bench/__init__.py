"""`python -m bench`: micro-benchmarks whose results are ratios against a baseline measured in the same run."""
