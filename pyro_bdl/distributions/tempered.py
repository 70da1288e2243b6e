r"""Tempered categorical distributions observed through probability vectors (distillation).

:class:`TemperedCategorical` scores a probability vector :math:`\mathbf p` by the cross-entropy
with :math:`\mathrm{softmax}(z / T)`; :class:`DistillationCategorical` adds an optional hard-label
term at :math:`T = 1` and is the observation model of
:class:`~pyro_bdl.likelihoods.distillation.Distillation`; :func:`stack_targets` builds its
``(N, 2, C)`` observations. The ``check_*`` functions validate temperatures and targets and are
shared with the distillation likelihood and the teacher workflows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from .._checks import check_float, check_observation

__all__ = [
    "TemperedCategorical",
    "DistillationCategorical",
    "stack_targets",
    "check_temperature",
    "check_soft_targets",
    "check_hard_targets",
]


# --------------------------------------------------------------------------------------------
# Argument and target checks
# --------------------------------------------------------------------------------------------


def check_temperature(temperature: Any) -> float:
    """Return ``temperature`` as a float, or raise ``ValueError`` unless it is finite and > 0.

    :param temperature: a float, an int or a one-element tensor.
    :return: the temperature as a float.
    :raises TypeError: if it is not a real number (a bool is not).
    :raises ValueError: if it is NaN, infinite or not > 0.

    Example::

        >>> check_temperature(torch.tensor(4))
        4.0
    """
    if torch.is_tensor(temperature) and temperature.numel() == 1:
        temperature = temperature.item()
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(
            f"Expected temperature to be a positive float, but got {type(temperature).__name__}."
        )
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"Expected temperature > 0 (a finite float, e.g. 4.0), but got {temperature}."
        )
    return float(temperature)


def _sum_tolerance(t: Tensor) -> float:
    """How far a probability vector of ``t``'s dtype may sum away from 1."""
    return max(1e-6, 8.0 * t.shape[-1] * torch.finfo(t.dtype).eps)


def check_soft_targets(name: str, p: Tensor) -> None:
    """Raise ``ValueError`` unless every row of ``p`` (last dim) is a probability vector.

    :param name: how the message names ``p`` (e.g. ``"the soft targets y"``).
    :param p: floating tensor ``(..., C)``.

    Example::

        >>> check_soft_targets("p", torch.tensor([[0.5, 0.5], [1.0, 0.0]]))  # passes
    """
    if p.numel() == 0:
        return
    if not bool(torch.isfinite(p).all()):
        raise ValueError(
            f"Expected finite {name} (probability vectors over the classes), but found "
            f"{int((~torch.isfinite(p)).sum())} NaN/inf entries."
        )
    low = float(p.min())
    if low < 0:
        raise ValueError(
            f"Expected {name} >= 0 (probability vectors over the classes), but got a minimum of "
            f"{low:.3g}. If these are teacher logits v, pass softmax(v / T, -1) "
            "(or use teacher_targets)."
        )
    tol = _sum_tolerance(p)
    dev = float((p.sum(-1) - 1).abs().max())
    if dev > tol:
        raise ValueError(
            f"Expected {name} to sum to 1 over the last (class) dimension within {tol:.1g}, but "
            f"got a maximum deviation |sum - 1| = {dev:.3g}. Renormalise with "
            "p / p.sum(-1, keepdim=True), or pass softmax(logits / T, -1)."
        )


def check_hard_targets(name: str, h: Tensor) -> None:
    """Raise ``ValueError`` unless every row of ``h`` is one-hot (a probability vector) or zeros.

    :param name: how the message names ``h`` (e.g. ``"the hard labels y[:, 1]"``).
    :param h: floating tensor ``(..., C)``; an all-zero row marks an unlabelled point.

    Example::

        >>> check_hard_targets("h", torch.tensor([[0.0, 1.0], [0.0, 0.0]]))  # passes
    """
    if h.numel() == 0:
        return
    low = float(h.min())
    tol = _sum_tolerance(h)
    s = h.sum(-1)
    bad = ((s - 1).abs() > tol) & (s.abs() > tol)
    if low < 0 or bool(bad.any()):
        raise ValueError(
            f"Expected each row of {name} to be one-hot (a labelled point) or all zeros (an "
            f"unlabelled one), but got a minimum of {low:.3g} and row sums "
            f"{torch.unique(s[bad])[:3].tolist() if bad.any() else []}. Build the stacked "
            "targets with stack_targets(soft, labels) (label -1 = unlabelled)."
        )


