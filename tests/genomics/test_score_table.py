"""The C++ score-file reader (``_core.parse_score_table``) against its reference, pyarrow's CSV
reader: random clean tables read identically (hypothesis), unusual ones declined to pyarrow so
results and errors stay the reference's, and every real score file of ../shared/data equal."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrfast.backends import core
from ehrfast.genomics import scorefile
from ehrfast.genomics.scorefile import ScoreFileError, read_score_file

pytestmark = pytest.mark.skipif(core is None, reason="C++ core not built")

FORMATS = [repr, lambda v: f"{v:.6g}", lambda v: f"{v:e}", lambda v: f"{v:.3f}", lambda v: str(int(v * 1000)), lambda v: f"{v:.17E}"]


def text(min_size: int):
    return st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=min_size, max_size=8)


@st.composite
def tables(draw):
    """(body text, column names, numeric column names): a header line, then clean rows."""
    n_cols, n_rows = draw(st.integers(1, 6)), draw(st.integers(0, 40))
    kinds = draw(st.lists(st.booleans(), min_size=n_cols, max_size=n_cols))
    names = [f"c{j}" for j in range(n_cols)]
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    fmt = draw(st.sampled_from(FORMATS))
    field_text = text(1 if n_cols == 1 else 0)  # a lone empty field is a blank line, which pyarrow skips
    rows = []
    for _ in range(n_rows):
        fields = [fmt(float(rng.standard_normal() * 10.0 ** rng.integers(-8, 8))) if numeric else draw(field_text) for numeric in kinds]
        rows.append("\t".join(fields))
    body = "\t".join(names) + "\n" + "\n".join(rows) + (draw(st.sampled_from(["\n", ""])) if rows else "")
    return body, names, {n for n, numeric in zip(names, kinds) if numeric}


def _same_columns(fast: dict, ref: dict) -> None:
    assert list(fast) == list(ref)
    for name in ref:
        assert fast[name].type == ref[name].type, name
        assert fast[name].combine_chunks().equals(ref[name].combine_chunks()), name


@given(tables())
@settings(max_examples=300, deadline=None)
def test_clean_tables_read_as_pyarrow_reads_them(tmp_path_factory, table):
    body, names, numeric = table
    path = tmp_path_factory.mktemp("t") / "s.tsv"
    path.write_text(body)
    fast = scorefile._fast_table(path, 0, names, numeric)
    assert fast is not None  # clean input takes the fast path
    col, numbers = fast
    _same_columns(col, scorefile._pyarrow_table(path, 0, names, numeric))
    assert numbers.flags.f_contiguous and numbers.shape == (len(col[names[0]]), len(numeric))


def test_large_body_is_split_across_threads_and_equals_the_reference(tmp_path):
    rng = np.random.default_rng(3)
    n = 60_000  # > 1 MiB, so every thread parses a chunk
    w = rng.standard_normal((n, 3))
    lines = [f"rs{i}\t{'ACGT'[i % 4]}\t" + "\t".join(repr(float(v)) for v in w[i]) for i in range(n)]
    path = tmp_path / "wide.tsv.gz"
    path.write_bytes(gzip.compress(("ID\teffect_allele\tA\tB\tC\n" + "\n".join(lines) + "\n").encode()))
    a, b = read_score_file(path, "cpp"), read_score_file(path, "python")
    np.testing.assert_array_equal(a.weights, w)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.ids.equals(b.ids) and a.effect_allele.equals(b.effect_allele) and a.other_allele.equals(b.other_allele)
    assert core.parse_score_table(gzip.decompress(path.read_bytes()).split(b"\n", 1)[1], [False, False, True, True, True], 2)[0] == n


@pytest.mark.parametrize("row", [
    "rs2\tC\t1.0\n\nrs3\tG\t2\n",  # blank line inside the body
    "rs2\tC\t1.0\r\n",  # CRLF
    "rs2\tC\n",  # too few fields
    "rs2\tC\t1\t2\n",  # too many
    "rs2\tC\tnan\n", "rs2\tC\tinf\n", "rs2\tC\t\n", "rs2\tC\t+1\n", "rs2\tC\t1e999\n", "rs2\tC\tNA\n", "rs2\tC\t 1\n",
    "rs2\tC\tabc\n",
    "rsé\tC\t1\n",  # non-ASCII text
])
def test_unusual_rows_are_left_to_pyarrow(tmp_path, row):
    path = tmp_path / "s.tsv"
    path.write_text("ID\teffect_allele\tT1\nrs1\tA\t0.5\n" + row, encoding="utf-8")
    assert scorefile._fast_table(path, 0, ["ID", "effect_allele", "T1"], {"T1"}) is None
    try:
        expected = read_score_file(path, "python")
    except ScoreFileError as exc:
        with pytest.raises(ScoreFileError) as got:
            read_score_file(path, "cpp")
        assert str(got.value) == str(exc)
        return
    got = read_score_file(path, "cpp")
    np.testing.assert_array_equal(got.weights, expected.weights)
    assert got.ids.equals(expected.ids)


@pytest.mark.parametrize("newline", ["\r", "\r\n"])
def test_carriage_return_line_ends_are_left_to_pyarrow(tmp_path, newline):
    path = tmp_path / "s.tsv"
    path.write_bytes(newline.join(["#pgs_id=X", "ID\teffect_allele\tT1", "rs1\tA\t0.5", "rs2\tC\t1.5", ""]).encode())
    header, skip, columns = scorefile._header(path)
    assert scorefile._fast_table(path, skip, columns, {"T1"}) is None
    got, expected = read_score_file(path, "cpp"), read_score_file(path, "python")
    np.testing.assert_array_equal(got.weights, expected.weights)
    assert got.ids.equals(expected.ids) and expected.n_rows == 2


@pytest.mark.parametrize("text", ["ID\teffect_allele\tT1\n", "ID\teffect_allele\tT1"])
def test_files_without_rows_read_as_pyarrow_reads_them(tmp_path, text):
    path = tmp_path / "s.tsv"
    path.write_text(text)
    try:
        expected = read_score_file(path, "python")
    except ScoreFileError as exc:  # pyarrow refuses a column line without a newline
        with pytest.raises(ScoreFileError, match="Could not skip"):
            read_score_file(path, "cpp")
        assert "Could not skip" in str(exc)
        return
    assert read_score_file(path, "cpp").weights.shape == expected.weights.shape == (0, 1)


def test_errors_name_the_line_as_before(tmp_path):
    (tmp_path / "nonnum.tsv").write_text("ID\teffect_allele\tT1\nrs1\tA\t0.5\nrs2\tA\tabc\n")
    with pytest.raises(ScoreFileError, match=r"line 3: column 'T1' has non-numeric weight 'abc'"):
        read_score_file(tmp_path / "nonnum.tsv", "cpp")
    (tmp_path / "nan.tsv").write_text("ID\teffect_allele\tT1\nrs1\tA\tnan\n")
    with pytest.raises(ScoreFileError, match=r"line 2: column 'T1' has weight"):
        read_score_file(tmp_path / "nan.tsv", "cpp")


def test_bad_buffers_are_refused():
    with pytest.raises(ValueError, match="1-D byte buffer"):
        core.parse_score_table(np.zeros(3, np.float64), [True])
    assert core.parse_score_table(b"", [True, False])[:2] == (0, -1)


SHARED_FILES = ["derived/PGS001229_22_strandflip.txt", "derived/cineca_wide8.tsv", "derived/cineca_wide8_rsid.tsv",
                "inputs/cineca/PGS001229_22.txt", "inputs/1000g/PGS001229_hmPOS_GRCh38.txt.gz"]


@pytest.mark.parametrize("name", SHARED_FILES)
def test_real_score_files_equal_the_reference(shared_data, name):
    path = shared_data / "prs-reference" / name
    header, skip, columns = scorefile._header(path)
    numeric = {"effect_weight"} if "effect_weight" in columns else {c for c in columns if c not in {"ID", "effect_allele"}}
    assert scorefile._fast_table(path, skip, columns, numeric) is not None  # real files take the fast path
    a, b = read_score_file(path, "cpp"), read_score_file(path, "python")
    assert a.traits == b.traits and a.header == b.header and a.genome_build == b.genome_build and a.chrom == b.chrom
    assert a.ids.equals(b.ids) and a.effect_allele.equals(b.effect_allele) and a.other_allele.equals(b.other_allele)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert (a.pos is None) == (b.pos is None) and (a.pos is None or np.array_equal(a.pos, b.pos))
