"""Real DICOM and NIfTI test files: written by pydicom from real images, or shipped by packages.

Pixel sources: pydicom's own CT, MR, X-ray and ultrasound images (pydicom, pydicom-data), the
retina photograph and IHC micrograph of scikit-image, and the MNI brain of mricron-data / nilearn.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import (JPEG2000Lossless, JPEGBaseline8Bit, RLELossless, ExplicitVRLittleEndian,
                         generate_uid)

# Values the privacy test looks for in every output; no real person's data.
PATIENT = {"PatientName": "Zzyzx^Quiltbert", "PatientID": "MRN-7741-QX",
           "PatientBirthDate": "19230417", "InstitutionName": "Quxley Infirmary"}
DEFLATED_FRAMES = "1.2.840.10008.1.2.8.1"       # Deflated Image Frame Compression: no decoder
NIFTI_SOURCES = ("/usr/share/mricron/templates/ch2.nii.gz",)
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
SOP_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
               "DX": "1.2.840.10008.5.1.4.1.1.1.1", "US": "1.2.840.10008.5.1.4.1.1.6.1",
               "OP": "1.2.840.10008.5.1.4.1.1.77.1.5.1", "SM": "1.2.840.10008.5.1.4.1.1.77.1.6"}


def shipped(name: str) -> Path:
    """A file of pydicom's test data (pydicom or pydicom-data), by name."""
    return Path(get_testdata_file(name, download=False))


def skimage_image(name: str) -> Path:
    """A photograph shipped with scikit-image (retina.jpg, ihc.png, ...)."""
    import skimage

    return Path(skimage.__file__).parent / "data" / name


def nifti_volume() -> Path:
    """A real brain MRI volume: mricron-data's ch2, else nilearn's MNI template."""
    for candidate in NIFTI_SOURCES:
        if Path(candidate).is_file():
            return Path(candidate)
    import nilearn.datasets
    path = Path(nilearn.datasets.__file__).parent / "data"
    return next(path.glob("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"))


def new_dataset(modality: str, patient: dict | None = None) -> Dataset:
    """A minimal, valid image data set of ``modality`` with file meta; patient values if given."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SOP_CLASSES.get(modality, SECONDARY_CAPTURE)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    for keyword, value in (patient or {}).items():
        setattr(ds, keyword, value)
    return ds


def ct_with_rescale(patient: dict | None = None) -> Dataset:
    """16-bit CT in Hounsfield units via RescaleIntercept -1024, without any window."""
    source = pydicom.dcmread(shipped("693_UNCI.dcm"))
    hu = source.pixel_array.astype(np.int32) * int(source.RescaleSlope) + int(
        source.RescaleIntercept)
    ds = new_dataset("CT", patient)
    ds.BodyPartExamined = "HEAD"
    ds.set_pixel_data(np.clip(hu + 1024, 0, 4095).astype(np.uint16), "MONOCHROME2", 12)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    return ds


def xray_monochrome1() -> Dataset:
    """A chest X-ray stored MONOCHROME1 (high values dark), 12 bits, as pydicom's RG3 is."""
    source = pydicom.dcmread(shipped("RG3_UNCR.dcm"))
    ds = new_dataset("DX")
    ds.set_pixel_data(np.ascontiguousarray(source.pixel_array[::4, ::4]), "MONOCHROME1",
                      int(source.BitsStored))
    return ds


def ultrasound_rgb(ybr: bool = False) -> Dataset:
    """A colour ultrasound frame, RGB or converted to YBR_FULL."""
    rgb = pydicom.dcmread(shipped("US1_UNCR.dcm")).pixel_array
    ds = new_dataset("US")
    if ybr:
        ds.set_pixel_data(convert_color_space(rgb, "RGB", "YBR_FULL"), "YBR_FULL", 8)
    else:
        ds.set_pixel_data(rgb, "RGB", 8)
    return ds


