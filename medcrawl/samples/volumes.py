"""Medical samples: slices of the 3-D brain MRI templates shipped by nilearn and mricron-data (NIfTI)."""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from medcrawl.labels import MEDICAL
from medcrawl.samples.packages import Package
from medcrawl.samples.sources import Sample, Source, to_uint8


NILEARN = Package("pypi", "nilearn", "MNI ICBM152 2009a template, (c) McConnell Brain Imaging "
                  "Centre, free to use with attribution")
MRICRON = Package("deb", "mricron-data")
AXES = ("sagittal", "coronal", "axial")


class VolumeSource(Source):
    """Slices of 3-D MRI volumes (NIfTI): ``per_axis`` positions over the brain on each axis."""

    label, modality = MEDICAL, "mri"
    volumes: tuple[str, ...] = ()
    per_axis = 12
    hard_every = 2                  # alternate slices go to the hard set (rendered in colour there)

    def volume_paths(self) -> list[Path]:
        raise NotImplementedError

    def all_keys(self) -> list[str]:
        return [f"{p}#{axis}{i:02d}" for p in self.volume_paths() for axis in AXES
                for i in range(self.per_axis)]

    def load(self, key: str, rng: random.Random) -> Iterator[Sample]:
        path, _, where = key.partition("#")
        axis, pos = AXES.index(where[:-2]), int(where[-2:])
        data = load_volume(path)
        yield Sample(Image.fromarray(to_uint8(volume_slice(data, axis, pos, self.per_axis)), "L"),
                     key, self.modality, self.packages[0], lossless=True)


@functools.lru_cache(maxsize=4)
def load_volume(path: str) -> np.ndarray:
    """A NIfTI volume as float32, reoriented to RAS so slices display the usual way."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    return data[..., 0] if data.ndim == 4 else data


def volume_slice(data: np.ndarray, axis: int, pos: int, count: int) -> np.ndarray:
    """Slice number ``pos`` of ``count`` spread over 20%..80% of the non-zero extent, head up."""
    profile = np.count_nonzero(data > data.max() * 0.05, axis=tuple(a for a in range(3) if a != axis))
    nonzero = np.flatnonzero(profile)
    first, last = (nonzero[0], nonzero[-1]) if nonzero.size else (0, data.shape[axis] - 1)
    index = int(round(first + (last - first) * (0.2 + 0.6 * pos / max(count - 1, 1))))
    return np.rot90(np.take(data, index, axis=axis))


class MNI152(VolumeSource):
    name, packages = "pkg-mni152", (NILEARN,)

    def volume_paths(self) -> list[Path]:
        import nilearn.datasets

        base = Path(nilearn.datasets.__file__).parent / "data"
        return [base / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"]


class MRIcron(VolumeSource):
    name, packages = "pkg-mricron", (MRICRON,)
    names = ("ch2.nii.gz", "ch2better.nii.gz", "inia19-t1-brain.nii.gz")   # T1 MRI, not atlases

    def volume_paths(self) -> list[Path]:
        return [Path("/usr/share/mricron/templates") / n for n in self.names]
