"""tideserve: a Kubernetes operator for autoscaled NVIDIA Triton model endpoints."""

__version__ = "0.1.0"
