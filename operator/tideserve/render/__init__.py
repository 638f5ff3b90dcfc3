"""Pure builders: an InferenceService (plus settings and observed facts) in, child manifests out.

Nothing here talks to the API server. Every function returns fresh dicts and never
mutates its inputs, and child names are deterministic so a retried apply converges on
the same objects instead of duplicating them.
"""
