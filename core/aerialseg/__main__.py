"""``python -m aerialseg``: the ``aerialseg`` command."""

import sys

from aerialseg.cli import main

sys.exit(main())
