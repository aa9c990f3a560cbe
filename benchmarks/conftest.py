"""The pytest benchmarks import their shared helpers (machine.py) from this folder, wherever pytest is started."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
