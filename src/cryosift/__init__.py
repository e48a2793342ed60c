"""cryosift: particle picking and radial-profile outlier removal for single-particle cryo-EM.

The public API is deliberately small:

- :func:`cryosift.outliers.detect` runs the radial-profile detector on a batch of images.
- :func:`cryosift.io.read_particles` reads a RELION STAR, a bare ``.mrcs`` or a cryoSPARC ``.cs``
  into one :class:`cryosift.io.ParticleSet`.
- :class:`cryosift.errors.InputError` is raised, naming the file, for any bad input.
"""

from cryosift.errors import InputError

__version__ = "0.1.0"
__all__ = ["InputError", "__version__"]
