"""DICOM and NIfTI rendering: frames/s of medcrawl.extract.medical.render_medical on real files.

Files: pydicom-data's CT (512x512, uncompressed and JPEG 2000), MR (1024x1024, JPEG 2000),
chest X-ray (1760x1760 MONOCHROME1, JPEG 2000), colour ultrasound (640x480, JPEG 2000) and a
10-frame RLE MR (all frames), and mricron-data's 181x217x181 brain MRI (three slices).
Baseline: the decode floor, pydicom's ``pixel_array`` for the same frames and nibabel's volume
read, without windowing or PNG encoding.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench import common
from bench.common import Figure

DICOMS = ("693_UNCI.dcm", "693_J2KR.dcm", "MR2_J2KR.dcm", "RG3_J2KR.dcm", "US1_J2KI.dcm",
          "emri_small_RLE.dcm")
QUICK = ("693_UNCI.dcm", "emri_small_RLE.dcm")
NIFTI = Path("/usr/share/mricron/templates/ch2.nii.gz")
TARGET_RATE = 5.0       # frames/s on 2 cores: a site's DICOM links are not the bottleneck


def load(quick: bool) -> list[tuple[str, bytes]]:
    """(kind, bytes) of the benchmark files that are installed (never downloads)."""
    from pydicom.data import get_testdata_file
    files = [("dicom", Path(get_testdata_file(name, download=False)).read_bytes())
             for name in (QUICK if quick else DICOMS)]
    if NIFTI.is_file():
        files.append(("nifti", NIFTI.read_bytes()))
    return files


def product(files: list[tuple[str, bytes]]) -> int:
    from medcrawl.extract.medical import MedicalOptions, render_medical
    options = MedicalOptions("all")
    return sum(len(render_medical(kind, data, options).frames) for kind, data in files)


def floor(files: list[tuple[str, bytes]]) -> int:
    """Decoding only: every DICOM frame with pydicom, every NIfTI volume with nibabel."""
    import io
    import gzip
    import nibabel as nib
    import pydicom
    from pydicom.pixels import pixel_array
    frames = 0
    for kind, data in files:
        if kind == "nifti":
            nib.Nifti1Image.from_bytes(gzip.decompress(data)).get_fdata()
            frames += 3
            continue
        ds = pydicom.dcmread(io.BytesIO(data))
        for index in range(int(ds.get("NumberOfFrames") or 1)):
            pixel_array(ds, index=index)
            frames += 1
    return frames


def main(argv=None) -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args(argv)
    files = load(args.quick)
    arms = {"product": product, "decode floor": floor}
    expected = product(files)                       # warm-up, and the frame count
    if floor(files) != expected:
        raise SystemExit("the arms rendered different numbers of frames")
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(common.rounds(args, full=5, quick=1)):
        for name in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
            seconds, _ = common.timed(arms[name], files)
            rates[name].append(expected / seconds)
    figures = [Figure("product rate", common.median(rates["product"]), "frames/s", TARGET_RATE),
               Figure("decode floor rate", common.median(rates["decode floor"]), "frames/s"),
               Figure("product / decode floor", common.rate_ratio(rates, "product", "decode floor"),
                      "x")]
    return common.report(f"DICOM/NIfTI rendering ({len(files)} files, {expected} frames)", figures,
                         args, {"files": len(files), "frames": expected})


if __name__ == "__main__":
    sys.exit(main())
