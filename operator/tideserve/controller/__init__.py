"""The reconciler: kopf handlers that render, apply and report (see handlers.py)."""
