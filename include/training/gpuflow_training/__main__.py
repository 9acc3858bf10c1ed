"""``python -m gpuflow_training``: the process's exit code is the one ``cli.main`` returns."""

import sys

from .cli import main

sys.exit(main())
