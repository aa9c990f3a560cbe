"""Output helpers: atomic directories and streamed .npy files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ehrfast.io import NpyAppender, atomic_directory


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_npy_appender_writes_a_loadable_memmappable_file(tmp_path, dtype):
    path = tmp_path / "x.npy"
    parts = [np.arange(5, dtype=dtype), np.zeros(0, dtype), np.arange(10**6, dtype=dtype)]
    with NpyAppender(path, dtype) as out:
        for p in parts:
            out.append(p)
        extra = np.full(3, 7, dtype)
        os.write(out.fileno(), extra.tobytes())  # what the C++ core does
        out.wrote(len(extra))
    expected = np.concatenate(parts + [extra])
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), expected)
    assert np.load(path).dtype == np.dtype(dtype)


def test_npy_appender_rejects_other_dtypes_and_shapes(tmp_path):
    with NpyAppender(tmp_path / "x.npy", np.int32) as out:
        with pytest.raises(TypeError, match="1-D int32"):
            out.append(np.zeros(3, np.int64))
        with pytest.raises(TypeError, match="1-D int32"):
            out.append(np.zeros((2, 2), np.int32))


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as d:
        (d / "half.npy").write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
