"""Micrograph preprocessing for the picker (Cryo-EMMAE, Zamanos et al. 2024), done properly.

The paper's chain is: background normalisation by the particle diameter, a Wiener filter,
CLAHE, a guided filter, and a resize to 1024 px on the long side. cryosift runs it as:

1. **resize first**, keeping the aspect ratio, anti-aliased by area averaging (:func:`resize`),
   so the particle spans :data:`WORK_DIAMETER` px (the paper resizes to 1024 px on the long
   side instead: ``diameter_px=None``): every later step then costs what the number of
   particle areas in the micrograph says, not its pixel count. The mapping back to the
   original pixels is exact and kept in :class:`Resize` (pixel centres:
   ``x_orig = (x + 0.5) * sx - 0.5``);
2. **background normalisation**: ``(x - mean) / std`` with the local mean and standard deviation
   taken over an annulus between the particle radius and the diameter, so a particle does not
   flatten itself (FFT convolution);
3. **Wiener filter**: the adaptive local Wiener filter (``scipy.signal.wiener``) over a window of
   a sixth of the particle diameter; the reference code only blurs here;
4. **CLAHE** (``skimage.exposure.equalize_adapthist``) over tiles of four particle diameters;
5. **guided filter** (He et al. 2013, box-filter form) with the image as its own guide, radius
   a sixth of the diameter; the reference code's version reduces to two box blurs.

``filters="reference"`` swaps steps 3 and 5 for the reference code's blurs, so the benchmark
can measure whether doing them properly matters. Output: float32, mean 0, standard deviation 1.
Arrays are ``(rows, cols)``; coordinates are px, origin top-left, x = column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal, sparse

#: Long side of the preprocessed micrograph, px (the paper's 1024), when the scale is not
#: set by the particle.
LONG_SIDE = 1024
#: Particle diameter at the picker's working scale, px (seven 4-px tokens): micrographs are
#: shrunk so the particle spans this, whatever their size or pixel size (never enlarged).
WORK_DIAMETER = 28.0
FILTERS = ("proper", "reference")


@dataclass(frozen=True)
class Resize:
    """The exact map between original px and preprocessed px, per axis.

    ``shape`` is the original ``(rows, cols)``, ``out_shape`` the preprocessed one;
    ``sy, sx`` = original px per preprocessed px along rows and columns."""

    shape: tuple[int, int]
    out_shape: tuple[int, int]

    @property
    def sy(self) -> float:
        return self.shape[0] / self.out_shape[0]

    @property
    def sx(self) -> float:
        return self.shape[1] / self.out_shape[1]

    @property
    def scale(self) -> float:
        """Mean original px per preprocessed px (for lengths such as the diameter)."""
        return 0.5 * (self.sx + self.sy)

    def to_original(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Preprocessed-px coordinates ``(N,)`` to original px (pixel centres map exactly)."""
        return (np.asarray(x) + 0.5) * self.sx - 0.5, (np.asarray(y) + 0.5) * self.sy - 0.5

    def to_preprocessed(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Original-px coordinates ``(N,)`` to preprocessed px (inverse of :meth:`to_original`)."""
        return (np.asarray(x) + 0.5) / self.sx - 0.5, (np.asarray(y) + 0.5) / self.sy - 0.5


def plan_resize(
    shape: tuple[int, int],
    long_side: int = LONG_SIDE,
    diameter: float | None = None,
    diameter_px: float | None = None,
) -> Resize:
    """Resize ``(rows, cols)`` so the long side is ``long_side`` px, or, given the particle
    ``diameter`` (px of ``shape``) and ``diameter_px``, so the particle spans
    ``diameter_px`` px; the aspect ratio is kept. Never upsampled."""
    rows, cols = int(shape[0]), int(shape[1])
    if diameter_px is not None and diameter is not None:
        f = min(1.0, diameter_px / diameter)
    else:
        f = min(1.0, long_side / max(rows, cols))
    return Resize((rows, cols), (max(1, round(rows * f)), max(1, round(cols * f))))


def area_weights(n_in: int, n_out: int) -> sparse.csr_matrix:
    """``(n_out, n_in)`` weights of area resampling along one axis: output pixel ``i``
    averages the input over its footprint ``[i s, (i + 1) s)`` (``s = n_in / n_out``, input
    pixel ``j`` covering ``[j, j + 1)``), so pixel centres map as :class:`Resize` says and
    every row sums to one."""
    s = n_in / n_out
    lo = np.arange(n_out) * s
    hi = lo + s
    first = np.floor(lo).astype(np.int64)
    span = int(np.ceil(s)) + 1
    cols = first[:, None] + np.arange(span)[None]
    overlap = np.minimum(hi[:, None], cols + 1) - np.maximum(lo[:, None], cols)
    ok = (overlap > 1e-9) & (cols < n_in)
    rows = np.broadcast_to(np.arange(n_out)[:, None], cols.shape)
    w = sparse.csr_matrix((overlap[ok] / s, (rows[ok], cols[ok])), shape=(n_out, n_in))
    return w.astype(np.float32)


def resize(image: np.ndarray, plan: Resize) -> np.ndarray:
    """Anti-aliased resize of ``(rows, cols)`` to ``plan.out_shape`` (float32) by area
    averaging (a box filter over each output pixel's footprint, separable, two sparse
    products): for a whole factor it is the mean of each block."""
    image = np.asarray(image, np.float32)
    if tuple(image.shape) == plan.out_shape:
        return image
    if plan.out_shape[0] > image.shape[0] or plan.out_shape[1] > image.shape[1]:
        raise ValueError("resize only shrinks")
    rows = area_weights(image.shape[0], plan.out_shape[0])
    cols = area_weights(image.shape[1], plan.out_shape[1])
    return np.asarray((cols @ (rows @ image).T).T, np.float32)


def annulus_kernel(diameter: float) -> np.ndarray:
    """A normalised ring between radius ``diameter / 2`` and ``diameter`` (px), odd side."""
    r_out = max(2.0, float(diameter))
    half = int(np.ceil(r_out))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    rr = np.hypot(yy, xx)
    ring = ((rr <= r_out) & (rr > 0.5 * diameter)).astype(np.float64)
    return ring / ring.sum()


def normalise_background(image: np.ndarray, diameter: float) -> np.ndarray:
    """``(x - mean) / std`` with local statistics over the ring around each pixel.

    ``image`` ``(rows, cols)``; ``diameter`` px. Borders are reflected."""
    k = annulus_kernel(diameter)
    pad = k.shape[0] // 2
    img = np.pad(image.astype(np.float64), pad, mode="reflect")
    mean = signal.fftconvolve(img, k, mode="valid")
    sq = signal.fftconvolve(img * img, k, mode="valid")
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    floor = max(float(np.median(std)) * 1e-3, 1e-12)
    return ((image - mean) / np.maximum(std, floor)).astype(np.float32)


def guided_filter(image: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Self-guided filter (He, Sun & Tang 2013) of ``(rows, cols)``: edge-preserving smoothing.

    ``radius`` px of the box windows; ``eps`` regularises in the image's squared units."""
    size = 2 * int(radius) + 1
    box = lambda a: ndimage.uniform_filter(a, size, mode="reflect")  # noqa: E731
    img = image.astype(np.float64)
    mean = box(img)
    var = box(img * img) - mean * mean
    a = var / (var + eps)
    b = mean - a * mean
    return (box(a) * img + box(b)).astype(np.float32)


def _unit(image: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """Clip at ``clip`` standard deviations and rescale to [0, 1] (what CLAHE takes)."""
    z = (image - image.mean()) / (image.std() + 1e-12)
    return ((np.clip(z, -clip, clip) + clip) / (2 * clip)).astype(np.float64)


def _standardise(image: np.ndarray) -> np.ndarray:
    return ((image - image.mean()) / (image.std() + 1e-12)).astype(np.float32)


def preprocess(
    image: np.ndarray,
    diameter: float,
    long_side: int = LONG_SIDE,
    filters: str = "proper",
    diameter_px: float | None = WORK_DIAMETER,
) -> tuple[np.ndarray, Resize]:
    """The picker's preprocessing of one micrograph.

    ``image`` ``(rows, cols)`` any real dtype; ``diameter`` the particle diameter in px of
    ``image``. Returns the preprocessed ``(out_rows, out_cols)`` float32 image (mean 0, sd 1)
    and the :class:`Resize` that maps its coordinates back."""
    _, pre, plan = preprocess_stages(image, diameter, long_side, filters, diameter_px)
    return pre, plan


def preprocess_stages(
    image: np.ndarray,
    diameter: float,
    long_side: int = LONG_SIDE,
    filters: str = "proper",
    diameter_px: float | None = WORK_DIAMETER,
) -> tuple[np.ndarray, np.ndarray, Resize]:
    """:func:`preprocess`, also returning the resized micrograph before the filters:
    ``(resized, preprocessed, plan)``, both images ``(out_rows, out_cols)``. The scale is
    set by the particle (``diameter_px`` px across), or with ``diameter_px=None`` by the
    long side (:func:`plan_resize`)."""
    plan = plan_resize(image.shape, long_side, diameter, diameter_px)
    small = resize(image, plan)
    return small, filter_resized(small, diameter / plan.scale, filters), plan


def filter_resized(small: np.ndarray, d: float, filters: str = "proper") -> np.ndarray:
    """The filters of :func:`preprocess` on an already resized micrograph ``(rows, cols)``
    with particle diameter ``d`` px: background normalisation, Wiener, CLAHE, guided."""
    from skimage.exposure import equalize_adapthist

    if filters not in FILTERS:
        raise ValueError(f"filters must be one of {FILTERS}, not {filters!r}")
    x = normalise_background(small, d)
    win = max(3, round(d / 6) | 1)
    if filters == "proper":
        x = signal.wiener(x.astype(np.float64), win).astype(np.float32)
    else:
        x = ndimage.uniform_filter(x, win)
    kernel = max(8, round(4 * d))
    x = equalize_adapthist(_unit(x), kernel_size=kernel, clip_limit=0.01)
    if filters == "proper":
        x = guided_filter(x, max(1, round(d / 6)), eps=1e-3)
    else:
        x = ndimage.uniform_filter(ndimage.uniform_filter(x, win), win)
    return _standardise(x)