# --------------------------------------------------------------------------------------------
# Constraints
# --------------------------------------------------------------------------------------------


class _SoftAndHardTargets(constraints.Constraint):
    """Stacked targets ``(..., 2, C)``: row 0 a probability vector, row 1 one-hot or zeros."""

    event_dim = 2

    def check(self, value: Tensor) -> Tensor:
        soft, hard = value[..., 0, :], value[..., 1, :]
        tol = _sum_tolerance(value)
        ok_soft = (soft >= 0).all(-1) & ((soft.sum(-1) - 1).abs() <= tol)
        s = hard.sum(-1)
        ok_hard = (hard >= 0).all(-1) & (((s - 1).abs() <= tol) | (s.abs() <= tol))
        return ok_soft & ok_hard


class _FinitePositive(constraints.Constraint):
    """Finite and > 0 (``constraints.positive`` lets ``inf`` through)."""

    def check(self, value: Tensor) -> Tensor:
        return (value > 0) & torch.isfinite(value)

    def __repr__(self) -> str:
        return "FinitePositive()"


class _Logits(constraints.Constraint):
    """Real vectors whose entries are not NaN or ``+inf`` (``-inf`` masks a class out)."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        return ((value == value) & (value != math.inf)).all(-1)

    def __repr__(self) -> str:
        return "Logits(no NaN or +inf)"


# --------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------


def _broadcast_logits(logits: Any, temperature: Any) -> tuple[Tensor, Tensor]:
    if not torch.is_tensor(logits) or logits.dim() < 1:
        raise ValueError(
            "Expected logits to be a tensor of shape batch_shape + (C,), but got "
            f"{type(logits).__name__} of shape {tuple(getattr(logits, 'shape', ()))}."
        )
    if logits.is_complex():
        raise TypeError(f"Expected real logits, but got dtype {logits.dtype}.")
    if not logits.is_floating_point():
        logits = logits.to(torch.get_default_dtype())
    if torch.is_tensor(temperature):
        if temperature.is_complex():
            raise TypeError(f"Expected a real temperature, but got dtype {temperature.dtype}.")
    elif isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(
            "Expected temperature to be a positive float or a tensor, but got "
            f"{type(temperature).__name__}."
        )
    temperature = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
    try:
        batch_shape = torch.broadcast_shapes(logits.shape[:-1], temperature.shape)
    except RuntimeError as error:
        raise ValueError(
            f"Expected a temperature of shape broadcastable to the batch shape "
            f"{tuple(logits.shape[:-1])}, but got shape {tuple(temperature.shape)}."
        ) from error
    return logits.expand(batch_shape + logits.shape[-1:]), temperature.expand(batch_shape)


def _tempered_log_softmax(logits: Tensor, temperature: Tensor) -> Tensor:
    log_q = F.log_softmax(logits / temperature.unsqueeze(-1), dim=-1)
    # a class with logit -inf has q = 0: let 0 * log 0 count as 0, not NaN.
    return log_q.clamp(min=torch.finfo(log_q.dtype).min)


def _one_hot_draws(logits: Tensor, temperature: Tensor, sample_shape: torch.Size) -> Tensor:
    with torch.no_grad():
        probs = torch.softmax(logits / temperature.unsqueeze(-1), dim=-1)
        index = torch.distributions.Categorical(probs=probs, validate_args=False).sample(
            sample_shape
        )
        return F.one_hot(index, logits.shape[-1]).to(logits.dtype)


class TemperedCategorical(TorchDistribution):
    r"""Categorical distribution with tempered logits, observed through probability vectors.

    The class probabilities are :math:`q = \mathrm{softmax}(z / T)`; an observation is a
    probability vector :math:`\mathbf p` ("soft counts"), scored by the cross-entropy

    .. math::

        \log p(\mathbf p \mid z, T) = \sum_{j=1}^{C} p_j \log q_j, \qquad
        q_j = \frac{\exp(z_j / T)}{\sum_{k=1}^{C} \exp(z_k / T)}.

    On one-hot vectors this is the ordinary categorical pmf (at :math:`T = 1`,
    ``Categorical(logits=z)``); on the interior of the simplex it is the soft-target
    likelihood of distillation, whose gradient is
    :math:`\partial(-\log p) / \partial z_i = (q_i - p_i) / T`. :meth:`sample` returns one-hot
    draws from :math:`q`.

    :param logits: unnormalised log-probabilities ``batch_shape + (C,)``.
    :param temperature: :math:`T > 0`, a float or a tensor broadcastable to ``batch_shape``.

    Example::

        >>> d = TemperedCategorical(torch.zeros(4, 3), temperature=2.0)
        >>> d.batch_shape, d.event_shape
        (torch.Size([4]), torch.Size([3]))
        >>> d.log_prob(torch.full((4, 3), 1 / 3))  # log(1/3) for every row
        tensor([-1.0986, -1.0986, -1.0986, -1.0986])
    """

    arg_constraints = {"logits": _Logits(), "temperature": _FinitePositive()}
    support = constraints.simplex

    def __init__(
        self, logits: Tensor, temperature: Tensor | float, *, validate_args: bool | None = None
    ) -> None:
        self.logits, self.temperature = _broadcast_logits(logits, temperature)
        super().__init__(
            self.temperature.shape, self.logits.shape[-1:], validate_args=validate_args
        )

    def expand(self, batch_shape: Any, _instance: Any = None) -> TemperedCategorical:
        new = self._get_checked_instance(TemperedCategorical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape + self.event_shape)
        new.temperature = self.temperature.expand(batch_shape)
        super(TemperedCategorical, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        value = check_observation(value, self.logits)
        if self._validate_args:
            check_soft_targets("the observed probability vectors", value)
            self._validate_sample(value)
        return (value * _tempered_log_softmax(self.logits, self.temperature)).sum(-1)

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        return _one_hot_draws(self.logits, self.temperature, torch.Size(sample_shape))

    @property
    def probs(self) -> Tensor:
        """The tempered class probabilities :math:`\\mathrm{softmax}(z / T)`."""
        return torch.softmax(self.logits / self.temperature.unsqueeze(-1), dim=-1)

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def variance(self) -> Tensor:
        q = self.probs
        return q * (1 - q)

    def entropy(self) -> Tensor:
        return -(self.probs * _tempered_log_softmax(self.logits, self.temperature)).sum(-1)


class DistillationCategorical(TorchDistribution):
    r"""The observation model of distillation: soft targets plus optional hard labels.

    An observation stacks two vectors over the ``C`` classes, ``value[..., 0, :]`` the teacher's
    soft targets :math:`\mathbf p` and ``value[..., 1, :]`` a one-hot label :math:`\mathbf h`
    (all zeros for an unlabelled point):

    .. math::

        \log p(\mathbf p, \mathbf h \mid z) = w_s \sum_j p_j \log \mathrm{softmax}(z / T)_j
        + w_h \sum_j h_j \log \mathrm{softmax}(z)_j .

    Each term is a :class:`TemperedCategorical` log-probability. It is a weighted
    (pseudo-)likelihood, not a normalised density; :meth:`sample` returns a one-hot draw from
    :math:`\mathrm{softmax}(z / T)` stacked with one from :math:`\mathrm{softmax}(z)`, so the
    model can run forward (``Predictive``, ``BNN.predict``). It is the predictive distribution of
    the :class:`~pyro_bdl.likelihoods.distillation.Distillation` likelihood.

    :param logits: the student's logits ``batch_shape + (C,)``.
    :param temperature: :math:`T > 0`, a float or a tensor broadcastable to ``batch_shape``.
    :param soft_weight: :math:`w_s \ge 0` (``Distillation`` uses :math:`T^2`).
    :param hard_weight: :math:`w_h \ge 0`.

    Example::

        >>> d = DistillationCategorical(torch.zeros(5, 3), 4.0, soft_weight=16.0, hard_weight=0.5)
        >>> d.batch_shape, d.event_shape
        (torch.Size([5]), torch.Size([2, 3]))
    """

    arg_constraints = {"logits": _Logits(), "temperature": _FinitePositive()}
    support = _SoftAndHardTargets()

    def __init__(
        self,
        logits: Tensor,
        temperature: Tensor | float,
        soft_weight: float = 1.0,
        hard_weight: float = 0.0,
        *,
        validate_args: bool | None = None,
    ) -> None:
        self.logits, self.temperature = _broadcast_logits(logits, temperature)
        self.soft_weight = check_float("soft_weight", soft_weight, allow_zero=True)
        self.hard_weight = check_float("hard_weight", hard_weight, allow_zero=True)
        event_shape = torch.Size((2,)) + self.logits.shape[-1:]
        super().__init__(self.temperature.shape, event_shape, validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> DistillationCategorical:
        new = self._get_checked_instance(DistillationCategorical, _instance)
        batch_shape = torch.Size(batch_shape)
        new.logits = self.logits.expand(batch_shape + self.logits.shape[-1:])
        new.temperature = self.temperature.expand(batch_shape)
        new.soft_weight, new.hard_weight = self.soft_weight, self.hard_weight
        super(DistillationCategorical, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        value = check_observation(value, self.logits)
        if self._validate_args:
            check_soft_targets("the soft targets value[..., 0, :]", value[..., 0, :])
            check_hard_targets("the hard labels value[..., 1, :]", value[..., 1, :])
            self._validate_sample(value)
        soft = (value[..., 0, :] * _tempered_log_softmax(self.logits, self.temperature)).sum(-1)
        out = self.soft_weight * soft
        if self.hard_weight:
            log_q1 = F.log_softmax(self.logits, -1).clamp(min=torch.finfo(self.logits.dtype).min)
            out = out + self.hard_weight * (value[..., 1, :] * log_q1).sum(-1)
        return out

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        shape = torch.Size(sample_shape)
        soft = _one_hot_draws(self.logits, self.temperature, shape)
        hard = _one_hot_draws(self.logits, torch.ones_like(self.temperature), shape)
        return torch.stack([soft, hard], dim=-2)

    @property
    def probs(self) -> Tensor:
        """The student's untempered (:math:`T = 1`) class probabilities ``softmax(z)``."""
        return torch.softmax(self.logits, dim=-1)

    @property
    def mean(self) -> Tensor:
        tempered = torch.softmax(self.logits / self.temperature.unsqueeze(-1), dim=-1)
        return torch.stack([tempered, self.probs], dim=-2)

    @property
    def variance(self) -> Tensor:
        m = self.mean
        return m * (1 - m)


