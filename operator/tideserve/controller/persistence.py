"""kopf's state in annotations, read so that a hand-edited annotation cannot wedge an object.

kopf keeps the last handled spec and each handler's progress as JSON in annotations of
the InferenceService (the status schema is strict). Anyone who may edit the object may
edit those too, and kopf's own readers raise on anything but JSON: every event of that
object then ends in a stack trace and it is never reconciled again. Here a value that is
not a JSON object counts as absent, with a warning: the object is handled as new (the
reconcile is idempotent) and kopf writes the annotation afresh.
"""

from __future__ import annotations

import logging

import kopf

log = logging.getLogger(__name__)


def _where(body: kopf.Body) -> str:
    return f"{body.metadata.namespace}/{body.metadata.name}"


class DiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        try:
            essence: object = super().fetch(body=body)
        except ValueError:  # json.JSONDecodeError
            essence = "not JSON"
        if essence is None or isinstance(essence, dict):
            return essence  # type: ignore[return-value]  # kopf's TypedDict
        log.warning("%s: annotation %s is not a JSON object; handling the object as new",
                    _where(body), self.key)  # fmt: skip
        return None


class ProgressStorage(kopf.AnnotationsProgressStorage):
    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        try:
            record: object = super().fetch(key=key, body=body)
        except ValueError:  # json.JSONDecodeError
            record = "not JSON"
        if record is None or isinstance(record, dict):
            return record  # type: ignore[return-value]  # kopf's TypedDict
        log.warning("%s: progress annotation of %s is not a JSON object; starting it over",
                    _where(body), key)  # fmt: skip
        return None
