"""``python -m derive``: see ``derive.cli``."""

import sys

from derive.cli import main

sys.exit(main())
