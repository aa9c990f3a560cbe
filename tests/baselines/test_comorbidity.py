from __future__ import annotations

import numpy as np
import pytest

from ehrfast.baselines.comorbidity import FLAG_NAMES, comorbidity_flags, expand


def test_expand_ranges():
    assert expand("I60-I69") == [f"I6{i}" for i in range(10)]
    assert expand("K700-K703") == ["K700", "K701", "K702", "K703"]
    assert expand("E66") == ["E66"]
    with pytest.raises(ValueError):
        expand("I60-J69")


def test_flags_of_known_codes():
    flags = comorbidity_flags(["E119", "E11.22", "I219", "C787", "F329", "I10", "Z000"])
    on = [{FLAG_NAMES[j] for j in np.flatnonzero(row)} for row in flags]
    assert on[0] == {"cci_diabetes_without_complication", "eci_diabetes_uncomplicated"}
    assert on[1] == {"cci_diabetes_with_complication", "eci_diabetes_complicated"}
    assert on[2] == {"cci_myocardial_infarction"}
    assert on[3] == {"cci_metastatic_solid_tumor", "eci_metastatic_cancer"}
    assert on[4] == {"eci_depression"}
    assert on[5] == {"eci_hypertension_uncomplicated"}
    assert on[6] == set()
    assert len(FLAG_NAMES) == 17 + 31
