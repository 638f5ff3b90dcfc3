"""The reconciler: kopf handlers that render, apply and report.

Layers (checked by tests/unit/controller/test_layers.py; the package's place among the
others by the import contract in pyproject.toml):

    main        `tideserve run`: settings, kopf, metrics server, in-process loops (the
                composition root: it alone imports the autoscaler and right-sizing loops)
    handlers    thin kopf handlers (create/update/resume -> apply; watch events -> cache)
    refresher   one refresh per object at a time, bursts of events coalesced
    reconcile   Reconciler.apply (validate, check, render, apply unless the plan's digest
                is unchanged) and .refresh (status, route, drift repair)
    store       the watch cache of InferenceServices, children, pods, activator slices
    status, checks, routes, sizing, drift
                pure decisions: conditions from children's state; deep checks against
                cluster facts; route endpoints; right-sizing's hardware;
                which children were deleted or edited by hand (from managedFields)
The Kubernetes client (the one place its errors become kopf.TemporaryError /
kopf.PermanentError) is tideserve.kube, shared with the autoscaler and right-sizing.
Builders of the child manifests live in tideserve.render (pure).
"""