def stack_targets(soft: Tensor, labels: Tensor) -> Tensor:
    r"""Stack soft targets with hard labels into the ``(N, 2, C)`` values of distillation.

    These are the observations of :class:`DistillationCategorical` and the targets of
    :class:`~pyro_bdl.likelihoods.distillation.Distillation` with ``hard_weight > 0``:

    .. math::

        y_{n, 0, j} = p_{nj}, \qquad y_{n, 1, j} = \mathbb 1[\text{label}_n = j]

    :param soft: teacher probabilities ``(N, C)`` (e.g. from
        :func:`~pyro_bdl.workflows.teachers.teacher_targets`).
    :param labels: integer labels ``(N,)`` in ``[0, C)``; ``-1`` marks an unlabelled point (its
        hard row is all zeros, so it contributes the soft term only).
    :return: ``(N, 2, C)``: ``[:, 0]`` the soft targets, ``[:, 1]`` the one-hot labels.

    Example::

        >>> y = stack_targets(torch.full((3, 4), 0.25), torch.tensor([0, 3, -1]))
        >>> y.shape, y[2, 1].sum().item()
        (torch.Size([3, 2, 4]), 0.0)
    """
    if not torch.is_tensor(soft) or soft.dim() != 2 or not soft.is_floating_point():
        raise ValueError(
            "Expected soft targets of shape (N, C) (floating point), but got "
            f"{type(soft).__name__} of shape {tuple(getattr(soft, 'shape', ()))}."
        )
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(
            "Expected integer class labels (torch.long), but got "
            f"{getattr(labels, 'dtype', type(labels).__name__)}; convert with labels.long()."
        )
    n, c = soft.shape
    if labels.shape != (n,):
        raise ValueError(
            f"Expected labels of shape ({n},) to match the soft targets {tuple(soft.shape)}, but "
            f"got shape {tuple(labels.shape)}."
        )
    if labels.numel() and (int(labels.min()) < -1 or int(labels.max()) >= c):
        raise ValueError(
            f"Expected labels in [0, {c - 1}] (or -1 for unlabelled), but got values in "
            f"[{int(labels.min())}, {int(labels.max())}]."
        )
    hard = F.one_hot(labels.clamp(min=0), c).to(soft) * (labels >= 0).unsqueeze(-1).to(soft)
    return torch.stack([soft, hard], dim=1)
