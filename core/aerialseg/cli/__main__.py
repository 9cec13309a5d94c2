"""``python -m aerialseg.cli``: the ``aerialseg`` command."""

import sys

from aerialseg.cli import main

sys.exit(main())
