"""PRS outputs in the field's conventions: (FID, IID) kept, plink2's per-trait columns in raw
output, ``.sscore`` and pgsc_calc layouts compared with the real plink2 runs of
../shared/data/prs-reference, pgsc_calc scores read back, genome builds checked, a prefix with
both .bed and .pgen read natively, and warnings without Python source lines."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from ehrfast.errors import InvalidInputError
from ehrfast.genomics.bed import PlinkWriter, Variant
from ehrfast.genomics.builds import build_from_header, normalize_build
from ehrfast.genomics.genotypes import BedSource, GenotypeError, open_genotypes
from ehrfast.genomics.match import MatchOptions
from ehrfast.genomics.matrix import meta_path, read_prs_matrix
from ehrfast.genomics.options import PRSOptions
from ehrfast.genomics.prs import compute_prs
from ehrfast.genomics.scorefile import read_score_file


@pytest.fixture(scope="module")
def ref(shared_data):
    return shared_data / "prs-reference"


def _table(path):
    rows = list(csv.reader(open(path), delimiter="\t"))
    return rows[0], {h: np.array([r[j] for r in rows[1:]]) for j, h in enumerate(rows[0])}


def _compare_sscore(ours, theirs):
    head, a = _table(ours)
    their_head, b = _table(theirs)
    assert head == their_head
    for h in head:
        if h in ("#FID", "IID", "#IID"):
            np.testing.assert_array_equal(a[h], b[h])
        elif h in ("ALLELE_CT", "DENOM"):
            np.testing.assert_array_equal(a[h].astype(float), b[h].astype(float), err_msg=h)
        else:  # plink2 prints 6 significant digits
            np.testing.assert_allclose(a[h].astype(float), b[h].astype(float), rtol=1e-5, atol=0, err_msg=h)


ALL = PRSOptions(match=MatchOptions(min_overlap=0))


def test_sscore_equals_plink2_with_families_and_eight_traits(ref, tmp_path):
    out = tmp_path / "wide8.sscore"
    s = compute_prs(ref / "inputs/cineca/cineca_synthetic_subset", [ref / "derived/cineca_wide8_rsid.tsv"], out, progress=False)
    assert len(s.traits) == 8 and meta_path(out).name == "wide8_meta.json" and meta_path(out).exists()
    _compare_sscore(out, ref / "plink2/cineca_bed_wide8.sscore")  # '#FID IID ...': the .fam has families


def test_sscore_equals_plink2_without_families(ref, tmp_path):
    pytest.importorskip("pgenlib")
    out = tmp_path / "g1k.sscore"
    compute_prs(ref / "derived/g1k", [ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz"], out, ALL, format="sscore", progress=False)
    _compare_sscore(out, ref / "plink2/g1k_full.sscore")  # '#IID ...': the .psam has no FID
    out2 = tmp_path / "missing.sscore"
    compute_prs(ref / "derived/g1k_missing", [ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz"], out2, ALL, progress=False)
    _compare_sscore(out2, ref / "plink2/g1k_missing_meanimp.sscore")  # ALLELE_CT < DENOM: 30 % missing calls


def test_raw_parquet_has_plink2_columns_per_trait(ref, tmp_path):
    out = tmp_path / "raw.parquet"
    compute_prs(ref / "inputs/cineca/cineca_synthetic_subset", [ref / "derived/cineca_wide8_rsid.tsv"], out,
                PRSOptions(raw=True), progress=False)
    t = pq.read_table(out)
    _, plink = _table(ref / "plink2/cineca_bed_wide8.sscore")
    np.testing.assert_array_equal(t.column("family_id").to_pylist(), plink["#FID"])
    np.testing.assert_array_equal(t.column("sample_id").to_pylist(), plink["IID"])
    for trait in ("PGS001229", "top50", "rand4"):
        np.testing.assert_allclose(t.column(trait).to_numpy(), plink[f"{trait}_SUM"].astype(float), rtol=1e-5)
        np.testing.assert_array_equal(t.column(f"{trait}_SUM").to_numpy(), t.column(trait).to_numpy())
        np.testing.assert_allclose(t.column(f"{trait}_AVG").to_numpy(), plink[f"{trait}_AVG"].astype(float), rtol=1e-5)
        np.testing.assert_array_equal(t.column(f"{trait}_ALLELE_CT").to_numpy(), plink["ALLELE_CT"].astype(int))
        np.testing.assert_array_equal(t.column(f"{trait}_DENOM").to_numpy(), plink["DENOM"].astype(int))
        np.testing.assert_allclose(t.column(f"{trait}_NAMED_ALLELE_DOSAGE_SUM").to_numpy(),
                                   plink["NAMED_ALLELE_DOSAGE_SUM"].astype(float), rtol=1e-6)
    # the model reads the traits, not the plink2 columns beside them (with or without the schema's list)
    assert read_prs_matrix(out).traits == ["PGS001229", "top50", "top200", "top500", "rand1", "rand2", "rand3", "rand4"]
    bare = tmp_path / "bare.parquet"
    pq.write_table(t.replace_schema_metadata(None), bare)
    assert read_prs_matrix(bare).traits == read_prs_matrix(out).traits


def test_pgsc_calc_aggregated_scores(ref, tmp_path):
    out = tmp_path / "aggregated_scores.txt.gz"
    compute_prs(ref / "inputs/cineca/cineca_synthetic_subset", [ref / "derived/cineca_wide8_rsid.tsv"], out, progress=False)
    assert meta_path(out).name == "aggregated_scores_meta.json"
    with gzip.open(out, "rt") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == ["sampleset", "IID", "PGS", "SUM", "DENOM", "AVG"]
    assert {r["sampleset"] for r in rows} == {"cineca_synthetic_subset"}
    _, plink = _table(ref / "plink2/cineca_bed_wide8.sscore")
    assert len(rows) == 8 * len(plink["IID"])
    by = {(r["IID"], r["PGS"]): r for r in rows}
    for k, iid in enumerate(plink["IID"]):
        r = by[(iid, "top200")]
        assert float(r["SUM"]) == pytest.approx(float(plink["top200_SUM"][k]), rel=1e-5)
        assert float(r["AVG"]) == pytest.approx(float(plink["top200_AVG"][k]), rel=1e-5)
        assert r["DENOM"] == plink["DENOM"][k]
    again = tmp_path / "again.txt.gz"
    compute_prs(ref / "inputs/cineca/cineca_synthetic_subset", [ref / "derived/cineca_wide8_rsid.tsv"], again, progress=False)
    assert again.read_bytes() == out.read_bytes()  # reproducible bytes (no gzip timestamp)
    with pytest.raises(InvalidInputError, match=r"line 2: IID 'HG00096' is not a MEDS subject id"):
        read_prs_matrix(out)


def _write_pgsc(path, rows, columns):
    with gzip.open(path, "wt") as fh:
        fh.write("\t".join(columns) + "\n")
        fh.writelines("\t".join(map(str, r)) + "\n" for r in rows)


def test_read_pgsc_calc_scores(tmp_path):
    agg = tmp_path / "aggregated_scores.txt.gz"
    sums = {(1, "A"): 1.0, (2, "A"): 3.0, (3, "A"): 5.0, (1, "B"): -2.0, (2, "B"): 2.0}  # subject 3 lacks B
    _write_pgsc(agg, [("cohort", s, t, v, 10, v / 10) for (s, t), v in sums.items()], ["sampleset", "IID", "PGS", "SUM", "DENOM", "AVG"])
    m = read_prs_matrix(agg)
    assert m.traits == ["A", "B"] and m.subject_ids.tolist() == [1, 2, 3]
    sd = np.std([1.0, 3.0, 5.0])
    np.testing.assert_allclose(m.values[:, 0], [(1 - 3) / sd, 0, (5 - 3) / sd], rtol=1e-6)
    np.testing.assert_allclose(m.values[:2, 1], [-1, 1], rtol=1e-6)
    assert np.isnan(m.values[2, 1])
    # the ancestry step's output: reference-panel rows left out, the normalized z-score used
    adjusted = tmp_path / "cohort_pgs.txt.gz"
    _write_pgsc(adjusted, [("reference", "HG00096", "A", 9.0, 1.5, 0.3), ("cohort", 7, "A", 2.0, 0.25, -0.5),
                           ("cohort", 8, "A", 4.0, -1.25, 0.1)], ["sampleset", "IID", "PGS", "SUM", "Z_norm1", "Z_norm2"])
    m = read_prs_matrix(adjusted)
    assert m.subject_ids.tolist() == [7, 8] and m.values[:, 0].tolist() == np.float32([-0.5, 0.1]).tolist()
    twice = tmp_path / "twice.txt.gz"
    _write_pgsc(twice, [("a", 1, "A", 1.0), ("b", 1, "A", 2.0)], ["sampleset", "IID", "PGS", "SUM"])
    with pytest.raises(InvalidInputError, match="line 3: IID 1 has two A rows"):
        read_prs_matrix(twice)
    bad = tmp_path / "bad.txt"
    bad.write_text("IID\tscore\n1\t0.5\n")
    with pytest.raises(InvalidInputError, match="not pgsc_calc scores"):
        read_prs_matrix(bad)


def _fileset(prefix, fids, iids):
    """Two variants over ``iids``; the .fam rewritten with families ``fids``."""
    if not (prefix.parent / (prefix.name + ".bed")).exists():
        with PlinkWriter(prefix, iids) as w:
            w.write(np.array([[0, 1, 2, 1], [2, 1, 0, 0]], np.int8)[:, : len(iids)],
                    [Variant("1", "rs1", 0, 10, "A", "G"), Variant("1", "rs2", 0, 20, "C", "T")])
    (prefix.parent / (prefix.name + ".fam")).write_text("".join(f"{f} {i} 0 0 0 -9\n" for f, i in zip(fids, iids)))


RAW = PRSOptions(raw=True)  # four samples: fewer than the standardization needs (MIN_STANDARDIZATION_SAMPLES)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "w.tsv"
    path.write_text("ID\teffect_allele\tT1\nrs1\tA\t0.5\nrs2\tC\t1.0\n")
    return path


def test_family_ids_are_kept_and_duplicates_refused(tmp_path, weights):
    prefix = tmp_path / "fam"
    _fileset(prefix, ["F1", "F2", "F1", "F3"], ["7", "7", "8", "9"])  # IID 7 in two families
    with pytest.raises(InvalidInputError, match=r"samples F1/7 and F2/7 both map to subject 7"):
        compute_prs(prefix, [weights], tmp_path / "o.parquet", progress=False)
    sample_map = tmp_path / "map.tsv"
    sample_map.write_text("FID\tIID\tsubject_id\nF1\t7\t1\nF2\t7\t2\nF1\t8\t3\n")
    compute_prs(prefix, [weights], tmp_path / "o.parquet", RAW, sample_map=sample_map, progress=False)
    t = pq.read_table(tmp_path / "o.parquet")
    assert t.column("family_id").to_pylist() == ["F1", "F2", "F1", "F3"] and t.column("sample_id").to_pylist() == ["7", "7", "8", "9"]
    assert t.column("subject_id").to_pylist() == [1, 2, 3, None]
    two_col = tmp_path / "iid.tsv"
    two_col.write_text("7\t1\n8\t3\n")
    with pytest.raises(InvalidInputError, match="both map to subject 1"):
        compute_prs(prefix, [weights], tmp_path / "p.parquet", sample_map=two_col, progress=False)
    out = tmp_path / "fam.sscore"
    compute_prs(prefix, [weights], out, sample_map=sample_map, progress=False)
    head, data = _table(out)
    assert head[:2] == ["#FID", "IID"] and data["#FID"].tolist() == ["F1", "F2", "F1", "F3"]
    _fileset(prefix, ["F1", "F1", "F2", "F3"], ["7", "7", "8", "9"])  # the same (FID, IID) twice
    with pytest.raises(GenotypeError, match=r"samples 1 and 2 are both F1/7"):
        open_genotypes(prefix)
    _fileset(prefix, ["0"] * 4, ["7", "8", "9", "10"])  # FID 0: no families
    assert open_genotypes(prefix).family_ids is None
    out = tmp_path / "nofam.sscore"
    compute_prs(prefix, [weights], out, progress=False)
    assert _table(out)[0][:2] == ["#IID", "ALLELE_CT"]
    assert pq.read_table(compute_prs(prefix, [weights], tmp_path / "n.parquet", RAW, progress=False).out_path).column("family_id").null_count == 4


def test_prefix_with_bed_and_pgen_reads_the_bed_without_pgenlib(tmp_path, weights, monkeypatch):
    prefix = tmp_path / "both"
    _fileset(prefix, ["0"] * 4, ["1", "2", "3", "4"])
    for ext in (".pgen", ".pvar", ".psam"):
        (tmp_path / f"both{ext}").write_text("not read\n")
    monkeypatch.setitem(sys.modules, "pgenlib", None)  # import pgenlib raises ImportError
    assert isinstance(open_genotypes(prefix), BedSource)
    compute_prs(prefix, [weights], tmp_path / "o.parquet", RAW, progress=False)
    with pytest.raises(GenotypeError, match="needs the 'pgenlib' package"):
        open_genotypes(tmp_path / "both.pgen")  # asked for explicitly


def test_build_names_and_headers():
    assert [normalize_build(b) for b in ("GRCh37", "hg19", "NCBI37", "b37", "GRCh37.p13", "hg38", "GRCh38", "NR", "", None)] == \
        ["GRCh37"] * 5 + ["GRCh38"] * 2 + [None] * 3
    with pytest.raises(InvalidInputError, match="unknown genome build 'CHM13'"):
        normalize_build("CHM13")
    assert build_from_header(["##fileformat=VCFv4.2", "##contig=<ID=1,length=249250621>"]) == "GRCh37"
    assert build_from_header(["##contig=<ID=chr1,length=248956422,assembly=x>"]) == "GRCh38"
    assert build_from_header(["##reference=file:///ref/hs37d5.fa"]) == "GRCh37"
    assert build_from_header(["##contig=<ID=2,length=5>"]) is None


def test_score_file_builds(ref):
    assert read_score_file(ref / "inputs/cineca/PGS001229_22.txt").genome_build == "GRCh37"  # #genome_build
    assert read_score_file(ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz").genome_build == "GRCh38"  # the file name
    assert read_score_file(ref / "derived/cineca_wide8_rsid.tsv").genome_build is None  # ID-matched table


def _pgs(path, build, pos=10, extra=""):
    path.write_text(f"#pgs_id={path.stem}\n#genome_build={build}\n{extra}"
                    f"rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\nrs1\t1\t{pos}\tA\tG\t0.5\n")
    return path


def test_build_mismatch_is_refused(tmp_path):
    prefix = tmp_path / "g"
    _fileset(prefix, ["0"] * 4, ["1", "2", "3", "4"])
    b37, b38 = _pgs(tmp_path / "P37.txt", "GRCh37"), _pgs(tmp_path / "P38.txt", "hg38")
    with pytest.raises(InvalidInputError, match=r"P37.txt gives positions on GRCh37 but the genotypes .* are GRCh38"):
        compute_prs(prefix, [b37], tmp_path / "o.parquet", PRSOptions(target_build="GRCh38"), progress=False)
    with pytest.raises(InvalidInputError, match=r"P37.txt is GRCh37, .*P38.txt is GRCh38"):
        compute_prs(prefix, [b37, b38], tmp_path / "o.parquet", progress=False)
    s = compute_prs(prefix, [b38], tmp_path / "o.parquet", PRSOptions(target_build="hg38", raw=True), progress=False)
    meta = json.loads(meta_path(s.out_path).read_text())
    assert meta["genome_build"] == {"target": "GRCh38", "target_from": "--target-build", "score_files": {str(b38): "GRCh38"}}
    # harmonized positions: #HmPOS_build decides, not the author's #genome_build
    hm = tmp_path / "HM.txt"
    hm.write_text("#pgs_id=HM\n#genome_build=GRCh37\n#HmPOS_build=GRCh38\n"
                  "rsID\tchr_name\tchr_position\teffect_allele\teffect_weight\thm_chr\thm_pos\nrs1\t1\t999\tA\t0.5\t1\t10\n")
    assert read_score_file(hm).genome_build == "GRCh38"
    compute_prs(prefix, [hm], tmp_path / "hm.parquet", PRSOptions(target_build="GRCh38", raw=True), progress=False)
    with pytest.raises(InvalidInputError, match="unknown genome build"):
        PRSOptions(target_build="hg17")


def test_genotype_header_declares_the_build(ref, tmp_path):
    pytest.importorskip("pgenlib")
    for ext in (".pgen", ".psam"):
        (tmp_path / f"g1k{ext}").write_bytes((ref / f"derived/g1k{ext}").read_bytes())
    pvar = (ref / "derived/g1k.pvar").read_text()
    (tmp_path / "g1k.pvar").write_text("##contig=<ID=1,length=249250621>\n" + pvar)  # claims GRCh37
    src = open_genotypes(tmp_path / "g1k")
    assert src.genome_build == "GRCh37"
    with pytest.raises(InvalidInputError, match="GRCh38 but the genotypes .* are GRCh37"):
        compute_prs(tmp_path / "g1k", [ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz"], tmp_path / "o.parquet", ALL, progress=False)
    compute_prs(tmp_path / "g1k", [ref / "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz"], tmp_path / "o.parquet",
                PRSOptions(match=MatchOptions(min_overlap=0), target_build="GRCh38"), progress=False)  # the user overrides


def test_cli_warnings_carry_no_source_lines(tmp_path, weights):
    prefix = tmp_path / "g"
    _fileset(prefix, ["0"] * 4, ["1", "2", "3", "4"])
    far = tmp_path / "far.tsv"
    far.write_text("ID\teffect_allele\tT9\nrs7\tA\t0.5\nrs8\tC\t1.0\n")
    run = subprocess.run([sys.executable, "-m", "ehrfast.cli", "prs", "--genotypes", str(prefix), "--scores", str(weights), str(far),
                          "--out", str(tmp_path / "o.parquet"), "--raw", "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "ehrfast prs: warning: 1 trait(s) matched below the minimum overlap" in run.stderr
    assert "warnings.warn" not in run.stderr and ".py:" not in run.stderr and "RuntimeWarning" not in run.stderr
