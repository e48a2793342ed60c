"""Reference-free 2D classification of particle images (``cryosift classify``)."""
