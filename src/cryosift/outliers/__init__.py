"""Radial-profile outlier removal: detector, presets and the vectorised DBSCAN."""

from cryosift.outliers.dbscan import dbscan_batch
from cryosift.outliers.detector import Detection, DetectorParams, detect
from cryosift.outliers.rules import DEFAULT_PRESET, PRESETS, Rules, get_rules

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Detection",
    "DetectorParams",
    "Rules",
    "dbscan_batch",
    "detect",
    "get_rules",
]
