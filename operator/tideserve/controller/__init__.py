"""The reconciler: kopf handlers that render, apply and report.

Layers (checked by tests/unit/controller/test_layers.py):

    main        `tideserve run`: settings, kopf, metrics server, in-process loops
    handlers    thin kopf handlers (create/update/resume -> apply; watch events -> cache)
    refresher   one refresh per object at a time, bursts of events coalesced
    reconcile   Reconciler.apply (validate, check, render, apply unless the plan's digest
                is unchanged) and .refresh (status, route, drift repair)
    store       the watch cache of InferenceServices, children, pods, activator slices
    status, checks, routes, sizing, drift
                pure decisions: conditions from children's state; deep checks against
                cluster facts; route endpoints; right-sizing's hardware (lazy import);
                which children were deleted or edited by hand (from managedFields)
    kube        the only module that talks to the API server, and the one place its
                errors become kopf.TemporaryError / kopf.PermanentError

Builders of the child manifests live in tideserve.render (pure).
"""
