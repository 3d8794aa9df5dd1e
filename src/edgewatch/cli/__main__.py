"""``python -m edgewatch.cli``."""

import sys

from edgewatch.cli.main import main

sys.exit(main())
