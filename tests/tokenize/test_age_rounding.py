"""Age tokens under ``age_rounding="ethos"`` (ARES.md S13): the reference's rule — whole days /
365.25, banker's rounding of the units with carry — against its table, and through both backends."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from ehrfast.backends import core
from ehrfast.tokenize import TokenizedDataset, TokenizerConfig, tokenize_dataset
from ehrfast.tokenize.reference import age_digits, ethos_digits_of_age

from .conftest import write_meds

# age -> (Ref tokens, Now tokens) of ARES.md S13
TABLE = {46.0: ("Q5 Q7", "Q5 Q7"), 46.5: ("Q5 Q7", "Q5 Q8"), 49.7: ("Q6 Q1", "Q5 Q10"), 89.5: ("Q10 Q1", "Q9 Q10"),
         99.9: ("Q10 Q10", "Q10 Q10")}


def _q(digits):
    return " ".join(f"Q{d + 1}" for d in digits)


@pytest.mark.parametrize("age", sorted(TABLE))
def test_table_of_the_specification(age):
    ref, now = TABLE[age]
    assert _q(ethos_digits_of_age(age, 10)) == ref
    assert _q(age_digits(age, 10)) == now


@pytest.mark.skipif(core is None, reason="C++ core not built")
@pytest.mark.parametrize("backend", ["cpp", "python"])
def test_both_backends_follow_the_reference_rule(tmp_path, backend):
    t0 = datetime(2020, 1, 1)
    # births whole days before t0: 16801 d = 45.9986 y (Q5 Q7), 18153 d = 49.70 y (carry: Q6 Q1),
    # 36524 d = 99.9986 y (capped: Q10 Q10), 3652 d = 9.9986 y (carry: Q2 Q1)
    days = {1: 16801, 2: 18153, 3: 36524, 4: 3652}
    rows = [(s, t0 - timedelta(days=d), "MEDS_BIRTH", None) for s, d in days.items()] + [(s, t0, "A", None) for s in days]
    meds = write_meds(tmp_path / "meds", {"train": rows})
    tokenize_dataset(meds, tmp_path / "out", TokenizerConfig(age_rounding="ethos"), backend=backend, progress=False)
    ds = TokenizedDataset(tmp_path / "out" / "train")
    got = {int(s): " ".join(ds.decode(ds.timeline(i)[0][:2])) for i, s in enumerate(ds.subject_ids)}
    assert got == {1: "Q5 Q7", 2: "Q6 Q1", 3: "Q10 Q10", 4: "Q2 Q1"}
    # contexts recompute the age with the same rule
    tokens, _ = ds.context(2, int((t0 - datetime(1970, 1, 1)) / timedelta(microseconds=1)))
    assert ds.decode(tokens[:2]) == ["Q6", "Q1"]
    assert np.array_equal(ds.timeline(0)[0][:2], ds.timeline(0)[0][:2])
