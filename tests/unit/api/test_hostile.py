"""`tideserve validate` on the hostile-manifest table: each refused with the field named,
or accepted, as the table says (the API server's verdicts: test_admission.py)."""

from __future__ import annotations

import re

import pytest
from tideserve_testbed import hostile

from tideserve.api import formats, manifests

pytestmark = pytest.mark.unit

CASES = hostile.cases()


def test_the_table_is_large_and_mostly_hostile() -> None:
    assert len(CASES) > 100
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(c.field is not None for c in CASES) > 80


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_gives_the_tables_verdict(case: hostile.Case) -> None:
    (document,) = manifests.load_all(case.text)
    assert isinstance(document, dict)
    found = "; ".join(manifests.problems(document))
    if case.field is None:
        assert found == ""
    else:
        assert case.field in found, found


# The regular expressions held invisible and bidirectional characters (a refused storageUri
# printed U+202E, which turned the rest of the terminal line around).
UNREADABLE = re.compile(rf"[\x00-\x09\x0b-\x1f{formats.INVISIBLE}]|should match pattern")


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.field], ids=[c.id for c in CASES if c.field]
)
def test_refusals_say_why_in_words_not_regular_expressions(case: hostile.Case) -> None:
    (document,) = manifests.load_all(case.text)
    assert isinstance(document, dict)
    found = "; ".join(manifests.problems(document))
    if case.id != "env-value-nul":  # ^[^\x00]*$ stays a schema pattern (CEL cost)
        assert not UNREADABLE.search(found), found
