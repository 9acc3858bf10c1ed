"""The cost benchmark: gpuflow's spot policy against the alternatives and the hindsight optimum, in simulated time.

``make bench-cost`` (``python -m bench.cost``) runs a job mix over the paper's AWS spot traces and synthetic GCP and
Azure zones, with every policy scored on the same jobs; docs/cost-benchmark.md says what is modelled and why.
"""
