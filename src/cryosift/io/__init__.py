"""Reading and writing the files of cryo-EM: MRC stacks, STAR tables, cryoSPARC ``.cs``."""

from cryosift._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "mrc": ("MrcStack", "open_stack", "write_stack"),
        "particles": ("CtfParams", "ParticleSet", "read_particles"),
    },
)
