"""Whether a process may take its compiled paths (the sinks' scan, the producer's one pass).

Each compiled module is optional: where it is not built (no C compiler), its Python path
runs, writing the same bytes. ``KAFKUBE_PURE_PYTHON=1`` asks for the Python paths where the
modules are built too (CI runs the tests that hold the two alike both ways).
"""

from __future__ import annotations

import os

PURE_PYTHON_VARIABLE = "KAFKUBE_PURE_PYTHON"


def pure_python_asked() -> bool:
    """Whether this process was told to take its Python paths alone."""
    return os.environ.get(PURE_PYTHON_VARIABLE, "") not in {"", "0"}
