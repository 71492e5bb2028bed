"""Exceptions that mean "the user's input or configuration is wrong" (not a bug)."""

from urbansound.audio import AudioError
from urbansound.config import ConfigError
from urbansound.listing import DatasetError
from urbansound.training import TrainingDiverged

USER_ERRORS = (
    AudioError,
    ConfigError,
    DatasetError,
    TrainingDiverged,
    FileNotFoundError,
    PermissionError,
)
"""Caught at the CLI and component boundary and shown as one line (exit code 2)."""
