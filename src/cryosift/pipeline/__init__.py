"""One command from micrographs to clean particles: the per-micrograph task and the driver
(where tasks run: :mod:`cryosift.executors`)."""
