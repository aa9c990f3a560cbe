"""PRS scorer backends agree on random inputs; compute_prs end to end; clear errors."""

from __future__ import annotations

import json
import os
from unittest import mock

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrfast.backends import core
from ehrfast.genomics import score as score_mod
from ehrfast.genomics.bed import PlinkWriter, Variant
from ehrfast.genomics.genotypes import BedSource, GenotypeError, GenotypeSource, VariantTable, open_genotypes
from ehrfast.genomics.match import TraitMatch
from ehrfast.genomics.prs import PRSOptions, compute_prs, keep_top_variants
from ehrfast.genomics.score import DENSE_MIN_TRAITS, MODELS, ScoreModel, score_traits
from ehrfast.genomics.scorefile import ScoreFileError, read_score_file

pytestmark = pytest.mark.skipif(core is None, reason="C++ core not built")


class ArraySource(GenotypeSource):
    """Fractional ALT dosages held in memory (a stand-in for .pgen / VCF)."""

    kind = "array"

    def __init__(self, dosages):
        self.path = "<array>"
        self._x = dosages
        self.sample_ids = np.array([f"s{i}" for i in range(dosages.shape[1])], dtype=object)
        n = dosages.shape[0]
        self.variants = VariantTable(np.array(["1"] * n, dtype=object), np.arange(n), np.array([f"v{i}" for i in range(n)], dtype=object),
                                     np.array(["A"] * n, dtype=object), np.array(["G"] * n, dtype=object))

    def dosages(self, idx):
        return self._x[np.asarray(idx)]


models = st.sampled_from([
    ScoreModel(), ScoreModel(mean_impute=False), ScoreModel(model="dominant"), ScoreModel(model="recessive"),
    ScoreModel(center=True), ScoreModel(center=True, plink2_center_quirk=True), ScoreModel(variance_standardize=True),
    ScoreModel(variance_standardize=True, plink2_center_quirk=True, mean_impute=False),
])


@st.composite
def problems(draw):
    n_var, n_samples, n_traits = draw(st.integers(1, 40)), draw(st.integers(2, 30)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    geno = rng.integers(0, 3, (n_var, n_samples)).astype(np.int8)
    geno[rng.random(geno.shape) < draw(st.sampled_from([0.0, 0.1, 0.4]))] = -1
    geno[:, 0] = np.where(geno[:, 0] < 0, 1, geno[:, 0])  # every variant keeps one call
    matches = []
    for t in range(n_traits):
        k = int(rng.integers(1, n_var + 1))
        v = np.sort(rng.choice(n_var, k, replace=False))
        matches.append(TraitMatch(f"t{t}", "x", v, rng.random(k) < 0.5, rng.standard_normal(k), {}))
    if draw(st.booleans()):  # a wide score file: traits sharing variants and alleles (the dense path)
        k = int(rng.integers(1, n_var + 1))
        v, eff = np.sort(rng.choice(n_var, k, replace=False)), rng.random(k) < 0.5
        w = rng.standard_normal((k, draw(st.integers(DENSE_MIN_TRAITS, 20)))) * (rng.random((k, 1)) < 0.8)
        matches += [TraitMatch(f"w{j}", "wide", v, eff, w[:, j].copy(), {}) for j in range(w.shape[1])]
    return geno, matches, rng


@given(problems(), models)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_bed_backends_agree(tmp_path_factory, problem, model):
    geno, matches, _ = problem
    prefix = tmp_path_factory.mktemp("bed") / "g"
    with PlinkWriter(prefix, [f"s{i}" for i in range(geno.shape[1])]) as w:
        w.write(geno, [Variant("1", f"v{i}", 0, i + 1, "G", "A") for i in range(geno.shape[0])])
    src = BedSource(prefix)
    a = score_traits(src, matches, model, backend="cpp", plink2_columns=True, block=7)
    b = score_traits(src, matches, model, backend="python", plink2_columns=True, block=5)
    for x, y in ((a.sums, b.sums), (a.allele_ct, b.allele_ct), (a.named_sum, b.named_sum), (a.denom, b.denom)):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)


