"""The checkpoint file format: plain data in, plain data out, nothing executed on load.

Layout::

    b"PYROBDL\\n"                    8 bytes, magic
    format version                   4 bytes, little-endian unsigned int
    SHA-256 of the payload           32 bytes
    payload                          torch.save({"config": <JSON text>, "tensors": {name: Tensor}})

The header is checked before anything is deserialised: a file that is not ours, is truncated,
has a flipped bit or a format version this code does not read is rejected with ``ValueError``.
The payload is then read with ``torch.load(weights_only=True)``, which refuses every object that
is not a tensor or plain container, so a pickle payload cannot run code. Files are written to a
temporary name and renamed, so an interrupted save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["FORMAT_VERSION", "MAGIC", "CheckpointError", "read_checkpoint", "write_checkpoint"]

MAGIC = b"PYROBDL\n"
FORMAT_VERSION = 1
_HEADER = len(MAGIC) + 4 + 32


class CheckpointError(ValueError):
    """A file that is not a readable pyro_bdl checkpoint."""


def write_checkpoint(
    path: str | os.PathLike, config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    """Write ``config`` (JSON-able) and ``tensors`` atomically to ``path``.

    :param path: destination file.
    :param config: plain data (dicts, lists, str, numbers, bools, None).
    :param tensors: ``{name: tensor}``; stored detached, on the CPU.
    :return: the path written.
    :raises TypeError: if ``config`` is not JSON-serialisable.

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_checkpoint(Path(tmp.name) / "c.pt", {"a": 1}, {"w": torch.zeros(2)})
        >>> path.name, path.read_bytes()[:8]
        ('c.pt', b'PYROBDL\\n')
        >>> tmp.cleanup()
    """
    try:
        text = json.dumps(config, allow_nan=True)
    except TypeError as e:
        raise TypeError(f"Expected a JSON-serialisable checkpoint config: {e}") from e
    buf = io.BytesIO()
    torch.save({"config": text, "tensors": {k: v.detach().cpu() for k, v in tensors.items()}}, buf)
    payload = buf.getvalue()
    header = MAGIC + struct.pack("<I", FORMAT_VERSION) + hashlib.sha256(payload).digest()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a checkpoint; return ``(config, tensors)``.

    :raises CheckpointError: if the file is not ours, is corrupted or truncated, has another
        format version, or holds anything but plain data.
    :raises FileNotFoundError: if there is no such file.

    Example::

        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_checkpoint(Path(tmp.name) / "c.pt", {"a": 1}, {"w": torch.ones(2)})
        >>> read_checkpoint(path)
        ({'a': 1}, {'w': tensor([1., 1.])})
        >>> _ = path.write_bytes(b"not a checkpoint")
        >>> read_checkpoint(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pyro_bdl.checkpoint.CheckpointError: Expected a pyro_bdl checkpoint ...
        >>> tmp.cleanup()
    """
    data = Path(path).read_bytes()
    if len(data) < _HEADER or data[: len(MAGIC)] != MAGIC:
        raise CheckpointError(
            f"Expected a pyro_bdl checkpoint (starting with {MAGIC!r}), but {str(path)!r} is not "
            "one (or is truncated). Save posteriors with BNN.save()."
        )
    (version,) = struct.unpack("<I", data[len(MAGIC) : len(MAGIC) + 4])
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"Expected checkpoint format version {FORMAT_VERSION}, but {str(path)!r} has "
            f"version {version}; use the pyro_bdl release that wrote it."
        )
    digest, payload = data[len(MAGIC) + 4 : _HEADER], data[_HEADER:]
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(
            f"The checkpoint {str(path)!r} is corrupted or truncated: its SHA-256 does not match."
        )
    try:
        obj = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses code objects; re-raise as our error
        raise CheckpointError(f"The checkpoint {str(path)!r} holds non-plain data: {e}") from e
    if not (
        isinstance(obj, dict)
        and isinstance(obj.get("config"), str)
        and isinstance(obj.get("tensors"), dict)
        and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj["tensors"].items())
    ):
        raise CheckpointError(f"The checkpoint {str(path)!r} does not have the expected layout.")
    try:
        config = json.loads(obj["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"The checkpoint {str(path)!r} has a malformed config: {e}") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"The checkpoint {str(path)!r} has a malformed config.")
    return config, obj["tensors"]
