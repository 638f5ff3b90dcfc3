"""Right-sizing: usage -> CPU/memory requests, accelerator choice against an SLO, cost.

Pure core: quantities, catalog, histograms, recommender, accelerators, fit, effective, cost.
Thin shell: signals (Prometheus), kube (API server), loop, profiling (tritonclient), commands.
"""
