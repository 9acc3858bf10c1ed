"""The process boundary: parse settings, run, and turn every failure into one message and an exit code.

Why a single place for this: the pod's exit code and the last log line are what an operator (and gpuflow's
DAG) sees first, so every known failure ends as ``error: <what, which URI, how to fix>`` with its own code.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from .config import parse_config
from .errors import EXIT_BUG, TrainingError


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(argv)
        from .train import run  # torch loads only once the settings are known to be good

        return run(config)
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except SystemExit as exc:  # argparse: --help is 0, bad flags 2
        return exc.code if isinstance(exc.code, int) else EXIT_BUG
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception:
        traceback.print_exc()
        print("error: unexpected failure (a bug in gpuflow_training); see the traceback above", file=sys.stderr)
        return EXIT_BUG
