"""NIfTI reading on a real brain MRI volume (mricron-data's ch2, or nilearn's MNI template)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medcrawl.extract import nifti
from medcrawl.extract.medical import MedicalFileError, medical_format
from tests.support import dicom_files


@pytest.fixture(scope="module")
def volume():
    path = dicom_files.nifti_volume()
    return path.read_bytes(), nib.load(path)


def planes(data: bytes) -> dict[str, np.ndarray]:
    return {f.label.split(":")[0]: np.asarray(Image.open(io.BytesIO(f.png)))
            for f in nifti.read_nifti(data).frames}


def test_three_middle_slices_with_plane_and_index(volume):
    data, img = volume
    canonical = nib.as_closest_canonical(img)
    x, y, z = canonical.shape[:3]
    result = nifti.read_nifti(data)
    assert [f.label for f in result.frames] == [f"axial:{z // 2}", f"coronal:{y // 2}",
                                                f"sagittal:{x // 2}"]
    assert [(f.width, f.height) for f in result.frames] == [(x, y), (x, z), (y, z)]
    assert result.format == "nifti" and result.modality == ""
    for frame in result.frames:
        gray = np.asarray(Image.open(io.BytesIO(frame.png)))
        assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() > 200   # volume window


def test_orientation_is_normalised(volume, tmp_path):
    """The same volume stored left-posterior-inferior renders to the very same slices."""
    data, img = volume
    flipped = img.as_reoriented(np.array([[0, -1], [1, -1], [2, -1]]))     # every axis reversed
    assert nib.aff2axcodes(flipped.affine) != nib.aff2axcodes(img.affine)
    path = tmp_path / "flipped.nii.gz"
    nib.save(flipped, path)
    original, again = planes(data), planes(path.read_bytes())
    assert all(np.array_equal(original[p], again[p]) for p in original)


def test_head_is_up_in_coronal_and_sagittal(volume):
    """Superior at the top: the brain's upper half is in the image's upper half, neck below."""
    coronal = planes(volume[0])["coronal"].astype(float)
    rows_with_tissue = np.flatnonzero(coronal.mean(axis=1) > 20)
    assert rows_with_tissue.size and coronal.shape[0] - rows_with_tissue[-1] < rows_with_tissue[0] + 40


def test_uncompressed_and_gzip_agree(volume):
    data = volume[0]
    raw = gzip.decompress(data)
    assert medical_format(raw, "") == "nifti" and medical_format(data, "download") == "nifti"
    a, b = planes(data), planes(raw)
    assert all(np.array_equal(a[p], b[p]) for p in a)


def test_anisotropic_voxels_keep_their_true_aspect(volume, tmp_path):
    data, img = volume
    canonical = nib.as_closest_canonical(img)
    thick = canonical.slicer[:, :, ::3]            # every third axial slice: 3x thicker voxels
    assert thick.header.get_zooms()[2] == pytest.approx(3 * canonical.header.get_zooms()[2])
    path = tmp_path / "thick.nii.gz"
    nib.save(thick, path)
    frames = {f.label.split(":")[0]: f for f in nifti.read_nifti(path.read_bytes()).frames}
    x, y, z = canonical.shape[:3]
    assert abs(frames["coronal"].height - z) <= 3 and frames["coronal"].width == x


def test_4d_series_uses_its_first_volume(volume, tmp_path):
    data, img = volume
    canonical = nib.as_closest_canonical(img)
    first = np.asarray(canonical.dataobj)
    series = nib.Nifti1Image(np.stack([first, first[::-1]], axis=-1), canonical.affine)
    path = tmp_path / "series.nii"
    nib.save(series, path)
    a, b = planes(path.read_bytes()), planes(data)
    assert all(np.array_equal(a[p], b[p]) for p in a)


def test_bad_nifti_files_get_specific_reasons(volume):
    data = volume[0]
    raw = gzip.decompress(data)
    for broken, reason in ((data[: len(data) // 2], "nifti_truncated"),
                           (raw[: len(raw) // 2], "nifti_truncated"),
                           (b"not a volume at all" * 40, "nifti_malformed")):
        with pytest.raises(MedicalFileError) as caught:
            nifti.read_nifti(broken)
        assert caught.value.reason == reason
    with pytest.raises(MedicalFileError, match="nifti_too_large"):
        nifti.read_nifti(data, max_bytes=len(raw) // 4)


def test_recognised_by_name():
    assert medical_format(b"", "https://h/vol/brain.nii.gz?dl=1") == "nifti"
    assert medical_format(b"", "scan.NII") == "nifti"
    assert medical_format(b"", "notes.txt") is None


def test_a_thin_volume_reaches_the_minimum_size_at_its_true_aspect():
    """nibabel's example4d: 128x96x24 voxels of 2x2x2.2 mm, a slab only 24 slices thick."""
    from nibabel.testing import data_path
    data = (Path(data_path) / "example4d.nii.gz").read_bytes()
    as_voxels = {f.label.split(":")[0]: (f.width, f.height) for f in nifti.read_nifti(data).frames}
    assert as_voxels == {"axial": (128, 96), "coronal": (128, 26), "sagittal": (96, 26)}
    sized = {f.label.split(":")[0]: (f.width, f.height) for f in nifti.read_nifti(data, min_size=64).frames}
    assert sized["axial"] == (128, 96)
    for plane in ("coronal", "sagittal"):
        (w, h), (w0, h0) = sized[plane], as_voxels[plane]
        assert h == 64 and abs(w / h - w0 / h0) < 0.05                  # the true aspect, enlarged
    tiny = (Path(data_path) / "standard.nii.gz").read_bytes()           # 4x5x7 voxels: no anatomy to show
    assert max(max(f.width, f.height) for f in nifti.read_nifti(tiny, min_size=64).frames) < 64
