"""Alias of the file format in :mod:`pyro_bdl.serialization` (kept for code importing it).

Example::

    >>> from pyro_bdl.checkpoint import read_checkpoint, write_checkpoint
"""

from .serialization import (
    FORMAT_VERSION,
    MAGIC,
    CheckpointError,
    read_checkpoint,
    write_checkpoint,
)

__all__ = ["FORMAT_VERSION", "MAGIC", "CheckpointError", "read_checkpoint", "write_checkpoint"]
