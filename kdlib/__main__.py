"""``python -m kdlib``: the command line (see :mod:`kdlib.cli`)."""

import sys

from .cli import main

sys.exit(main())
