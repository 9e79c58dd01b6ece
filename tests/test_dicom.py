"""DICOM reading on real files: pydicom-written encodings of real images and pydicom's own files."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut

from medcrawl.extract import dicom
from medcrawl.extract.frames import PERCENTILES
from medcrawl.extract.medical import MedicalFileError, medical_format
from tests.support import dicom_files


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return dicom_files.good_files(tmp_path_factory.mktemp("dicom"), dicom_files.PATIENT)


def pixels(frame) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(frame.png)))


def rendered(path, frames="middle"):
    return dicom.read_dicom(path.read_bytes(), frames)


@pytest.mark.parametrize("name, modality, size, mode", [
    ("ct_rescale.dcm", "ct", (512, 512), "L"),
    ("xray_mono1.dcm", "xray", (440, 440), "L"),
    ("us_rgb.dcm", "ultrasound", (640, 480), "RGB"),
    ("us_ybr.dcm", "ultrasound", (640, 480), "RGB"),
    ("mr_multiframe.dcm", "mri", (181, 217), "L"),
    ("fundus_jpeg.dcm", "fundus", (1411, 1411), "RGB"),
    ("ct_j2k.dcm", "ct", (512, 512), "L"),
    ("mr_rle.dcm", "mri", (181, 217), "L"),
])
def test_every_encoding_renders_with_its_modality(good, name, modality, size, mode):
    result = rendered(good[name])
    frame = result.frames[0]
    assert (result.format, result.modality, (frame.width, frame.height)) == ("dicom", modality, size)
    img = Image.open(io.BytesIO(frame.png))
    assert img.format == "PNG" and img.mode == mode and img.size == size
    assert np.ptp(np.asarray(img)) > 100          # a picture, not a flat field


def test_ct_without_window_gets_a_percentile_window_over_hounsfield_units(good):
    ds = pydicom.dcmread(good["ct_rescale.dcm"])
    hu = apply_modality_lut(ds.pixel_array, ds)
    assert "WindowCenter" not in ds and hu.min() < -900     # rescale applied: air is ~ -1000 HU
    out = pixels(rendered(good["ct_rescale.dcm"]).frames[0])
    low, high = np.percentile(hu, PERCENTILES)
    assert out[hu <= low].max() == 0 and out[hu >= high].min() == 255
    inside = (hu > low + 50) & (hu < high - 50)
    assert 0 < out[inside].min() and out[inside].max() < 255


def test_the_files_window_is_used_when_present(good, tmp_path):
    ds = pydicom.dcmread(good["ct_rescale.dcm"])
    ds.WindowCenter, ds.WindowWidth = 40, 400       # a soft-tissue window in HU
    path = dicom_files.write(ds, tmp_path / "windowed.dcm")
    hu = apply_modality_lut(ds.pixel_array, ds)
    out = pixels(rendered(path).frames[0])
    assert out[hu <= 40 - 200].max() == 0 and out[hu > 40 + 200].min() == 255
    middle = out[(hu > 30) & (hu < 50)]
    assert abs(float(middle.mean()) - 127.5) < 10


def test_monochrome1_is_inverted(good, tmp_path):
    ds = pydicom.dcmread(good["xray_mono1.dcm"])
    ds.PhotometricInterpretation = "MONOCHROME2"
    as_mono2 = pixels(rendered(dicom_files.write(ds, tmp_path / "mono2.dcm")).frames[0])
    as_mono1 = pixels(rendered(good["xray_mono1.dcm"]).frames[0])
    assert np.array_equal(as_mono1.astype(int), 255 - as_mono2.astype(int))


def test_ybr_is_converted_to_the_same_colours_as_rgb(good):
    rgb = pixels(rendered(good["us_rgb.dcm"]).frames[0]).astype(int)
    ybr = pixels(rendered(good["us_ybr.dcm"]).frames[0]).astype(int)
    assert np.abs(rgb - ybr).max() <= 3


def test_lossless_compression_renders_identically(good, tmp_path):
    plain = pixels(rendered(good["ct_rescale.dcm"]).frames[0])
    assert np.array_equal(pixels(rendered(good["ct_j2k.dcm"]).frames[0]), plain)
    ds = pydicom.dcmread(good["mr_rle.dcm"])
    ds.decompress()
    plain = rendered(dicom_files.write(ds, tmp_path / "mr.dcm"), "all").frames
    rle = rendered(good["mr_rle.dcm"], "all").frames
    assert len(rle) == 3 and all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(plain, rle))


def test_multiframe_choices(good):
    path = good["mr_multiframe.dcm"]
    assert [f.label for f in rendered(path).frames] == ["3"]
    assert [f.label for f in rendered(path, "all").frames] == ["1", "2", "3", "4", "5"]
    assert [f.label for f in rendered(path, "2").frames] == ["2", "4"]
    assert [f.label for f in rendered(path, "9").frames] == ["1", "2", "3", "4", "5"]
    every = rendered(path, "all").frames
    assert not np.array_equal(pixels(every[0]), pixels(every[4]))
    assert np.array_equal(pixels(rendered(path).frames[0]), pixels(every[2]))


def test_frame_setting_is_validated():
    assert dicom.frame_indices(1, "middle") == [0] and dicom.frame_indices(120, "3") == [20, 60, 100]
    for bad in ("0", "-2", "half", ""):
        with pytest.raises(ValueError, match="MEDCRAWL_DICOM_FRAMES"):
            dicom.frame_indices(5, bad)


@pytest.mark.parametrize("name", [
    "CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm",
    "JPGExtended.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm",
    "SC_rgb_rle_16bit.dcm", "SC_ybr_full_422_uncompressed.dcm", "OBXXXX1A.dcm", "vlut_04.dcm",
    "mlut_18.dcm", "emri_small_RLE.dcm", "JPEG-LL.dcm", "RG1_J2KR.dcm", "US1_J2KI.dcm",
])
def test_pydicoms_own_files_render(name):
    data = dicom_files.shipped(name).read_bytes()
    assert medical_format(data, name) == "dicom"
    result = dicom.read_dicom(data)
    assert result.frames and all(pixels(f).size for f in result.frames)


def test_bad_dicoms_get_specific_reasons(tmp_path):
    bad = dicom_files.bad_files(tmp_path)
    got = {}
    for name, (path, _) in bad.items():
        with pytest.raises(MedicalFileError) as caught:
            dicom.read_dicom(path.read_bytes())
        got[name] = caught.value.reason
    assert got == {name: reason for name, (_, reason) in bad.items()}
    with pytest.raises(MedicalFileError, match="dicom_truncated"):
        dicom.read_dicom(dicom_files.shipped("MR_truncated.dcm").read_bytes())


def test_only_allow_listed_header_values_leave(good):
    result = rendered(good["ct_rescale.dcm"])
    assert set(result.facts) <= set(dicom.ALLOWED_TAGS)
    assert result.facts["Modality"] == "CT" and result.facts["BodyPartExamined"] == "HEAD"
    text = repr(result) + repr(result.facts)
    for value in dicom_files.PATIENT.values():
        assert value not in text and value.split("^")[0] not in text


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.open(dicom_files.skimage_image("retina.jpg")).save(out, "JPEG")
    return out.getvalue()


@pytest.mark.parametrize("name, content_type, expected", [
    ("scan.dcm", "", True), ("scan.DICOM", "", True), ("IM000001", "application/dicom", True),
    ("https://host/cases/42/image?id=7", "application/dicom; charset=binary", True),
    ("https://host/cases/42/image?id=7", "image/jpeg", False), ("photo", "", False),
    ("photo.jpg", "", False), ("https://host/a.dcm?download=1", "", True),
])
def test_recognised_by_name_or_content_type(name, content_type, expected):
    assert dicom.looks_like_dicom(jpeg_bytes(), name, content_type) is expected


def test_recognised_by_content(good):
    assert dicom.looks_like_dicom(good["ct_rescale.dcm"].read_bytes(), "download")     # DICM
    tiff_dual = dicom_files.shipped("MR_small.dcm").read_bytes()      # a TIFF header as preamble
    assert tiff_dual[:2] == b"II" and medical_format(tiff_dual, "MR_small") == "dicom"
    bare = dicom_files.shipped("ExplVR_LitEndNoMeta.dcm").read_bytes()                   # no preamble
    assert bare[128:132] != b"DICM" and dicom.looks_like_dicom(bare, "IM0001")
    assert not dicom.looks_like_dicom(bare, "notes.txt")
