"""``python -m technic_ml.cli``."""

from technic_ml.cli import app

app()
