"""The InferenceService API: pydantic models are the single source of truth; crds/ is
generated from them (`tideserve crds`)."""
