"""Runs one fuzz target under atheris (libFuzzer): ``python fuzz/run.py TARGET [libFuzzer flags] [CORPUS ...]``.

    python fuzz/run.py plink -max_total_time=600 fuzz/corpus/plink

With the C++ core built for fuzzing (``.ci/fuzz`` builds it: clang, AddressSanitizer,
``-fsanitize=fuzzer-no-link``), libFuzzer sees the core's edges as well as Python's and ASan
stops at the first memory error; ``EHRFAST_CORE_MODULE`` points ehrfast at that build. A
finding is written as ``crash-<sha1>`` in the working directory: copy it into
``fuzz/regressions/<target>/`` and the test suite replays it from then on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

# Appended, not prepended: the installed ehrfast (with its compiled core) must win over the source
# tree, which has no built extension on a non-editable install; the root only supplies `fuzz`.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import ehrfast.data.meds  # noqa: E402
import ehrfast.genomics.genotypes  # noqa: E402
import ehrfast.genomics.match  # noqa: E402
import ehrfast.genomics.score  # noqa: E402
import ehrfast.genomics.scorefile  # noqa: E402, F401 (imported before instrument_all: their edges count)
from fuzz.targets import TARGETS  # noqa: E402


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python fuzz/run.py {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    target = TARGETS[sys.argv[1]]
    import ehrfast.backends as backends

    if backends.core is None:
        sys.exit("fuzz/run.py: the C++ core is not built; the targets compare it with the reference")
    atheris.instrument_all()  # Python's edges too (the .bim/.fam/score-file parsers are partly Python); an editable
    # install's import hook hides modules from atheris.instrument_imports
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
