"""Names of the coordinate formats cryosift reads, apart from their readers
(:mod:`cryosift.io.coords`) so that a command's ``--help`` lists them without importing
pandas."""

#: The ``--format`` choices, in the order ``--help`` lists them.
COORDINATE_FORMATS = ("relion", "relion-list", "particles", "box", "topaz", "cbox", "cryoppp", "cs")
