"""``python -m so3k_driver.cli``: the same as the ``so3k`` command."""

import sys

from .main import main

sys.exit(main())