@given(problems(), st.integers(1, 15), st.integers(1, 25), st.sampled_from(["cpp", "python"]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_tasks_of_variant_blocks_and_trait_groups_give_the_one_task_scores(tmp_path_factory, problem, variant_block, trait_block,
                                                                           backend):
    """What --cluster distributes (variant block x trait group) adds up to the scores of one task."""
    geno, matches, _ = problem
    prefix = tmp_path_factory.mktemp("bed") / "g"
    with PlinkWriter(prefix, [f"s{i}" for i in range(geno.shape[1])]) as w:
        w.write(geno, [Variant("1", f"v{i}", 0, i + 1, "G", "A") for i in range(geno.shape[0])])
    src = BedSource(prefix)
    whole = score_traits(src, matches, backend=backend, plink2_columns=True, variant_block=10**6, trait_block=10**6)
    steps = []
    split = score_traits(src, matches, backend=backend, plink2_columns=True, variant_block=variant_block, trait_block=trait_block,
                         progress=steps.append)
    for x, y in ((split.sums, whole.sums), (split.allele_ct, whole.allele_ct), (split.named_sum, whole.named_sum), (split.denom, whole.denom)):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(split.allele_ct, whole.allele_ct)  # counts are integers: exact in any order
    assert split.effect_allele_freq.keys() == whole.effect_allele_freq.keys()
    for trait, p in whole.effect_allele_freq.items():
        np.testing.assert_array_equal(split.effect_allele_freq[trait], p)
    assert sum(steps) == len(score_mod.distinct_variants(matches))  # progress counts distinct variants, however split
    with mock.patch.object(score_mod, "RESIDENT_ROWS_BYTES", 0):  # every chunk's rows unmapped after use: the same bits
        released = score_traits(src, matches, backend=backend, plink2_columns=True, variant_block=variant_block, trait_block=trait_block)
    for x, y in ((released.sums, split.sums), (released.named_sum, split.named_sum)):
        np.testing.assert_array_equal(x, y)


def test_traits_per_task_bounds_the_partial_sums():
    assert score_mod.traits_per_task(400_000, 2_000, plink2_columns=False) == 167  # 512 MiB / (8 B x 400,000)
    assert score_mod.traits_per_task(400_000, 2_000, plink2_columns=True) == 55
    assert score_mod.traits_per_task(2_504, 100, plink2_columns=True) == 100  # a small cohort: one group
    assert score_mod.traits_per_task(10**9, 5, plink2_columns=False) == 1
    assert score_mod.traits_per_task(100, 5, plink2_columns=False, trait_block=3) == 3
    with pytest.raises(score_mod.InvalidInputError, match="trait_block"):
        score_mod.traits_per_task(100, 5, plink2_columns=False, trait_block=0)


@given(problems(), models)
@settings(max_examples=150, deadline=None)
def test_dosage_backends_agree(problem, model):
    geno, matches, rng = problem
    x = np.where(geno < 0, np.nan, geno + rng.uniform(-0.35, 0.35, geno.shape)).clip(0, 2)  # fractional dosages
    src = ArraySource(x)
    a = score_traits(src, matches, model, backend="cpp", plink2_columns=True, block=6)
    b = score_traits(src, matches, model, backend="python", plink2_columns=True, block=9)
    for p, q in ((a.sums, b.sums), (a.allele_ct, b.allele_ct), (a.named_sum, b.named_sum)):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)


def test_dense_weights_use_the_matrix_path_and_agree(tmp_path):
    rng = np.random.default_rng(0)
    geno = rng.integers(-1, 3, (300, 50)).astype(np.int8)
    geno[:, 0] = 1
    prefix = tmp_path / "g"
    with PlinkWriter(prefix, [f"s{i}" for i in range(50)]) as w:
        w.write(geno, [Variant("1", f"v{i}", 0, i + 1, "C", "T") for i in range(300)])
    src = BedSource(prefix)
    variants, effect_is_alt = np.arange(300), rng.random(300) < 0.5  # one wide file: shared arrays
    matches = [TraitMatch(f"t{t}", "x", variants, effect_is_alt, rng.standard_normal(300), {}) for t in range(20)]
    assert len(score_mod._split_dense(matches, unit_weights=False)[0]) == 1
    matches.append(TraitMatch("single", "y", np.arange(0, 300, 7), np.ones(43, bool), rng.standard_normal(43), {}))  # sparse path
    steps = []
    a = score_traits(src, matches, backend="cpp", progress=steps.append, block=64)
    b = score_traits(src, matches, backend="python")
    np.testing.assert_allclose(a.sums, b.sums, rtol=1e-9)
    assert sum(steps) == 300 and all(isinstance(k, int) and k > 0 for k in steps)  # whole variants, adding up to the union


def test_keep_top_variants():
    m = TraitMatch("t", "x", np.arange(5), np.ones(5, bool), np.array([0.1, -3.0, 2.0, 0.0, -2.0]), {})
    kept = keep_top_variants(m, 3)
    assert kept.variant.tolist() == [1, 2, 4] and kept.report["variants_dropped_by_max"] == 2
    assert keep_top_variants(m, None) is m


def test_compute_prs_on_synthetic_cohort(small_cohort, tmp_path):
    root, cfg, summary = small_cohort
    out = tmp_path / "PRS.parquet"
    scores = sorted((root / "genomics" / "scores").glob("*.txt"))
    s = compute_prs(root / "genomics" / "genotypes", scores, out, meds_dir=root, progress=False)
    t = pq.read_table(out)
    assert t.column_names[:3] == ["family_id", "sample_id", "subject_id"] and t.num_rows == summary.n_genotyped
    assert s.n_subjects_mapped == summary.n_genotyped and len(s.traits) + len(s.dropped_traits) == len(scores)
    meta = json.loads((tmp_path / "prs_meta.json").read_text())
    assert meta["standardization"]["fitted_on"] == "MEDS train split"
    assert meta["match"]["SYN_T2D"]["ambiguous_excluded"] > 0 and meta["match"]["SYN_T2D"]["flipped"] > 0
    values = t.column("SYN_T2D").to_numpy()
    assert np.abs(values).max() <= 4.0 and abs(values.mean()) < 0.2
    truth = pq.read_table(root / "ground_truth" / "subjects.parquet").to_pandas().set_index("subject_id")
    ids = t.column("subject_id").to_numpy()
    assert np.corrcoef(values, truth.loc[ids, "liability_T2D"])[0, 1] > 0.5
    with pytest.raises(FileExistsError):
        compute_prs(root / "genomics" / "genotypes", scores, out, progress=False)
    raw = compute_prs(root / "genomics" / "genotypes", scores[:1], tmp_path / "raw.parquet", PRSOptions(raw=True), progress=False)
    assert raw.traits == [scores[0].stem]


def _bed(tmp_path, n_samples=4, iids=None):
    prefix = tmp_path / "g"
    with PlinkWriter(prefix, iids or [str(100 + i) for i in range(n_samples)]) as w:
        w.write(np.ones((2, n_samples), np.int8), [Variant("1", "rs1", 0, 10, "A", "G"), Variant("1", "rs2", 0, 20, "C", "T")])
    return prefix


def test_bad_inputs(tmp_path):
    good = tmp_path / "s.tsv"
    good.write_text("ID\teffect_allele\tT1\nrs1\tA\t0.5\nrs2\tC\t1.0\n")
    prefix = _bed(tmp_path)
    (tmp_path / "no_allele.tsv").write_text("ID\tweight\nrs1\t0.5\n")
    with pytest.raises(ScoreFileError, match="unrecognised columns"):
        read_score_file(tmp_path / "no_allele.tsv")
    (tmp_path / "nonnum.tsv").write_text("ID\teffect_allele\tT1\nrs1\tA\tabc\n")
    with pytest.raises(ScoreFileError, match=r"line 2: column 'T1' has non-numeric weight 'abc'"):
        read_score_file(tmp_path / "nonnum.tsv")
    (tmp_path / "pgs.txt").write_text("#pgs_id=X\nrsID\tchr_name\tchr_position\tother_allele\teffect_weight\nrs1\t1\t10\tG\t0.1\n")
    with pytest.raises(ScoreFileError, match="missing column 'effect_allele'"):
        read_score_file(tmp_path / "pgs.txt")
    with pytest.raises(ScoreFileError, match="trait 'T1' appears in both"):
        compute_prs(prefix, [good, good], tmp_path / "o.parquet", progress=False)
    bed = tmp_path / "g.bed"
    bed.write_bytes(bed.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        compute_prs(prefix, [good], tmp_path / "o.parquet", progress=False)
    prefix2 = _bed(tmp_path / "x", iids=["HG1", "HG2", "HG3", "HG4"])
    meds = tmp_path / "meds" / "metadata"
    meds.mkdir(parents=True)
    import pyarrow as pa

    pq.write_table(pa.table({"subject_id": [1, 2], "split": ["train", "train"]}), meds / "subject_splits.parquet")
    with pytest.raises(ValueError, match="none of the 4 genotype sample ids"):
        compute_prs(prefix2, [good], tmp_path / "o.parquet", meds_dir=tmp_path / "meds", progress=False)
    far = tmp_path / "far.tsv"
    far.write_text("ID\teffect_allele\tT9\nrs7\tA\t0.5\nrs8\tC\t1.0\n")
    with pytest.raises(ValueError, match="no trait reached the minimum overlap"), pytest.warns(RuntimeWarning, match="dropped"):
        compute_prs(prefix2, [far], tmp_path / "o.parquet", progress=False)
    with pytest.raises(GenotypeError, match="no .bed/.pgen fileset"):
        open_genotypes(tmp_path / "nothing")
    assert not (tmp_path / "o.parquet").exists()
    assert MODELS == ("additive", "dominant", "recessive")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_a_bed_source_releases_the_rows_a_task_mapped(tmp_path):
    """A scoring task ends by unmapping the .bed rows it read: a worker's resident memory is one
    block's genotypes, not every block it has scored."""
    geno = np.random.default_rng(0).integers(0, 3, (4000, 8000)).astype(np.int8)  # 8 MB of .bed
    prefix = tmp_path / "g"
    with PlinkWriter(prefix, [f"s{i}" for i in range(geno.shape[1])]) as w:
        w.write(geno, [Variant("1", f"v{i}", 0, i + 1, "G", "A") for i in range(geno.shape[0])])
    src = BedSource(prefix)
    src.release_pages()
    before = _rss_bytes()
    assert int(np.asarray(src.packed_all).sum(dtype=np.uint64)) > 0  # every row read through the mapping
    touched = _rss_bytes()
    src.release_pages()
    released = _rss_bytes()
    assert touched - before > 6e6, "reading the rows maps them in"
    assert touched - released > 6e6, "released, they are no longer resident"
    assert int(np.asarray(src.packed_all[:10]).sum(dtype=np.uint64)) > 0  # and still readable
    np.asarray(src.packed_all).sum(dtype=np.uint64)
    touched = _rss_bytes()
    src.release_pages(1000, 3000)  # half the rows: about half the pages
    assert 3.5e6 < touched - _rss_bytes() < 4.5e6
    src.release_pages(3000)
    assert 5.5e6 < touched - _rss_bytes() < 6.5e6
