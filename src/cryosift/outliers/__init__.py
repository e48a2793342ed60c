"""Radial-profile outlier removal: detector, presets and the vectorised DBSCAN."""

from cryosift._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_PRESET": "rules",
    "PRESETS": "rules",
    "Rules": "rules",
    "get_rules": "rules",
    "Detection": "detector",
    "DetectorParams": "detector",
    "detect": "detector",
    "dbscan_batch": "dbscan",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
