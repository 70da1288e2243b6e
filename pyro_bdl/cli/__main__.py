"""``python -m pyro_bdl.cli``: the same as the ``pyro-bdl`` command."""

import sys

from .main import main

sys.exit(main())
