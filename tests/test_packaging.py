"""The editable install of scripts/setup.sh: a plain .pth file, and no warning from setuptools."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_editable_install_is_a_pth_file_without_warnings(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy(REPO / name, project / name)
    for package in ("medcrawl", "training"):
        shutil.copytree(REPO / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = ("from setuptools import build_meta; import sys; "
             "print(build_meta.build_editable(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-W", "always", "-c", build, str(tmp_path / "wheel")],
                          cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "careful" not in proc.stderr and "meta path finder" not in proc.stderr, proc.stderr[-3000:]
    with zipfile.ZipFile(tmp_path / "wheel" / proc.stdout.split()[-1]) as wheel:
        pth = [n for n in wheel.namelist() if n.endswith(".pth")]
        assert len(pth) == 1 and wheel.read(pth[0]).decode().strip() == str(project)
