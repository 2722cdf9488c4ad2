"""`python -m vortex ...`: the `vortex` command without its entry-point script."""

import sys

from .cli import main

sys.exit(main())
