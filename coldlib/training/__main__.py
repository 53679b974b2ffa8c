"""``python -m coldlib.training ...``: the training command line (see :mod:`coldlib.training.cli`)."""

from .cli import main

main()
