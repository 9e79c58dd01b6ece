"""Peak memory of Python code run in a fresh process: that process's own high-water mark.

``ru_maxrss`` is not used: Linux carries it across fork + exec, so a child of a large test
process reports at least the parent's size. ``VmHWM`` in /proc/self/status belongs to the new
process image alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRINT_PEAK = ("\nimport sys as _sys\n"
              "print([_l.split()[1] for _l in open('/proc/self/status') if _l.startswith('VmHWM:')][0],"
              " file=_sys.stderr)")


def run_measured(code: str, timeout: int = 240) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``code`` with the repository importable; (the finished process, its peak RSS in MB)."""
    proc = subprocess.run([sys.executable, "-c", code + PRINT_PEAK], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout,
                          env={"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3",
                               "PATH": "/usr/bin:/bin"})
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].isdigit(), proc.stderr[-2000:]
    return proc, int(lines[-1]) / 1024
