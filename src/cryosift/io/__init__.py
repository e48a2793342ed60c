"""Reading and writing the files of cryo-EM: MRC stacks, STAR tables, cryoSPARC ``.cs``."""

from cryosift._lazy import lazy_exports

_EXPORTS = {
    "MrcStack": "mrc",
    "open_stack": "mrc",
    "write_stack": "mrc",
    "CtfParams": "particles",
    "ParticleSet": "particles",
    "read_particles": "particles",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
