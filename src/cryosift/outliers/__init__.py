"""Radial-profile outlier removal: detector, presets and the vectorised DBSCAN."""

from cryosift._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "rules": ("DEFAULT_PRESET", "PRESETS", "Rules", "get_rules"),
        "detector": ("Detection", "DetectorParams", "detect"),
        "dbscan": ("dbscan_batch",),
    },
)
