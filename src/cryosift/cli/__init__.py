"""The ``cryosift`` command line: one module per command, each with a thin ``main``."""
