"""The editable install of scripts/setup.sh: quiet, and a deployed scrapyd egg still runs its own code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETUP = (REPO / "scripts" / "setup.sh").read_text()


def editable_install_warning_filter() -> str:
    """The PYTHONWARNINGS that setup.sh gives its `pip install -e .`."""
    match = re.search(r'PYTHONWARNINGS="([^"]+)" \S*pip install -q --no-deps -e \.', SETUP)
    assert match, "setup.sh installs the checkout without a warning filter"
    return match[1]


def test_setuptools_editable_notice_is_filtered_and_nothing_else():
    notice = "import warnings; warnings.warn('Editable installation.\\n!!\\nPlease be careful', UserWarning)"
    other = "import warnings; warnings.warn('Something else', UserWarning)"
    env = {"PYTHONWARNINGS": editable_install_warning_filter(), "PATH": "/usr/bin:/bin"}
    quiet = subprocess.run([sys.executable, "-c", notice], env=env, capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-c", other], env=env, capture_output=True, text=True)
    assert quiet.stderr == "" and "Something else" in loud.stderr


def test_editable_install_keeps_the_checkout_off_sys_path(tmp_path):
    """A meta path finder, not a .pth of the repository root: scrapyd appends a deployed egg to
    sys.path, and a root on sys.path would run the checkout's code instead of the egg's."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy(REPO / name, project / name)
    for package in ("medcrawl", "training"):
        shutil.copytree(REPO / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = "from setuptools import build_meta; import sys; print(build_meta.build_editable(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", build, str(tmp_path / "wheel")], cwd=project,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(tmp_path / "wheel" / proc.stdout.split()[-1]) as wheel:
        names = wheel.namelist()
        pth = [wheel.read(n).decode() for n in names if n.endswith(".pth")]
    assert any(n.endswith("_finder.py") for n in names)
    assert str(project) not in "".join(pth)
