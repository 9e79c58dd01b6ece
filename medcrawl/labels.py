"""The words of a row's verdict: its label and the kinds of medical image a model may name."""

MEDICAL, NON_MEDICAL = "medical", "non-medical"
# The modality classes a model may name (model.json "modalities"), and the word for "none confident".
MODALITIES = ("xray", "ct", "mri", "ultrasound", "nuclear", "microscopy", "dermoscopy", "fundus",
              "oct", "endoscopy")
OTHER_MODALITY = "other"
