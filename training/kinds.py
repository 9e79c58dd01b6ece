"""The kinds of image training knows: the registry's vocabulary, and each medical kind's modality.

A kind is finer than the label: the kind head of medcrawl-v3 learns one class per kind, and the
medical probability is the sum over the medical kinds. Each medical kind maps onto one of the
product's modalities (``medcrawl.model.classifier.MODALITIES``), which stay as they are.
"""

from __future__ import annotations

MEDICAL_KINDS = {
    "xray-chest": "xray", "xray-bone": "xray", "xray-dental": "xray", "mammography": "xray",
    "ct": "ct", "mri": "mri", "ultrasound": "ultrasound", "nuclear": "nuclear",
    "histology": "microscopy", "ihc": "microscopy", "cytology": "microscopy",
    "blood-smear": "microscopy", "electron-microscopy": "microscopy", "fluorescence": "microscopy",
    "dermoscopy": "dermoscopy", "fundus": "fundus", "oct": "oct", "endoscopy": "endoscopy",
}
NON_MEDICAL_KINDS = (
    "photo", "face", "document", "chart", "diagram", "logo-icon", "screenshot", "map", "aerial",
    "art", "texture", "micrograph-materials", "micrograph-rock", "astronomy",
    "industrial-inspection",
)
KINDS = tuple(MEDICAL_KINDS) + NON_MEDICAL_KINDS

# The first pack's `modality` column, as kinds (medmnist64's classes are told apart by folder).
PACK_MODALITY_KIND = {
    "xray": "xray-chest", "dental-xray": "xray-dental", "immunohistochemistry": "ihc",
    "microscopy": "fluorescence", "logo": "logo-icon", "painting": "art", "photo-historic": "photo",
    "digit": "document", "rock-micrograph": "micrograph-rock", "sem-micrograph": "micrograph-materials",
    "planetary-surface": "astronomy", "industrial-xray": "industrial-inspection",
}
MEDMNIST_CLASS_KIND = {"AbdomenCT": "ct", "ChestCT": "ct", "HeadCT": "ct", "BreastMRI": "mri",
                       "CXR": "xray-chest", "Hand": "xray-bone"}


def label_of(kind: str) -> str:
    """'medical' or 'non-medical' for a kind of the vocabulary."""
    if kind in MEDICAL_KINDS:
        return "medical"
    if kind in NON_MEDICAL_KINDS:
        return "non-medical"
    raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")


def pack_kind(modality: str, origin_path: str = "") -> str:
    """The kind of one image of the first pack, from its MANIFEST.csv `modality` and `origin_path`."""
    for folder, kind in MEDMNIST_CLASS_KIND.items():
        if f"/{folder}/" in f"/{origin_path}":
            return kind
    kind = PACK_MODALITY_KIND.get(modality, modality)
    label_of(kind)
    return kind
