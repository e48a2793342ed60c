"""``python -m cryosift`` runs the command line."""

from cryosift.cli.main import app

app()
