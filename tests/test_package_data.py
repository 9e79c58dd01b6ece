"""The package image dataset and hard set: layout, manifest, decodability, pools, errors.

Needs the sample packages (``bash scripts/install_sample_packages.sh``), as CI installs them.
"""

import csv
import hashlib
import subprocess
import sys

import pytest

from medcrawl.model.images import open_image
from medcrawl.samples import build as pd
from medcrawl.samples.dicom import dicom_index, render_dicom
from medcrawl.samples.hard import HARD_SOURCES
from medcrawl.samples.packages import INSTALL_SCRIPT, MissingPackageError, Package
from medcrawl.labels import MEDICAL, NON_MEDICAL
from medcrawl.samples.sources import HARD, MAIN, MIN_SIDE, FileSource

PER_SOURCE = 3


def read_manifest(root):
    with open(root / "MANIFEST.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


@pytest.fixture(scope="module")
def main_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkgdata")
    pd.build(root, max_per_source=PER_SOURCE, log=lambda *_: None)
    return root


@pytest.fixture(scope="module")
def hard_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardset")
    pd.build(root, HARD_SOURCES, HARD, max_per_source=PER_SOURCE, log=lambda *_: None)
    return root


@pytest.mark.parametrize("which", ["main_set", "hard_set"])
def test_layout_manifest_and_images(request, which):
    root = request.getfixturevalue(which)
    fields, rows = read_manifest(root)
    assert tuple(fields) == pd.MANIFEST_FIELDS
    assert {r["label"] for r in rows} == {MEDICAL, NON_MEDICAL}
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk == {r["path"] for r in rows} | {"MANIFEST.csv"}
    assert len({r["sha256"] for r in rows}) == len(rows), "duplicate images"
    for row in rows:
        label, source, name = row["path"].split("/")
        assert (label, source) == (row["label"], row["source"]) and name.startswith(source)
        data = (root / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        img, info = open_image(data)
        assert (info.width, info.height) == (int(row["width"]), int(row["height"]))
        assert MIN_SIDE <= min(info.width, info.height) and max(info.width, info.height) <= pd.MAX_SIDE
        assert row["modality"] and row["origin_path"] and row["licence"]
        assert row["origin_package"].split(":")[0] in ("deb", "pypi", "npm")


def test_every_source_contributes(main_set, hard_set):
    for root, sources in ((main_set, pd.MAIN_SOURCES), (hard_set, HARD_SOURCES)):
        counts = {}
        for row in read_manifest(root)[1]:
            counts[row["source"]] = counts.get(row["source"], 0) + 1
        assert set(counts) == {s.name for s in sources}
        assert max(counts.values()) <= PER_SOURCE


def test_medical_sources_record_their_modality(main_set):
    rows = read_manifest(main_set)[1]
    modalities = {r["source"]: r["modality"] for r in rows}
    assert modalities["pkg-pydicom-ct"] == "ct" and modalities["pkg-pydicom-xray"] == "xray"
    assert modalities["pkg-mni152"] == "mri" and modalities["pkg-pydicom-us"] == "ultrasound"
    licences = {r["source"]: r["licence"] for r in rows}
    assert "/usr/share/doc/openclipart-png/copyright" in licences["pkg-openclipart"]


def test_main_and_hard_sets_share_no_origin_file():
    for cls in pd.MAIN_SOURCES:
        source = cls()
        main, hard = set(source.keys(MAIN)), set(source.keys(HARD))
        assert not main & hard
        assert main | hard == set(source.all_keys())
        assert main, f"{source.name} has nothing for the main set"


def test_build_is_deterministic(tmp_path):
    sources = tuple(c for c in pd.MAIN_SOURCES if c.name in ("pkg-emoji", "pkg-wallpapers"))
    for run in ("a", "b"):
        pd.build(tmp_path / run, sources, max_per_source=4, log=lambda *_: None)
    assert read_manifest(tmp_path / "a") == read_manifest(tmp_path / "b")


def test_dicom_rendering_applies_window_and_inversion():
    """RG1 is MONOCHROME1 (bright = low values): rendered, the lungs must come out dark."""
    import numpy as np
    import pydicom

    path = next(f.path for f in dicom_index() if f.path.endswith("RG1_UNCR.dcm"))
    img = render_dicom(pydicom.dcmread(path), 0)
    arr = np.asarray(img, np.float32)
    h, w = arr.shape
    lungs = arr[h // 4: h // 2, w // 8: w // 3].mean()       # right lung field
    spine = arr[h // 4: h // 2, w // 2 - 20: w // 2 + 20].mean()
    assert img.mode == "L" and lungs < spine


@pytest.mark.parametrize("name", ["CT_small.dcm", "RG1_UNCR.dcm", "emri_small.dcm", "examples_palette.dcm",
                                  "SC_rgb_32bit_2frame.dcm", "liver.dcm"])
def test_samples_render_dicom_as_the_product_does(name):
    """Rescaled CT, windowed MONOCHROME1, multi-frame MR, palette, RGB, 1-bit: the product's pixels."""
    import io

    import numpy as np
    import pydicom
    from PIL import Image

    from medcrawl.extract.dicom import read_dicom

    path = next(f.path for f in dicom_index() if f.path.endswith("/" + name))
    with open(path, "rb") as fh:
        product = read_dicom(fh.read(), frames="all").frames
    ds = pydicom.dcmread(path)
    assert len(product) == int(ds.get("NumberOfFrames", 1) or 1)
    for index, frame in enumerate(product):
        sample = render_dicom(ds, index)
        assert np.array_equal(np.asarray(sample), np.asarray(Image.open(io.BytesIO(frame.png))))


class MissingSource(FileSource):
    name, label, modality = "pkg-missing", NON_MEDICAL, "photo"
    packages = (Package("deb", "medcrawl-no-such-package"),)


def test_missing_package_names_package_and_install_script(tmp_path):
    with pytest.raises(MissingPackageError) as err:
        pd.build(tmp_path, (MissingSource,), log=lambda *_: None)
    assert "medcrawl-no-such-package" in str(err.value)
    assert INSTALL_SCRIPT in str(err.value)
    assert not (tmp_path / "MANIFEST.csv").exists()


def test_cli_lists_sources_and_rejects_unknown_ones(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "training.package_data", *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    listed = run("--out", str(tmp_path), "--hard", "--list")
    assert listed.returncode == 0 and "hard-documents" in listed.stdout
    bad = run("--out", str(tmp_path), "--sources", "pkg-nope")
    assert bad.returncode == 2 and "pkg-nope" in bad.stderr
