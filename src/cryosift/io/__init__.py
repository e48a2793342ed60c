"""Reading and writing the files of cryo-EM: MRC stacks, STAR tables, cryoSPARC ``.cs``."""

from cryosift.io.mrc import MrcStack, open_stack, write_stack
from cryosift.io.particles import CtfParams, ParticleSet, read_particles

__all__ = ["CtfParams", "MrcStack", "ParticleSet", "open_stack", "read_particles", "write_stack"]
