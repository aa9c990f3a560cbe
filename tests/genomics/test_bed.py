"""PLINK .bed codec: C++ core vs numpy reference, and against an independent reader."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ehrfast.backends import core
from ehrfast.genomics.bed import (
    BedFile,
    PlinkWriter,
    Variant,
    pack_bed,
    pack_bed_reference,
    read_bim,
    unpack_bed,
    unpack_bed_reference,
)

needs_core = pytest.mark.skipif(core is None, reason="C++ core not built")

genotype_matrices = st.tuples(st.integers(0, 9), st.integers(0, 37)).flatmap(
    lambda shape: arrays(np.int8, shape, elements=st.integers(-1, 2))
)


def test_known_bytes():
    # 4 samples with A1 counts 2, missing, 1, 0 -> codes 00, 01, 10, 11 -> 0b11100100
    g = np.array([[2, -1, 1, 0], [0, 0, 0, 0]], np.int8)
    assert pack_bed_reference(g).tolist() == [[0b11100100], [0xFF]]
    # a 5th sample starts a new byte; unused bit pairs stay zero
    g5 = np.array([[0, 0, 0, 0, 1]], np.int8)
    assert pack_bed_reference(g5).tolist() == [[0xFF, 0b10]]


@given(genotype_matrices)
@settings(max_examples=200, deadline=None)
def test_reference_roundtrip(g):
    packed = pack_bed_reference(g)
    np.testing.assert_array_equal(unpack_bed_reference(packed, g.shape[1]), g)


@needs_core
@given(genotype_matrices)
@settings(max_examples=300, deadline=None)
def test_cpp_matches_reference(g):
    packed = pack_bed(g, backend="cpp")
    np.testing.assert_array_equal(packed, pack_bed_reference(g))
    np.testing.assert_array_equal(unpack_bed(packed, g.shape[1], backend="cpp"), g)


@needs_core
@given(arrays(np.uint8, st.tuples(st.integers(0, 6), st.integers(1, 9))), st.integers(0, 3))
@settings(max_examples=200, deadline=None)
def test_cpp_unpack_any_bytes(packed, short):
    # any byte pattern decodes the same way in both backends (padding bits are ignored)
    n_samples = max(0, 4 * packed.shape[1] - short)
    np.testing.assert_array_equal(
        unpack_bed(packed, n_samples, backend="cpp"), unpack_bed_reference(packed, n_samples)
    )


@pytest.mark.parametrize("backend", ["python", pytest.param("cpp", marks=needs_core)])
def test_invalid_genotype_names_position(backend):
    g = np.zeros((3, 5), np.int8)
    g[2, 4] = 3
    with pytest.raises(ValueError, match=r"variant 2, sample 4\] is 3"):
        pack_bed(g, backend=backend)


@needs_core
def test_core_rejects_bad_values_directly():
    g = np.zeros((2, 3), np.int8)
    g[1, 2] = -5
    with pytest.raises(ValueError, match=r"variant 1, sample 2"):
        core.pack_bed(g)
    with pytest.raises(ValueError, match="bytes per variant"):
        core.unpack_bed(np.zeros((2, 3), np.uint8), 20)


def test_wrong_shapes_and_dtypes():
    with pytest.raises(ValueError, match="2-D"):
        pack_bed(np.zeros(4, np.int8))
    with pytest.raises(TypeError, match="integer"):
        pack_bed(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="bytes per variant"):
        unpack_bed(np.zeros((2, 2), np.uint8), 3)


def _write_fileset(prefix, g):
    variants = [Variant("1", f"rs{i}", 0.0, 100 + i, "A", "G") for i in range(g.shape[0])]
    with PlinkWriter(prefix, [f"s{i}" for i in range(g.shape[1])]) as w:
        w.write(g[: g.shape[0] // 2], variants[: g.shape[0] // 2])
        w.write(g[g.shape[0] // 2 :], variants[g.shape[0] // 2 :])


def test_writer_output_read_by_bed_reader(tmp_path):
    bed_reader = pytest.importorskip("bed_reader")
    rng = np.random.default_rng(0)
    g = rng.integers(-1, 3, size=(50, 23)).astype(np.int8)
    _write_fileset(tmp_path / "x", g)
    with bed_reader.open_bed(tmp_path / "x.bed") as bed:
        values = bed.read(dtype="int8")  # [samples, variants], A1 counts, missing = -127
        assert list(bed.iid) == [f"s{i}" for i in range(23)]
        assert list(bed.allele_1) == ["A"] * 50
    np.testing.assert_array_equal(np.where(values == -127, -1, values).T, g)
    np.testing.assert_array_equal(BedFile(tmp_path / "x").read(), g)


def test_writer_leaves_nothing_on_error(tmp_path):
    g = np.zeros((4, 6), np.int8)
    with pytest.raises(ValueError):
        with PlinkWriter(tmp_path / "x", [f"s{i}" for i in range(6)]) as w:
            w.write(g, [Variant("1", "rs1", 0, 1, "A", "G")])  # 4 rows, 1 variant: shape error
    assert list(tmp_path.iterdir()) == []


def test_truncated_bed_is_an_error(tmp_path):
    g = np.ones((10, 9), np.int8)
    _write_fileset(tmp_path / "x", g)
    data = (tmp_path / "x.bed").read_bytes()
    (tmp_path / "x.bed").write_bytes(data[:-1])
    with pytest.raises(ValueError, match="truncated"):
        BedFile(tmp_path / "x")
    (tmp_path / "x.bed").write_bytes(b"\x00\x00\x00" + data[3:])
    with pytest.raises(ValueError, match="magic"):
        BedFile(tmp_path / "x")


@pytest.mark.parametrize("backend", ["python", pytest.param("cpp", marks=needs_core)])
def test_real_cineca_bed_matches_bed_reader(backend, shared_data):
    bed_reader = pytest.importorskip("bed_reader")
    prefix = shared_data / "prs-reference" / "inputs" / "cineca" / "cineca_synthetic_subset"
    ours = BedFile(prefix).read(backend=backend)
    with bed_reader.open_bed(str(prefix) + ".bed") as bed:
        theirs = bed.read(dtype="int8").T
    assert ours.shape == (829, 2504)
    np.testing.assert_array_equal(ours, np.where(theirs == -127, -1, theirs))
    assert (ours == -1).any()  # the README says 3 variants have missing calls


def test_read_bim_tab_and_whitespace_agree_and_bad_lines_are_named(tmp_path):
    rows = ["1\trs1\t0\t100\tA\tG", "chr2\trs2\t0.5\t200\tT\tC", "X\trs3\t0\t300\tAT\tA"]
    tab, spaced, bad = tmp_path / "tab.bim", tmp_path / "spaced.bim", tmp_path / "bad.bim"
    tab.write_text("\n".join(rows) + "\n")
    spaced.write_text("\n".join(r.replace("\t", "   ") for r in rows) + "\n")
    a, b = read_bim(tab), read_bim(spaced)
    for column in ("chrom", "id", "cm", "pos", "a1", "a2"):
        assert list(getattr(a, column)) == list(getattr(b, column))
    assert list(a.pos) == [100, 200, 300] and list(a.a1) == ["A", "T", "AT"] and len(a) == 3
    bad.write_text(rows[0] + "\n1\trs9\t0\tnot_a_position\tA\tG\n")
    with pytest.raises(ValueError, match="bad.bim: line 2"):
        read_bim(bad)
