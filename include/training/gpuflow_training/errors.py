"""Typed failures with an exit code each, so the pod's exit code says what went wrong without reading logs.

Codes (also in the README): 0 done, 1 unexpected bug, 2 bad arguments, 3 dataset unusable, 4 output or
checkpoint storage unusable, 5 base model unusable, 143 stopped by SIGTERM after saving a checkpoint.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_DATASET = 3
EXIT_OUTPUT = 4
EXIT_BASE_MODEL = 5
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what Kubernetes shows for a container stopped by SIGTERM


class TrainingError(Exception):
    """A failure the user can fix; the message names the input and the fix."""

    exit_code = EXIT_BUG


class UsageError(TrainingError):
    exit_code = EXIT_USAGE


class DatasetError(TrainingError):
    exit_code = EXIT_DATASET


class OutputError(TrainingError):
    exit_code = EXIT_OUTPUT


class BaseModelError(TrainingError):
    exit_code = EXIT_BASE_MODEL
