"""``python -m skmm.cli``: the same as ``skmm``."""

import sys

from . import main

sys.exit(main())
