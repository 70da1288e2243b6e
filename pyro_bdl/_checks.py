"""Argument and input checks shared across the package: one copy of each.

Every check raises with the expected value, what it got and, where there is one, the fix.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["positive_int", "check_tensor", "check_observation", "check_float"]


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an ``int >= 1`` (not a bool), else raise ``ValueError``.

    :param name: the argument's name, used in the message.
    :param value: the value to check.
    :return: ``value`` unchanged.

    Example::

        >>> positive_int("num_samples", 100)
        100
        >>> positive_int("epochs", 0)
        Traceback (most recent call last):
        ...
        ValueError: Expected epochs to be a positive int, but got 0.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Expected {name} to be a positive int, but got {value!r}.")
    return value


def check_tensor(name: str, t: Any) -> Tensor:
    """Return ``t`` if it is a real tensor of shape ``(N, ...)`` with ``N >= 1`` and finite values.

    :param name: the argument's name, used in the message (e.g. ``"x"``).
    :param t: the value to check; integer tensors pass (only floats can be NaN/inf).
    :return: ``t`` unchanged.
    :raises TypeError: if ``t`` is not a tensor or is complex.
    :raises ValueError: if it has no rows or a NaN/inf entry.

    Example::

        >>> check_tensor("x", torch.zeros(3, 2)).shape
        torch.Size([3, 2])
        >>> check_tensor("x", torch.tensor([1.0, float("nan")]))
        Traceback (most recent call last):
        ...
        ValueError: Expected finite values in x, but found 1 NaN/inf entries; remove or impute them first.
    """  # noqa: E501
    if not torch.is_tensor(t):
        raise TypeError(f"Expected {name} to be a torch.Tensor, but got {type(t).__name__}.")
    if t.is_complex():
        raise TypeError(f"Expected real-valued {name}, but got dtype {t.dtype}.")
    if t.dim() == 0 or t.shape[0] == 0:
        raise ValueError(
            f"Expected {name} with at least one row (shape (N, ...), N >= 1), but got shape "
            f"{tuple(t.shape)}."
        )
    if t.is_floating_point() and not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"Expected finite values in {name}, but found {bad} NaN/inf entries; remove or "
            "impute them first."
        )
    return t


def check_observation(value: Any, like: Tensor) -> Tensor:
    """An observed value as a real floating tensor of ``like``'s dtype (for ``log_prob``).

    Integer values (one-hot labels, say) are converted; floating values are returned unchanged.

    :param value: the observation passed to a distribution's ``log_prob``.
    :param like: a parameter of the distribution, whose dtype integer values take.
    :return: ``value`` as a floating tensor.
    :raises TypeError: if ``value`` is not a tensor or is complex.

    Example::

        >>> check_observation(torch.tensor([0, 1]), torch.zeros(2, dtype=torch.float64))
        tensor([0., 1.], dtype=torch.float64)
    """
    if not torch.is_tensor(value):
        raise TypeError(
            f"Expected the observed value to be a torch.Tensor, but got {type(value).__name__}."
        )
    if value.is_complex():
        raise TypeError(f"Expected a real observed value, but got dtype {value.dtype}.")
    return value if value.is_floating_point() else value.to(like.dtype)


def check_float(name: str, value: Any, *, positive: bool = True, allow_zero: bool = False) -> float:
    """Validate a finite real setting (not a bool); return it as a float.

    :raises TypeError: if ``value`` is not a real number.
    :raises ValueError: if it is NaN/inf, or not > 0 (``>= 0`` with ``allow_zero``).

    Example::

        >>> from pyro_bdl._checks import check_float
        >>> check_float("init_scale", 0.1)
        0.1
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected {name} to be a real number, but got {type(value).__name__}.")
    value = float(value)
    bound = ">= 0" if allow_zero else "> 0"
    if not math.isfinite(value) or (positive and (value < 0 or (value == 0 and not allow_zero))):
        raise ValueError(f"Expected a finite {name} {bound}, but got {value}.")
    return value
