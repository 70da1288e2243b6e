"""Argument and input checks shared across the package: one copy of each.

Every check raises with the expected value, what it got and, where there is one, the fix.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "positive_int",
    "check_tensor",
    "check_real_tensor",
    "check_finite",
    "check_float",
    "check_observation",
    "FINITE_HINT",
]


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


def check_real_tensor(name: str, x: object, *, floating: bool = True) -> Tensor:
    """Return ``x`` if it is a real (and, with ``floating``, floating-point) tensor of any shape.

    :param name: the argument's name, used in the message.
    :param x: the value to check.
    :param floating: also require a floating-point dtype.
    :return: ``x`` unchanged.
    :raises TypeError: if ``x`` is not a tensor, is complex, or (``floating``) is not floating.

    Example::

        >>> import torch
        >>> check_real_tensor("loc", torch.zeros(2)).dtype
        torch.float32
        >>> check_real_tensor("loc", torch.zeros(2, dtype=torch.long))
        Traceback (most recent call last):
        ...
        TypeError: Expected loc to be a floating-point tensor, got dtype torch.int64. Convert it with loc.double().
    """  # noqa: E501
    if not isinstance(x, Tensor):
        raise TypeError(
            f"Expected {name} to be a torch.Tensor, got {type(x).__name__}. "
            f"Convert it with torch.as_tensor({name}, dtype=torch.float64)."
        )
    if x.is_complex():
        raise TypeError(f"Expected real-valued {name}, got dtype {x.dtype}.")
    if floating and not x.is_floating_point():
        raise TypeError(
            f"Expected {name} to be a floating-point tensor, got dtype {x.dtype}. "
            f"Convert it with {name}.double()."
        )
    return x


#: What :func:`check_finite` adds by default: non-finite values mostly come from a diverged fit.
FINITE_HINT = "Check the network outputs (a diverged fit gives NaN)."


def check_finite(name: str, x: Tensor, *, hint: str = FINITE_HINT) -> None:
    """Raise ``ValueError`` if the floating tensor ``x`` holds NaN or infinite values.

    :param name: the argument's name, used in the message.
    :param x: the tensor to check; non-floating tensors always pass.
    :param hint: a sentence appended to the message (where the bad values come from, the fix);
        ``""`` for none.
    :raises ValueError: with the counts of NaN and infinite entries.

    Example::

        >>> import torch
        >>> check_finite("loc", torch.tensor([0.0, float("inf")]))
        Traceback (most recent call last):
        ...
        ValueError: Expected finite values in loc, got 0 NaN and 1 infinite entries out of 2. Check the network outputs (a diverged fit gives NaN).
    """  # noqa: E501
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise ValueError(
            f"Expected finite values in {name}, got {n_nan} NaN and {n_inf} infinite entries "
            f"out of {x.numel()}." + (f" {hint}" if hint else "")
        )
