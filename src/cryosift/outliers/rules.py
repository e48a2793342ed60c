"""Rule presets of the radial-profile outlier detector."""

from __future__ import annotations

from dataclasses import dataclass, replace

#: The verdicts, in the order tables and figures show them.
VERDICTS = ("inlier", "noise", "partial", "multiple")


@dataclass(frozen=True)
class Rules:
    """How images are normalised, correlated and judged.

    Attributes
    ----------
    name: preset name as given to ``--rules``.
    normalise: ``"stack"`` (subtract the mean of the whole stack, divide each image by its own
        maximum, as the reference code) or ``"image"`` (per-image zero mean, unit variance).
    correlation: ``"circular"`` (FFT without padding, wraps around the borders) or
        ``"linear"`` (zero-padded, nothing wraps).
    multiple_is_outlier: whether two or more clusters make an image an outlier.
    border_rule: ``"reference"`` (rounded centroid coordinate ``<= r`` or ``>= d - r``) or
        ``"distance"`` (distance from the centroid to the nearest border, measured to the
        pixel edge, ``<= r``).
    dtype: floating type used for correlation (``float64`` for exact reference decisions).
    window: side of the central detection window in particle diameters (``None``: the whole
        image); the output stacks keep the user's box.
    radius_scale: DBSCAN eps and border margin of the peak rules, in particle radii.
    polarity: ``"bright"`` (images are used as given: particles must be bright) or
        ``"auto"`` (found from the stack's typical radial profile).
    decision: ``"rules"`` (the peak rules decide) or ``"profile"`` (the radial-profile
        decision of :mod:`cryosift.outliers.radial` decides; the peak rules only name the
        outlier type).
    """

    name: str
    normalise: str
    correlation: str
    multiple_is_outlier: bool
    border_rule: str
    dtype: str
    window: float | None = None
    radius_scale: float = 1.0
    polarity: str = "bright"
    decision: str = "rules"


REFERENCE = Rules(
    name="reference",
    normalise="stack",
    correlation="circular",
    multiple_is_outlier=False,
    border_rule="reference",
    dtype="float64",
)

PAPER = Rules(
    name="paper",
    normalise="image",
    correlation="linear",
    multiple_is_outlier=True,
    border_rule="reference",
    dtype="float32",
)

#: The paper's rules on a 1.5-diameter window, judged by the stack's radial profiles.
RADIAL = replace(
    PAPER,
    name="radial",
    window=1.5,
    radius_scale=0.5,
    polarity="auto",
    decision="profile",
)

#: Choices of ``--polarity``.
POLARITIES = ("auto", "bright", "dark")

PRESETS: dict[str, Rules] = {r.name: r for r in (RADIAL, PAPER, REFERENCE)}
DEFAULT_PRESET = "radial"


def get_rules(name: str) -> Rules:
    """The preset called ``name``; raises ``KeyError`` listing the known presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown rules preset {name!r} (known: {', '.join(PRESETS)})") from None
