"""Next-token readouts (ARES.md S9): DRG and SOFA as the softmax over their candidate tokens, on a
toy model whose logits are known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import ares_double as D  # noqa: E402

from ehrfast.errors import InvalidInputError  # noqa: E402
from ehrfast.infer.ares.next_token import DRG, SOFA, SOFA_AT_UNIT, read_next_tokens  # noqa: E402
from ehrfast.tokenize.dataset import TokenizedDataset  # noqa: E402
from ehrfast.tokenize.vocab import Vocabulary  # noqa: E402

TOKENS = ["[PAD]", "[UNK]", "TIMELINE_END", "GENDER//F", "Q1", "Q2", "Q3", "LAB//A", "DRG//HCFA//001", "DRG//HCFA//002",
          "DRG//HCFA//003", "DRG//HCFA//UNKNOWN", "DRG//APR//9", "ICU_ADMISSION", "ICU_TYPE//A", "ICU_TYPE//B", "SOFA"]
KINDS = ["special"] * 3 + ["static"] + ["quantile"] * 3 + ["code"] * 10
ID = {t: i for i, t in enumerate(TOKENS)}
V = len(TOKENS)
LOGITS = torch.as_tensor(np.random.default_rng(0).normal(size=(V, V)) * 2.0)


def model(idx, prs=None):
    """logits [B, L, V]: a fixed random row per last token."""
    return LOGITS[idx]


def _softmax_over(last: str, candidates: list[str]) -> np.ndarray:
    z = LOGITS[ID[last], [ID[c] for c in candidates]].numpy()
    return np.exp(z - z.max()) / np.exp(z - z.max()).sum()


@pytest.fixture
def ds(tmp_path):
    t = [ID["GENDER//F"], ID["LAB//A"], ID["ICU_ADMISSION"], ID["ICU_TYPE//B"], ID["SOFA"], ID["Q3"], ID["LAB//A"], ID["DRG//APR//9"],
         ID["DRG//HCFA//002"]]
    u = [ID["GENDER//F"], ID["LAB//A"], ID["Q1"], ID["DRG//HCFA//UNKNOWN"], ID["ICU_ADMISSION"], ID["ICU_TYPE//A"], ID["LAB//A"]]
    return TokenizedDataset(D.write_tokens(tmp_path / "t", Vocabulary(TOKENS, KINDS), {1: (t, list(range(len(t)))), 2: (u, list(range(len(u))))}))


def test_drg_reads_the_softmax_over_drg_tokens_before_the_real_one(ds):
    reads = read_next_tokens(model, ds, DRG)
    # every HCFA DRG token is a candidate (the reference's stop set), UNKNOWN too; reads whose real DRG is UNKNOWN are skipped
    assert reads.candidates == ["DRG//HCFA//001", "DRG//HCFA//002", "DRG//HCFA//003", "DRG//HCFA//UNKNOWN"]
    assert reads.subject_id.tolist() == [1]  # subject 2's only DRG is UNKNOWN: excluded
    # the context ends just before the DRG token: its last token is the APR DRG
    np.testing.assert_allclose(reads.probabilities[0], _softmax_over("DRG//APR//9", reads.candidates), rtol=1e-12)
    assert reads.truth.tolist() == [1]
    order = np.argsort(-reads.probabilities[0])
    assert reads.top_k_accuracy(1) == float(order[0] == 1) and reads.top_k_accuracy(4) == 1.0


def test_sofa_appends_the_forced_tokens_before_the_read_and_parity_marginalises_the_type(ds):
    reads = read_next_tokens(model, ds, SOFA)
    assert reads.subject_id.tolist() == [1]  # subject 2 has no SOFA after its ICU type
    q = ["Q1", "Q2", "Q3"]
    expected = _softmax_over("SOFA", q)  # the last token read is the forced SOFA
    np.testing.assert_allclose(reads.probabilities[0], expected, rtol=1e-12)
    assert reads.truth.tolist() == [2]
    np.testing.assert_allclose(reads.expected_quantile(), [expected @ [1, 2, 3]])
    parity = read_next_tokens(model, ds, SOFA, parity=True)
    types = ["ICU_TYPE//A", "ICU_TYPE//B"]
    p_type = _softmax_over("ICU_ADMISSION", types)
    # this toy model reads only the last token, so p(Q | ..., type, SOFA) is the SOFA row for both types
    np.testing.assert_allclose(parity.probabilities[0], sum(p_type[j] * expected for j in range(2)), rtol=1e-12)


def test_marginal_is_the_sum_over_types_for_a_model_that_remembers_the_type(ds):
    def remembers(idx, prs=None):
        out = LOGITS[idx].clone()
        has_b = (idx == ID["ICU_TYPE//B"]).any(1)
        out[has_b, :, ID["Q1"]] += 3.0
        return out

    parity = read_next_tokens(remembers, ds, SOFA, parity=True)
    p_type = _softmax_over("ICU_ADMISSION", ["ICU_TYPE//A", "ICU_TYPE//B"])
    z = LOGITS[ID["SOFA"], [ID["Q1"], ID["Q2"], ID["Q3"]]].numpy()
    with_b = z + [3.0, 0, 0]
    soft = lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum()  # noqa: E731
    np.testing.assert_allclose(parity.probabilities[0], p_type[0] * soft(z) + p_type[1] * soft(with_b), rtol=1e-12)


def test_a_missing_forced_token_is_a_clear_error(ds):
    with pytest.raises(InvalidInputError, match="SOFA"):
        read_next_tokens(model, ds, SOFA_AT_UNIT.__class__("x", at="^ICU_ADMISSION$", candidates="^Q", context="at", forced=("SOFA_NOPE",)))