def mri_multiframe(frames: int = 5) -> Dataset:
    """Axial slices of a brain MRI volume as one multi-frame 16-bit MR object."""
    import nibabel as nib

    volume = np.asarray(nib.as_closest_canonical(nib.load(nifti_volume())).dataobj)
    middle, step = volume.shape[2] // 2, 8
    picks = [middle + step * (k - frames // 2) for k in range(frames)]
    stack = np.stack([np.rot90(volume[:, :, z]) for z in picks]).astype(np.float64)
    stack = np.round(4095 * (stack - stack.min()) / (stack.max() - stack.min()))
    ds = new_dataset("MR")
    ds.set_pixel_data(stack.astype(np.uint16), "MONOCHROME2", 12)
    return ds


def fundus_jpeg() -> Dataset:
    """scikit-image's retina photograph, its JPEG bytes encapsulated as they are (baseline)."""
    from PIL import Image

    path = skimage_image("retina.jpg")
    with Image.open(path) as img:
        width, height = img.size
    ds = new_dataset("OP")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = height, width, 3, 0
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([path.read_bytes()])
    ds["PixelData"].VR = "OB"
    return ds


def compressed(ds: Dataset, syntax: str) -> Dataset:
    """The data set with its pixel data compressed by pydicom's encoders (RLE, JPEG 2000)."""
    ds.compress(syntax, generate_instance_uid=False)
    return ds


def deflated_frames() -> bytes:
    """An MR frame in Deflated Image Frame Compression (2024), which pydicom cannot decode.

    pydicom 3.0 cannot write that syntax either: the file is written as JPEG 2000 Lossless
    (same encapsulation, same UID length) and the UID in its file meta is then swapped.
    """
    ds = mri_multiframe(1)
    ds.PixelData = encapsulate([zlib.compress(ds.PixelData)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    data = _bytes(ds)
    old, new = JPEG2000Lossless.encode(), DEFLATED_FRAMES.encode().ljust(len(JPEG2000Lossless), b"\0")
    assert len(old) == len(new) and data.count(old) == 1
    return data.replace(old, new)


def write(ds: Dataset, path: Path) -> Path:
    """Save with a preamble and file meta, as a conformant DICOM file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def good_files(folder: Path, patient: dict | None = None) -> dict[str, Path]:
    """Readable DICOMs, each of a different encoding: name -> path."""
    files = {
        "ct_rescale.dcm": ct_with_rescale(patient),
        "xray_mono1.dcm": xray_monochrome1(),
        "us_rgb.dcm": ultrasound_rgb(),
        "us_ybr.dcm": ultrasound_rgb(ybr=True),
        "mr_multiframe.dcm": mri_multiframe(),
        "fundus_jpeg.dcm": fundus_jpeg(),
        "ct_j2k.dcm": compressed(ct_with_rescale(), JPEG2000Lossless),
        "mr_rle.dcm": compressed(mri_multiframe(3), RLELossless),
    }
    return {name: write(ds, folder / name) for name, ds in files.items()}


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Unreadable DICOM files and the reason each must get: name -> (path, reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write(compressed(ct_with_rescale(), RLELossless), folder / "source.dcm").read_bytes()
    no_pixels = ct_with_rescale()
    del no_pixels.PixelData
    out = {
        "truncated.dcm": (good[: len(good) - len(good) // 3], "dicom_truncated"),
        "no_pixels.dcm": (_bytes(no_pixels), "dicom_no_pixel_data"),
        "deflated_frames.dcm": (deflated_frames(), "dicom_unsupported_transfer_syntax"),
        "DICOMDIR": (shipped("DICOMDIR").read_bytes(), "dicomdir"),
        "rtstruct.dcm": (shipped("rtstruct.dcm").read_bytes(), "dicom_not_an_image"),
        "report.dcm": (shipped("test-SR.dcm").read_bytes(), "dicom_not_an_image"),
    }
    (folder / "source.dcm").unlink()
    result = {}
    for name, (data, reason) in out.items():
        (folder / name).write_bytes(data)
        result[name] = (folder / name, reason)
    return result


def _bytes(ds: Dataset) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
