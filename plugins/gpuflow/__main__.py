"""``python -m gpuflow``: see ``gpuflow.cli``."""

import sys

from gpuflow.cli import main

sys.exit(main())
