"""Argument and input checks shared across the package: one copy of each.

Every check raises with the expected value, what it got and, where there is one, the fix.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "SEED_LIMIT",
    "as_tensor",
    "check_seed",
    "is_integral",
    "positive_int",
    "check_tensor",
    "check_real_tensor",
    "check_finite",
    "check_float",
    "check_observation",
    "FINITE_HINT",
]


def is_integral(value: Any) -> bool:
    """Whether ``value`` is an integral number: an ``int`` or a numpy integer, not a bool.

    Floats are not integral, even whole ones (``5.0``): a count or seed computed as a float is
    usually a mistake, and ``int(value)`` says that it is not.

    Example::

        >>> import numpy as np
        >>> is_integral(np.int64(5)), is_integral(5.0), is_integral(True)
        (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


@overload
def positive_int(name: str, value: Any, *, optional: Literal[False] = False) -> int: ...


@overload
def positive_int(name: str, value: Any, *, optional: bool) -> int | None: ...


def positive_int(name: str, value: Any, *, optional: bool = False) -> int | None:
    """Return ``value`` as an ``int`` if it is an integral number ``>= 1``, else raise.

    Any :class:`numbers.Integral` is accepted (``int``, ``np.int64``, ...), never a bool and never
    a float, even a whole one such as ``5.0`` (pass ``int(n)``; see :func:`is_integral`).

    :param name: the argument's name, used in the message.
    :param value: the value to check.
    :param optional: accept ``None`` (returned as it is).
    :return: ``int(value)`` (or ``None``).
    :raises ValueError: for anything else.

    Example::

        >>> import numpy as np
        >>> positive_int("num_samples", np.int64(100))
        100
        >>> positive_int("epochs", 0)
        Traceback (most recent call last):
        ...
        ValueError: Expected epochs to be a positive int, but got 0.
    """
    if value is None and optional:
        return None
    if not is_integral(value) or value < 1:
        hint = ""
        if isinstance(value, float) and value.is_integer() and value >= 1:
            hint = f" Pass int({value!r}): counts are never floats."
        raise ValueError(f"Expected {name} to be a positive int, but got {value!r}.{hint}")
    return int(value)


#: Seeds are integers in ``[0, SEED_LIMIT)``: the range numpy's and scikit-learn's seeds take
#: (so a seed can be handed on to them), which torch accepts and which the data-parallel
#: processes exchange exactly as float64.
SEED_LIMIT = 2**32


@overload
def check_seed(name: str, value: Any, *, optional: Literal[False]) -> int: ...


@overload
def check_seed(name: str, value: Any, *, optional: bool = True) -> int | None: ...


def check_seed(name: str, value: Any, *, optional: bool = True) -> int | None:
    """A random seed: an integral number in ``[0, 2**32)`` (``None`` too, if ``optional``).

    One rule for every seed the package takes (``fit``, ``predict``, the exports, the data sets
    and the ``pyro-bdl`` command line), so that they all agree.

    :param name: the argument's name, used in the message.
    :param value: the value to check.
    :param optional: accept ``None`` (meaning "draw from torch's global RNG").
    :return: ``int(value)``, or ``None``.
    :raises TypeError: if ``value`` is not an integral number (a float, a string, a bool).
    :raises ValueError: if it is negative or ``>= 2**32``.

    Example::

        >>> check_seed("seed", 7)
        7
        >>> check_seed("seed", -1)
        Traceback (most recent call last):
        ...
        ValueError: Expected seed to be an int in [0, 2**32), but got -1.
    """
    if value is None and optional:
        return None
    if not is_integral(value):
        raise TypeError(
            f"Expected {name} to be an int in [0, 2**32){' or None' if optional else ''}, but "
            f"got {value!r} ({type(value).__name__})."
        )
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"Expected {name} to be an int in [0, 2**32), but got {value!r}.")
    return int(value)


def _reference(like: Any) -> tuple[torch.dtype, torch.device]:
    """The floating dtype and the device that converted array-likes take from ``like``."""
    if isinstance(like, Sequence) and not isinstance(like, str) and len(like):
        return _reference(like[0])
    if isinstance(like, nn.Module):
        for t in (*like.parameters(), *like.buffers()):
            if t.is_floating_point():
                return t.dtype, t.device
    elif torch.is_tensor(like) and like.is_floating_point():
        return like.dtype, like.device
    elif torch.is_tensor(like):
        return torch.get_default_dtype(), like.device
    return torch.get_default_dtype(), torch.device("cpu")


def as_tensor(name: str, value: Any, like: Any = None) -> Any:
    """An array-like (numpy array, pandas object, list, tuple) as a tensor; the rest unchanged.

    Tensors, ``None``, DataLoaders and other objects come back as they are, for the checks that
    follow to accept or refuse them. An array-like is converted as follows:

    - floating values take ``like``'s floating dtype (a network's parameter dtype, a draw's
      dtype; without ``like``, torch's default dtype): numpy's float64 becomes float32 for a
      float32 network;
    - integer values become ``torch.long`` (class labels stay integral; a regression target
      of integers is converted to the network's dtype by the likelihood, as a tensor's is);
    - booleans become ``torch.bool``;
    - the tensor lies on ``like``'s device.

    :param name: the argument's name, used in the message.
    :param value: the value to convert.
    :param like: a tensor, a module (its first floating parameter or buffer), a sequence of
        modules (the first one), or ``None``.
    :return: a tensor, or ``value`` itself.
    :raises TypeError: for an array-like of non-numeric values (strings, objects, complex).

    Example::

        >>> import numpy as np
        >>> net = nn.Linear(2, 1)  # float32 parameters
        >>> as_tensor("x", np.zeros((3, 2))).dtype, as_tensor("x", np.zeros((3, 2)), net).dtype
        (torch.float32, torch.float32)
        >>> as_tensor("y", [0, 2, 1], net)
        tensor([0, 2, 1])
    """
    if torch.is_tensor(value) or not (
        isinstance(value, (list, tuple, np.ndarray, np.generic)) or hasattr(value, "__array__")
    ):
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged lists, objects numpy cannot read
        raise TypeError(
            f"Expected {name} to be a tensor or a rectangular array of numbers, but numpy could "
            f"not read the {type(value).__name__} given ({e})."
        ) from None
    kind = arr.dtype.kind
    if kind not in "fiub":
        how = (
            f"{name}.to_numpy(dtype=float), categorical columns one-hot encoded first"
            if hasattr(value, "to_numpy")
            else "numbers"
        )
        raise TypeError(
            f"Expected {name} to hold real numbers, but the {type(value).__name__} given has "
            f"numpy dtype {arr.dtype}; convert it to {how}."
        )
    dtype, device = _reference(like)
    if kind == "f":
        native = arr.dtype.newbyteorder("=") if arr.dtype.itemsize <= 8 else np.dtype(np.float64)
    else:
        native = np.dtype(np.bool_) if kind == "b" else np.dtype(np.int64)
        dtype = torch.bool if kind == "b" else torch.long
    arr = np.asarray(arr, dtype=native)
    if not arr.flags.writeable:  # e.g. a pandas object's values: torch needs its own copy
        arr = arr.copy()
    return torch.from_numpy(arr).to(device=device, dtype=dtype)


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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
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
