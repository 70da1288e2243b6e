r"""Knowledge distillation as a likelihood (Hinton, Vinyals & Dean 2015).

A student is an ordinary :class:`~pyro_bdl.BNN` whose likelihood is :class:`Distillation`
instead of :class:`~pyro_bdl.likelihoods.Categorical`: its observations are the teacher's
temperature-softened class probabilities, and the observation site ``"obs"`` is scored with the
soft-target cross-entropy at temperature :math:`T`,

.. math::

    \log p(\mathbf p \mid z) = T^2 \sum_j p_j \log q_j, \qquad
    q_j = \frac{\exp(z_j / T)}{\sum_k \exp(z_k / T)},

optionally plus a hard-label term at :math:`T = 1`. With :class:`~pyro.infer.autoguide.AutoDelta`
as the guide the student is a MAP network; with :class:`~pyro_bdl.guides.MeanFieldNormal` it is a
Bayesian student. The data plate scales a minibatch to the whole transfer set, as for every
likelihood.

The teacher's targets come from :func:`teacher_targets` (computed once) or
:class:`TeacherTargets` (computed per minibatch); a teacher is a deterministic network, a fitted
:class:`~pyro_bdl.BNN` (its posterior predictive: an average of per-draw **probabilities**) or a
list of them (an ensemble). Regression distillation ("Bayesian dark knowledge") is
:class:`GaussianDistillation` on the teacher's predictive moments from
:func:`gaussian_teacher_targets`.

Example::

    >>> soft = teacher_targets(teacher_net, x, temperature=4.0)          # (N, C)
    >>> student = BNN(small_net, dist.Normal(0., 1.), Distillation(4.0), guide=AutoDelta)
    >>> student.fit(x, soft, epochs=100, batch_size=128, progress=False)
    >>> student.predict(x_test).probs                                    # T = 1 probabilities
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.distributions import TorchDistribution, constraints
from pyro.poutine.messenger import Messenger
from torch import Tensor, nn
from torch.distributions import Distribution, Independent
from torch.distributions.utils import broadcast_all
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from .bnn import BNN
from .likelihoods import OBS, Likelihood
from .uncertainty import Prediction

__all__ = [
    "TemperedCategorical",
    "DistillationCategorical",
    "ExpectedNormal",
    "Distillation",
    "GaussianDistillation",
    "teacher_targets",
    "gaussian_teacher_targets",
    "stack_targets",
    "TeacherTargets",
    "Teacher",
]

#: A teacher: a network returning logits, a fitted classification BNN, or a sequence of them.
Teacher = nn.Module | BNN | Sequence[nn.Module | BNN]

#: Plate under which :func:`teacher_targets` draws a BNN teacher's weights (outside the data plate).
TEACHER_DRAWS_PLATE = "teacher_draws"

#: Elements of weight draws held at once by :func:`teacher_targets` (bounds memory).
_DRAW_CHUNK_ELEMENTS = 2**24


# --------------------------------------------------------------------------------------------
# Argument and target checks
# --------------------------------------------------------------------------------------------


def _check_temperature(temperature: Any) -> float:
    """Return ``temperature`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
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


def _check_weight(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected {name} to be a float >= 0, but got {type(value).__name__}.")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"Expected {name} >= 0 (a finite float), but got {value}.")
    return float(value)


def _sum_tolerance(t: Tensor) -> float:
    """How far a probability vector of ``t``'s dtype may sum away from 1."""
    return max(1e-6, 8.0 * t.shape[-1] * torch.finfo(t.dtype).eps)


def _check_soft_targets(name: str, p: Tensor) -> None:
    """Raise ``ValueError`` unless every row of ``p`` (last dim) is a probability vector."""
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


def _check_hard_targets(name: str, h: Tensor) -> None:
    """Raise ``ValueError`` unless every row of ``h`` is a probability vector or all zeros."""
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


def _check_moments(name: str, y: Tensor) -> None:
    """Raise ``ValueError`` unless ``y[..., 1]`` (the teacher's variance) is >= 0."""
    if y.numel() and float(y[..., 1].min()) < 0:
        raise ValueError(
            f"Expected the teacher's predictive variances {name}[..., 1] >= 0 (y[..., 0] is the "
            f"mean, y[..., 1] the variance), but got a minimum of {float(y[..., 1].min()):.3g}."
        )


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


class _MeanAndVariance(constraints.Constraint):
    """Gaussian moments ``(..., 2)``: a real mean and a variance >= 0."""

    event_dim = 1

    def check(self, value: Tensor) -> Tensor:
        return torch.isfinite(value).all(-1) & (value[..., 1] >= 0)


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
    temperature = torch.as_tensor(temperature).to(logits)
    try:
        batch_shape = torch.broadcast_shapes(logits.shape[:-1], temperature.shape)
    except RuntimeError as error:
        raise ValueError(
            f"Expected a temperature of shape broadcastable to the batch shape "
            f"{tuple(logits.shape[:-1])}, but got shape {tuple(temperature.shape)}."
        ) from error
    return logits.expand(batch_shape + logits.shape[-1:]), temperature.expand(batch_shape)


def _as_value(value: Any, like: Tensor) -> Tensor:
    """An observation as a floating tensor of ``like``'s dtype (one-hot integers are fine)."""
    if not torch.is_tensor(value):
        raise TypeError(
            f"Expected the observed value to be a torch.Tensor, but got {type(value).__name__}."
        )
    if value.is_complex():
        raise TypeError(f"Expected a real observed value, but got dtype {value.dtype}.")
    return value if value.is_floating_point() else value.to(like.dtype)


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
        value = _as_value(value, self.logits)
        if self._validate_args:
            _check_soft_targets("the observed probability vectors", value)
            self._validate_sample(value)
        return (value * _tempered_log_softmax(self.logits, self.temperature)).sum(-1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
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
    r"""The observation model of :class:`Distillation`: soft targets plus optional hard labels.

    An observation stacks two vectors over the ``C`` classes, ``value[..., 0, :]`` the teacher's
    soft targets :math:`\mathbf p` and ``value[..., 1, :]`` a one-hot label :math:`\mathbf h`
    (all zeros for an unlabelled point):

    .. math::

        \log p(\mathbf p, \mathbf h \mid z) = w_s \sum_j p_j \log \mathrm{softmax}(z / T)_j
        + w_h \sum_j h_j \log \mathrm{softmax}(z)_j .

    Each term is a :class:`TemperedCategorical` log-probability. It is a weighted
    (pseudo-)likelihood, not a normalised density; :meth:`sample` returns a one-hot draw from
    :math:`\mathrm{softmax}(z / T)` stacked with one from :math:`\mathrm{softmax}(z)`, so the
    model can run forward (``Predictive``, ``BNN.predict``).

    :param logits: the student's logits ``batch_shape + (C,)``.
    :param temperature: :math:`T > 0`, a float or a tensor broadcastable to ``batch_shape``.
    :param soft_weight: :math:`w_s \ge 0` (:class:`Distillation` uses :math:`T^2`).
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
        self.soft_weight = _check_weight("soft_weight", soft_weight)
        self.hard_weight = _check_weight("hard_weight", hard_weight)
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
        value = _as_value(value, self.logits)
        if self._validate_args:
            _check_soft_targets("the soft targets value[..., 0, :]", value[..., 0, :])
            _check_hard_targets("the hard labels value[..., 1, :]", value[..., 1, :])
            self._validate_sample(value)
        soft = (value[..., 0, :] * _tempered_log_softmax(self.logits, self.temperature)).sum(-1)
        out = self.soft_weight * soft
        if self.hard_weight:
            log_q1 = F.log_softmax(self.logits, -1).clamp(min=torch.finfo(self.logits.dtype).min)
            out = out + self.hard_weight * (value[..., 1, :] * log_q1).sum(-1)
        return out

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        sample_shape = torch.Size(sample_shape)
        soft = _one_hot_draws(self.logits, self.temperature, sample_shape)
        hard = _one_hot_draws(self.logits, torch.ones_like(self.temperature), sample_shape)
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


class ExpectedNormal(TorchDistribution):
    r"""A Normal observed through the moments of a Gaussian target (regression distillation).

    An observation is a pair ``value[..., :] = (m, s²)``, the mean and variance of the teacher's
    Gaussian predictive; it is scored by the student's expected log density under it,

    .. math::

        \log p(m, s^2 \mid \mu, \sigma)
        = \mathbb E_{y \sim \mathcal N(m, s^2)}\left[\log \mathcal N(y; \mu, \sigma^2)\right]
        = -\tfrac12 \log(2 \pi \sigma^2) - \frac{(m - \mu)^2 + s^2}{2 \sigma^2}.

    A point observation :math:`y` is the pair :math:`(y, 0)`, for which this is
    ``Normal(mu, sigma).log_prob(y)``; :meth:`rsample` returns such pairs.

    :param loc: the student's mean :math:`\mu`.
    :param scale: the student's standard deviation :math:`\sigma > 0`.

    Example::

        >>> d = ExpectedNormal(torch.zeros(3), torch.ones(3))
        >>> d.log_prob(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        tensor([-0.9189, -1.4189, -1.4189])
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = _MeanAndVariance()
    has_rsample = True

    def __init__(
        self, loc: Tensor | float, scale: Tensor | float, *, validate_args: bool | None = None
    ) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, torch.Size((2,)), validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> ExpectedNormal:
        new = self._get_checked_instance(ExpectedNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        super(ExpectedNormal, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: Tensor) -> Tensor:
        value = _as_value(value, self.loc)
        if self._validate_args:
            _check_moments("value", value)
            self._validate_sample(value)
        m, s2 = value[..., 0], value[..., 1]
        var = self.scale**2
        return -0.5 * torch.log(2 * math.pi * var) - ((m - self.loc) ** 2 + s2) / (2 * var)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))[:-1]
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        y = self.loc + self.scale * eps
        return torch.stack([y, torch.zeros_like(y)], dim=-1)

    @property
    def mean(self) -> Tensor:
        return torch.stack([self.loc, torch.zeros_like(self.loc)], dim=-1)

    @property
    def variance(self) -> Tensor:
        return torch.stack([self.scale**2, torch.zeros_like(self.scale)], dim=-1)


# --------------------------------------------------------------------------------------------
# Likelihoods
# --------------------------------------------------------------------------------------------


def stack_targets(soft: Tensor, labels: Tensor) -> Tensor:
    r"""Stack soft targets with hard labels into the ``(N, 2, C)`` targets of :class:`Distillation`.

    .. math::

        y_{n, 0, j} = p_{nj}, \qquad y_{n, 1, j} = \mathbb 1[\text{label}_n = j]

    :param soft: teacher probabilities ``(N, C)`` (e.g. from :func:`teacher_targets`).
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


def _check_logits_shape(f: Tensor, sample_ndim: int, who: str) -> None:
    if f.dim() != sample_ndim + 2:
        raise ValueError(
            f"Expected network outputs of shape (N, num_classes) for {who}, but got per-draw "
            f"shape {tuple(f.shape[sample_ndim:])}."
        )


class Distillation(Likelihood):
    r"""Soft-target (distillation) likelihood: a student network fitted to a teacher's targets.

    The targets ``y`` are the teacher's probabilities at temperature :math:`T`, shape ``(N, C)``
    (from :func:`teacher_targets`; an unlabelled transfer set needs nothing else), or
    ``stack_targets(soft, labels)`` of shape ``(N, 2, C)`` to add hard labels. The student's
    logits :math:`z` enter through :class:`DistillationCategorical`:

    .. math::

        \log p(y_n \mid z_n) = w_s \sum_j p_{nj} \log \mathrm{softmax}(z_n / T)_j
        + w_h \log \mathrm{softmax}(z_n)_{y_n}.

    The soft weight :math:`w_s` defaults to :math:`T^2` (Hinton et al.): the soft gradient
    :math:`(q - p) / T` shrinks as :math:`1/T^2` at high temperature (it tends to
    :math:`(z - v) / (C T^2)`, logit matching), so the :math:`T^2` factor keeps the soft term's
    size independent of :math:`T` when combined with hard labels (give those a considerably
    lower weight, e.g. ``hard_weight=0.5``). For a Bayesian student the weights multiply the
    data's evidence against the prior (``w_s = T²`` acts as T² times as much data); pass
    ``soft_weight=1.0`` for the untempered ELBO (Bayesian dark knowledge uses :math:`T = 1`).
    The data plate scales a minibatch to ``dataset_size`` like every likelihood, and
    :meth:`prediction` gives the student's :math:`T = 1` probabilities ``softmax(z)``.

    :param temperature: :math:`T > 0` of the soft term (the teacher's targets must be softened
        with the same :math:`T`).
    :param hard_weight: :math:`w_h \ge 0`, weight of the hard-label term at :math:`T = 1`
        (needs ``(N, 2, C)`` targets when > 0).
    :param soft_weight: :math:`w_s \ge 0`; ``None`` means :math:`T^2`.
    :param dataset_size: N the ELBO is scaled to (see :class:`~pyro_bdl.likelihoods.Likelihood`).

    Example::

        >>> soft = teacher_targets(teacher, x, temperature=4.0)               # (N, C)
        >>> student = BNN(net, dist.Normal(0.0, 1.0), Distillation(4.0), guide=AutoDelta)
        >>> student.fit(x, soft, epochs=50, batch_size=128, progress=False)
        >>> y = stack_targets(soft, labels)                                   # (N, 2, C)
        >>> both = BNN(net, dist.Normal(0.0, 1.0), Distillation(4.0, hard_weight=0.5))
    """

    kind = "categorical"

    def __init__(
        self,
        temperature: float,
        *,
        hard_weight: float = 0.0,
        soft_weight: float | None = None,
        dataset_size: int | None = None,
    ) -> None:
        super().__init__(dataset_size)
        self.temperature = _check_temperature(temperature)
        self.hard_weight = _check_weight("hard_weight", hard_weight)
        self.soft_weight = (
            self.temperature**2
            if soft_weight is None
            else _check_weight("soft_weight", soft_weight)
        )
        if self.soft_weight == 0 and self.hard_weight == 0:
            raise ValueError(
                "Expected soft_weight or hard_weight > 0, but both are 0: the likelihood would "
                "ignore the data."
            )

    def validate_target(self, y: Tensor) -> None:
        super().validate_target(y)
        if not y.is_floating_point():
            raise TypeError(
                "Expected floating-point soft targets (teacher probabilities of shape (N, C)) for "
                f"a Distillation likelihood, but got dtype {y.dtype}. Compute them with "
                "teacher_targets(teacher, x, T); for hard labels alone use Categorical()."
            )
        if y.dim() == 2:
            if self.hard_weight > 0:
                raise ValueError(
                    f"Expected hard labels for Distillation(hard_weight={self.hard_weight}), but "
                    f"got soft targets only, shape {tuple(y.shape)}. Pass "
                    "y = stack_targets(soft, labels) of shape (N, 2, C), or hard_weight=0 for an "
                    "unlabelled transfer set."
                )
            _check_soft_targets("the soft targets y", y)
        elif y.dim() == 3 and y.shape[1] == 2:
            _check_soft_targets("the soft targets y[:, 0]", y[:, 0])
            _check_hard_targets("the hard labels y[:, 1]", y[:, 1])
        else:
            raise ValueError(
                "Expected soft targets of shape (N, C), or stack_targets(soft, labels) of shape "
                f"(N, 2, C), but got shape {tuple(y.shape)}."
            )

    def check_target(self, y: Tensor, f: Tensor, sample_ndim: int = 0) -> Tensor:
        self.validate_target(y)
        self._check_rows(y, f, sample_ndim)
        _check_logits_shape(f, sample_ndim, "a Distillation likelihood")
        c_student, c_teacher = f.shape[-1], y.shape[-1]
        if c_teacher != c_student:
            raise ValueError(
                f"Expected targets over {c_student} classes to match the student's {c_student} "
                f"outputs, but got targets over {c_teacher} classes: the teacher and the student "
                "must have the same number of classes (in the same order)."
            )
        y = y.to(f)
        if y.dim() == 2:
            y = torch.stack([y, torch.zeros_like(y)], dim=1)
        return y

    def predictive_dist(self, f: Tensor, sample_ndim: int = 0) -> Distribution:
        _check_logits_shape(f, sample_ndim, "a Distillation likelihood")
        return DistillationCategorical(
            f,
            torch.tensor(self.temperature, dtype=f.dtype, device=f.device),
            soft_weight=self.soft_weight,
            hard_weight=self.hard_weight,
        )

    def prediction(self, d: Distribution) -> Prediction:
        return Prediction("categorical", samples=torch.softmax(d.logits, dim=-1))

    def __repr__(self) -> str:
        return (
            f"Distillation(temperature={self.temperature}, soft_weight={self.soft_weight}, "
            f"hard_weight={self.hard_weight})"
        )


class GaussianDistillation(Likelihood):
    r"""Regression distillation: a heteroskedastic student fitted to a teacher's predictive moments.

    The targets are the teacher's Gaussian predictive per point, ``y[n] = (m_n, s_n²)``: shape
    ``(N, 2)`` for a scalar output, ``(N, D, 2)`` for ``D`` outputs (from
    :func:`gaussian_teacher_targets`). Like
    :class:`~pyro_bdl.likelihoods.HeteroskedasticGaussian`, the student outputs ``2·D`` numbers
    per point, a location :math:`\mu` and an unconstrained scale mapped to
    :math:`\sigma = \mathrm{softplus}(\cdot) + \text{min\_scale}`; the log-likelihood is the
    student's expected log density under the teacher's predictive (:class:`ExpectedNormal`):

    .. math::

        \log p(y_n \mid \mu_n, \sigma_n) = -\tfrac12 \log(2 \pi \sigma_n^2)
        - \frac{(m_n - \mu_n)^2 + s_n^2}{2 \sigma_n^2}.

    It is maximised at :math:`\mu = m, \sigma^2 = s^2`: the student learns the teacher's whole
    predictive (epistemic plus aleatoric variance), as in Bayesian dark knowledge.

    :param min_scale: lower bound added to the student's scale.
    :param dataset_size: N the ELBO is scaled to (see :class:`~pyro_bdl.likelihoods.Likelihood`).

    Example::

        >>> y = gaussian_teacher_targets(teacher_bnn, x)          # (N, 2): mean, variance
        >>> student = BNN(net_1_to_2, dist.Normal(0.0, 1.0), GaussianDistillation(),
        ...               guide=AutoDelta)
        >>> student.fit(x, y, epochs=200, progress=False)
    """

    kind = "gaussian"

    def __init__(self, min_scale: float = 1e-6, dataset_size: int | None = None) -> None:
        super().__init__(dataset_size)
        if not (isinstance(min_scale, (int, float)) and min_scale >= 0):
            raise ValueError(f"Expected min_scale >= 0, but got {min_scale}.")
        self.min_scale = float(min_scale)

    def _split(self, f: Tensor, sample_ndim: int) -> tuple[Tensor, Tensor]:
        out = f.shape[sample_ndim + 1 :]
        if len(out) != 1 or out[-1] % 2:
            raise ValueError(
                "Expected network outputs of shape (N, 2·D) for a GaussianDistillation "
                "likelihood (location and unconstrained scale), but got per-draw shape "
                f"{tuple(f.shape[sample_ndim:])}."
            )
        loc, raw = f.chunk(2, dim=-1)
        if loc.shape[-1] == 1:
            loc, raw = loc.squeeze(-1), raw.squeeze(-1)
        return loc, F.softplus(raw) + self.min_scale

    def validate_target(self, y: Tensor) -> None:
        super().validate_target(y)
        if not y.is_floating_point():
            raise TypeError(
                f"Expected floating-point teacher moments, but got dtype {y.dtype}; convert with "
                "y.double()."
            )
        if y.dim() not in (2, 3) or y.shape[-1] != 2:
            raise ValueError(
                "Expected teacher moments of shape (N, 2) or (N, D, 2) (mean, variance), but got "
                f"shape {tuple(y.shape)}. Build them with gaussian_teacher_targets(teacher, x)."
            )
        _check_moments("y", y)

    def check_target(self, y: Tensor, f: Tensor, sample_ndim: int = 0) -> Tensor:
        self.validate_target(y)
        self._check_rows(y, f, sample_ndim)
        loc, _ = self._split(f, sample_ndim)
        expected = loc.shape[sample_ndim:] + (2,)
        if y.shape != expected:
            raise ValueError(
                f"Expected teacher moments of shape {tuple(expected)} to match the student's "
                f"per-draw output {tuple(f.shape[sample_ndim:])}, but got shape {tuple(y.shape)}."
            )
        return y.to(f)

    def predictive_dist(self, f: Tensor, sample_ndim: int = 0) -> Distribution:
        loc, scale = self._split(f, sample_ndim)
        d = ExpectedNormal(loc, scale)
        return d.to_event(1) if loc.dim() > sample_ndim + 1 else d

    def prediction(self, d: Distribution) -> Prediction:
        base = d.base_dist if isinstance(d, Independent) else d
        return Prediction("gaussian", samples=base.loc, scale=base.scale)

    def __repr__(self) -> str:
        return f"GaussianDistillation(min_scale={self.min_scale})"


# --------------------------------------------------------------------------------------------
# Teachers
# --------------------------------------------------------------------------------------------


def _check_inputs(x: Any) -> Tensor:
    if not torch.is_tensor(x):
        raise TypeError(f"Expected x to be a torch.Tensor, but got {type(x).__name__}.")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"Expected x of shape (N, ...) with N >= 1, but got {tuple(x.shape)}.")
    if (x.is_floating_point() or x.is_complex()) and not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"Expected finite inputs x, but found {int((~torch.isfinite(x)).sum())} NaN/inf "
            "entries; remove or impute them first."
        )
    return x


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Expected {name} to be a positive int, but got {value!r}.")
    return value


def _row_batches(x: Tensor, batch_size: int | None) -> list[Tensor]:
    if batch_size is None:
        return [x]
    return list(x.split(_positive_int("batch_size", batch_size)))


def _members(teacher: Any) -> list[Any]:
    if isinstance(teacher, (list, tuple, nn.ModuleList)):
        members = list(teacher)
        if not members:
            raise ValueError("Expected at least one model in the teacher ensemble, but got none.")
        return members
    return [teacher]


def _module_logits(net: nn.Module, x: Tensor, batch_size: int | None) -> Tensor:
    was_training = net.training
    net.eval()
    try:
        logits = torch.cat([net(xb) for xb in _row_batches(x, batch_size)])
    except (RuntimeError, TypeError, IndexError) as error:
        raise ValueError(
            f"Expected inputs the teacher {type(net).__name__} accepts, but it failed on x of "
            f"shape {tuple(x.shape)} and dtype {x.dtype} (its error is chained above). Check the "
            "number of features, the rank and the dtype the teacher expects."
        ) from error
    finally:
        net.train(was_training)
    if not torch.is_tensor(logits) or logits.dim() != 2 or len(logits) != len(x):
        raise ValueError(
            f"Expected the teacher {type(net).__name__} to return logits of shape (N, C) = "
            f"({len(x)}, C), but got shape {tuple(getattr(logits, 'shape', ()))}."
        )
    return logits


class _ObservationUnsampled(Messenger):
    """Give the ``"obs"`` site a placeholder value: only its distribution is needed."""

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["name"] == OBS and msg["value"] is None:
            fn = msg["fn"]
            msg["value"] = torch.zeros(fn.batch_shape + fn.event_shape)


def _logits(bnn: BNN, fn: Distribution) -> Tensor:
    """Logits of the observation distribution (up to a per-row shift, which softmax ignores)."""
    logits = getattr(fn, "logits", None)  # Categorical (normalised) and DistillationCategorical
    return bnn.likelihood.prediction(fn).samples.log() if logits is None else logits


def _bnn_probs(
    bnn: BNN, x: Tensor, temperature: float, num_samples: int, batch_size: int | None
) -> Tensor:
    """Posterior predictive at temperature T, with the weights drawn as ``BNN.predict`` does.

    Each chunk of draws comes from one guide trace, replayed through the model for every batch of
    rows, so all rows share the same draws whatever ``batch_size`` is.
    """
    if bnn.likelihood.kind != "categorical":
        raise ValueError(
            "Expected a classification teacher (a BNN with a Categorical or Distillation "
            f"likelihood), but got likelihood {bnn.likelihood!r}; for a Gaussian teacher use "
            "gaussian_teacher_targets."
        )
    bnn.check_data(x)  # dtype, and that the network accepts x (a cheap side-effect-free probe)
    bnn.ensure_guide(x)  # a lazy autoguide must be built outside the draws plate
    num_weights = sum(p.numel() for n, p in bnn.net.named_parameters() if n in bnn.random_names)
    chunk = max(1, min(num_samples, _DRAW_CHUNK_ELEMENTS // max(1, num_weights)))
    batches = _row_batches(x, batch_size)
    totals = [torch.zeros(()) for _ in batches]
    for start in range(0, num_samples, chunk):
        num = min(chunk, num_samples - start)
        with (
            bnn.estimator(training=False),
            pyro.plate(TEACHER_DRAWS_PLATE, num, dim=-2),
            _ObservationUnsampled(),
        ):
            guide_trace = poutine.trace(bnn.guide).get_trace(batches[0], None)
            for i, xb in enumerate(batches):
                model = poutine.replay(bnn.model, trace=guide_trace)
                fn = poutine.trace(model).get_trace(xb, None).nodes[OBS]["fn"]
                logits = _logits(bnn, fn).expand((num, len(xb), -1))
                totals[i] = totals[i] + torch.softmax(logits / temperature, dim=-1).sum(0)
    return torch.cat([t / num_samples for t in totals])


@torch.no_grad()
def teacher_targets(
    teacher: Teacher,
    x: Tensor,
    temperature: float,
    *,
    num_samples: int = 100,
    batch_size: int | None = None,
    seed: int | None = None,
) -> Tensor:
    r"""Soft targets: the teacher's class probabilities at temperature :math:`T`, computed once.

    - an ``nn.Module`` returning logits :math:`v` (run in eval mode, so dropout is off):
      :math:`\mathrm{softmax}(v / T)`;
    - a fitted :class:`~pyro_bdl.BNN` with a categorical likelihood: its posterior predictive
      at temperature :math:`T`, the average of the per-draw tempered **probabilities** over
      ``num_samples`` weight draws :math:`W_s \sim q` (never the softmax of averaged logits);
    - a list/tuple of such models (an ensemble): the average of the members' probabilities.

    .. math::

        p_n = \frac1S \sum_{s=1}^S \mathrm{softmax}\!\left(f_{W_s}(x_n) / T\right)

    To compute targets per minibatch instead (a large transfer set, augmented inputs), use
    :class:`TeacherTargets`.

    :param teacher: the teacher (see above).
    :param x: transfer-set inputs ``(N, ...)``.
    :param temperature: :math:`T > 0`; use the same value in :class:`Distillation`.
    :param num_samples: posterior draws :math:`S` for a BNN teacher.
    :param batch_size: inputs per forward pass (default: all at once).
    :param seed: if given, the draws are reproducible without touching the global RNG.
    :return: soft targets ``(N, C)``, rows summing to 1.

    Example::

        >>> soft = teacher_targets(teacher_net, x_train, temperature=4.0)    # (N, C)
        >>> soft = teacher_targets(teacher_bnn, x_train, 1.0, num_samples=200)
        >>> soft = teacher_targets([net_a, net_b, net_c], x_train, 2.0)      # ensemble
    """
    temperature = _check_temperature(temperature)
    x = _check_inputs(x)
    num_samples = _positive_int("num_samples", num_samples)
    members = _members(teacher)
    if seed is None:
        return _ensemble_probs(members, x, temperature, num_samples, batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _ensemble_probs(members, x, temperature, num_samples, batch_size)


def _ensemble_probs(
    members: list[Any], x: Tensor, temperature: float, num_samples: int, batch_size: int | None
) -> Tensor:
    total: Tensor | None = None
    for k, member in enumerate(members):
        if isinstance(member, BNN):
            probs = _bnn_probs(member, x, temperature, num_samples, batch_size)
        elif isinstance(member, nn.Module):
            probs = torch.softmax(_module_logits(member, x, batch_size) / temperature, dim=-1)
        else:
            raise TypeError(
                "Expected the teacher to be an nn.Module, a pyro_bdl.BNN or a list of them, but "
                f"got {type(member).__name__}."
            )
        if total is not None and probs.shape != total.shape:
            raise ValueError(
                f"Expected every ensemble member to predict {total.shape[-1]} classes, but member "
                f"{k} predicts {probs.shape[-1]}."
            )
        total = probs if total is None else total + probs
    assert total is not None
    return total / len(members)


@torch.no_grad()
def gaussian_teacher_targets(
    teacher: BNN | Sequence[BNN],
    x: Tensor,
    *,
    num_samples: int = 100,
    seed: int | None = None,
) -> Tensor:
    r"""Targets of :class:`GaussianDistillation`: the moments of a regression teacher's predictive.

    For a BNN with a Gaussian likelihood, the posterior predictive's mean and total variance
    (law of total variance over ``num_samples`` draws); for an ensemble, the moments of the
    equal mixture of the members' predictives:

    .. math::

        m_n = \frac1K \sum_k m_{kn}, \qquad
        s_n^2 = \frac1K \sum_k \left(s_{kn}^2 + m_{kn}^2\right) - m_n^2 .

    :param teacher: a fitted :class:`~pyro_bdl.BNN` with a Gaussian likelihood, or a list of them.
    :param x: inputs ``(N, ...)``.
    :param num_samples: posterior draws per member.
    :param seed: if given, the draws are reproducible without touching the global RNG.
    :return: ``(N, 2)`` (scalar outputs) or ``(N, D, 2)``: ``[..., 0]`` mean, ``[..., 1]`` variance.

    Example::

        >>> y = gaussian_teacher_targets(teacher_bnn, x_train, num_samples=200)   # (N, 2)
        >>> student.fit(x_train, y, epochs=100, progress=False)  # GaussianDistillation student
    """
    x = _check_inputs(x)
    num_samples = _positive_int("num_samples", num_samples)
    members = _members(teacher)
    means, second = [], []
    for k, member in enumerate(members):
        if not isinstance(member, BNN) or member.likelihood.kind != "gaussian":
            raise ValueError(
                "Expected a BNN with a Gaussian likelihood (or a list of them) as the regression "
                f"teacher, but member {k} is {member!r}."
            )
        pred = member.predict(x, num_samples, seed=None if seed is None else seed + k)
        if pred.scale is None:
            raise ValueError(f"Expected a noise scale in the predictive of teacher member {k}.")
        means.append(pred.mean)
        second.append(pred.variance + pred.mean**2)
    mean = torch.stack(means).mean(0)
    var = (torch.stack(second).mean(0) - mean**2).clamp(min=0)
    return torch.stack([mean, var], dim=-1)


class TeacherTargets(Dataset):
    r"""A transfer set whose soft targets are computed by the teacher per minibatch.

    Indexing with a list (or tensor) of indices returns ``(x[idx], targets)`` for the whole
    batch in one teacher forward; :meth:`loader` builds the ``DataLoader`` that does that, which
    :meth:`BNN.fit <pyro_bdl.BNN.fit>` accepts in place of ``x, y``. Use it when precomputed
    targets do not fit in memory, when the inputs are augmented per epoch, or to give a BNN
    teacher fresh posterior draws every batch. With ``labels`` the targets are
    ``stack_targets(soft, labels)`` (for ``Distillation(hard_weight > 0)``).

    :param teacher: see :func:`teacher_targets`.
    :param x: transfer-set inputs ``(N, ...)``.
    :param temperature: :math:`T > 0`.
    :param labels: optional integer labels ``(N,)`` (``-1`` = unlabelled).
    :param num_samples: posterior draws for a BNN teacher, per batch.

    .. math::

        y_{\text{batch}} = \text{teacher\_targets}(\text{teacher}, x_{\text{batch}}, T)

    Example::

        >>> data = TeacherTargets(teacher_net, x_train, temperature=4.0)
        >>> student.fit(data.loader(batch_size=128, seed=0), epochs=20, progress=False)
    """

    def __init__(
        self,
        teacher: Teacher,
        x: Tensor,
        temperature: float,
        *,
        labels: Tensor | None = None,
        num_samples: int = 100,
    ) -> None:
        self.temperature = _check_temperature(temperature)
        self.x = _check_inputs(x)
        self.num_samples = _positive_int("num_samples", num_samples)
        for member in _members(teacher):
            if not isinstance(member, nn.Module):
                raise TypeError(
                    "Expected the teacher to be an nn.Module, a pyro_bdl.BNN or a list of them, "
                    f"but got {type(member).__name__}."
                )
        if labels is not None and (not torch.is_tensor(labels) or labels.shape != x.shape[:1]):
            raise ValueError(
                f"Expected labels of shape ({len(x)},), but got "
                f"{tuple(getattr(labels, 'shape', ()))}."
            )
        self.teacher = teacher
        self.labels = labels

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int | Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(index, dtype=torch.long)
        single = idx.dim() == 0
        idx = idx.reshape(-1)
        xb = self.x[idx]
        y = teacher_targets(self.teacher, xb, self.temperature, num_samples=self.num_samples)
        if self.labels is not None:
            y = stack_targets(y, self.labels[idx])
        return (xb[0], y[0]) if single else (xb, y)

    def loader(
        self, batch_size: int, *, shuffle: bool = True, seed: int | None = None
    ) -> DataLoader:
        """A ``DataLoader`` yielding ``(x_batch, targets_batch)`` with one teacher call per batch.

        :param batch_size: minibatch size.
        :param shuffle: reshuffle every epoch.
        :param seed: seeds the shuffling.
        :return: a ``DataLoader`` over this data set (``len(loader.dataset) == N``).

        Example::

            >>> loader = TeacherTargets(teacher_net, x, 2.0).loader(batch_size=64, seed=0)
            >>> xb, yb = next(iter(loader))  # (64, ...), (64, C)
        """
        batch_size = _positive_int("batch_size", batch_size)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        order = RandomSampler(self, generator=generator) if shuffle else SequentialSampler(self)
        return DataLoader(
            self, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False)
        )
