r"""Knowledge distillation as a likelihood (Hinton, Vinyals & Dean 2015).

A student is an ordinary :class:`~pyro_bdl.BNN` whose likelihood is :class:`Distillation`
instead of :class:`~pyro_bdl.likelihoods.Categorical`: its observations are the teacher's
temperature-softened class probabilities, scored by the soft-target cross-entropy of
:class:`~pyro_bdl.distributions.tempered.DistillationCategorical`. Regression distillation
("Bayesian dark knowledge") is :class:`GaussianDistillation`, scored by
:class:`~pyro_bdl.distributions.expected_normal.ExpectedNormal`. The targets come from the teacher
workflows of :mod:`pyro_bdl.workflows.teachers`; these likelihoods never see the teacher.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution

from .._checks import check_float
from ..distributions.expected_normal import ExpectedNormal, check_moments
from ..distributions.tempered import (
    DistillationCategorical,
    check_hard_targets,
    check_soft_targets,
    check_temperature,
)
from ..uncertainty import Prediction
from .base import Likelihood, base_distribution
from .classification import check_logits_shape

__all__ = ["Distillation", "GaussianDistillation"]


class Distillation(Likelihood):
    r"""Soft-target (distillation) likelihood: a student network fitted to a teacher's targets.

    The targets ``y`` are the teacher's probabilities at temperature :math:`T`, shape ``(N, C)``
    (from :func:`~pyro_bdl.workflows.teachers.teacher_targets`; an unlabelled transfer set needs
    nothing else), or ``stack_targets(soft, labels)`` of shape ``(N, 2, C)`` to add hard labels.
    The student's logits :math:`z` enter through
    :class:`~pyro_bdl.distributions.tempered.DistillationCategorical`:

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

    **When it helps** (measured on Fashion-MNIST by ``benchmarks/distillation.py``, tables in
    ``benchmarks/README.md``): 784-16-10 MAP students of a 784-800-800-10 MC-dropout teacher with
    1262 test errors, whose :math:`T = 1` targets on the transfer set are far from one-hot (mean
    max-probability 0.88), three seeds:

    - *Scarce labels*: on 1650 labelled transfer images, soft targets alone at :math:`T = 1` cut
      the student's test errors from 1989 (labels) to 1804, 25 % of the gap to the teacher; on
      all 55 000 images the same student did **worse** from soft targets than from the labels at
      every :math:`T` (1504 from labels, 1542 at :math:`T = 1`, 1896 at :math:`T = 20`). A
      student too small to fit the labels gains nothing from a regulariser, and a teacher only
      2.4 points better than it passes on its own mistakes.
    - *Temperature*: errors grew with :math:`T` in every setting; the best :math:`T` was 1, then
      2. At high :math:`T` the loss becomes logit matching over all :math:`C` classes (the
      gradient tends to :math:`(z - v) / (C T^2)`), which a small student fits slowly: at
      :math:`T \ge 8` its test errors were still falling at the end of training. Raise :math:`T`
      only with a student that has capacity to spare, and train it longer.
    - *Prior and soft weight*: with a flat prior and Adam, ``soft_weight`` is a constant loss
      scale and changes nothing (Adam is invariant to it); it matters only against the prior
      and ``hard_weight``. With 55 000 images the N(0, 1) prior's weight decay is negligible
      either way; on small transfer sets a flat prior (e.g. ``dist.Normal(0., 1e3)``) keeps
      the prior from standing in for the regularisation the soft targets give.

    :param temperature: :math:`T > 0` of the soft term (the teacher's targets must be softened
        with the same :math:`T`).
    :param hard_weight: :math:`w_h \ge 0`, weight of the hard-label term at :math:`T = 1`
        (needs ``(N, 2, C)`` targets when > 0).
    :param soft_weight: :math:`w_s \ge 0`; ``None`` means :math:`T^2`.
    :param dataset_size: N the ELBO is scaled to (see :class:`~pyro_bdl.likelihoods.Likelihood`).

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro.infer.autoguide import AutoDelta
        >>> from torch import nn
        >>> from pyro_bdl import BNN
        >>> from pyro_bdl.distill import stack_targets, teacher_targets
        >>> x, teacher = torch.randn(32, 3), nn.Linear(3, 4)
        >>> soft = teacher_targets(teacher, x, temperature=4.0)
        >>> soft.shape  # (N, C)
        torch.Size([32, 4])
        >>> student = BNN(nn.Linear(3, 4), dist.Normal(0.0, 1.0), Distillation(4.0), guide=AutoDelta)
        >>> result = student.fit(x, soft, epochs=2, batch_size=16, progress=False)
        >>> y = stack_targets(soft, torch.randint(0, 4, (32,)))  # (N, 2, C): with hard labels
        >>> both = BNN(nn.Linear(3, 4), dist.Normal(0.0, 1.0), Distillation(4.0, hard_weight=0.5))
        >>> both.fit(x, y, epochs=2, progress=False).num_steps
        2
    """  # noqa: E501

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
        self.temperature = check_temperature(temperature)
        self.hard_weight = check_float("hard_weight", hard_weight, allow_zero=True)
        self.soft_weight = (
            self.temperature**2
            if soft_weight is None
            else check_float("soft_weight", soft_weight, allow_zero=True)
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
            check_soft_targets("the soft targets y", y)
        elif y.dim() == 3 and y.shape[1] == 2:
            check_soft_targets("the soft targets y[:, 0]", y[:, 0])
            check_hard_targets("the hard labels y[:, 1]", y[:, 1])
        else:
            raise ValueError(
                "Expected soft targets of shape (N, C), or stack_targets(soft, labels) of shape "
                f"(N, 2, C), but got shape {tuple(y.shape)}."
            )

    def check_target(self, y: Tensor, f: Tensor, sample_ndim: int = 0) -> Tensor:
        self.validate_target(y)
        self._check_rows(y, f, sample_ndim)
        check_logits_shape(f, sample_ndim, "a Distillation likelihood")
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
        check_logits_shape(f, sample_ndim, "a Distillation likelihood")
        return DistillationCategorical(
            f,
            torch.tensor(self.temperature, dtype=f.dtype, device=f.device),
            soft_weight=self.soft_weight,
            hard_weight=self.hard_weight,
        )

    def prediction(self, d: Distribution) -> Prediction:
        logits = base_distribution(d, DistillationCategorical, "Distillation").logits
        return Prediction("categorical", samples=torch.softmax(logits, dim=-1))

    def config(self) -> dict[str, Any] | None:
        """The constructor arguments (``soft_weight`` as used: ``T²`` when it was ``None``)."""
        return {
            "temperature": self.temperature,
            "hard_weight": self.hard_weight,
            "soft_weight": self.soft_weight,
            "dataset_size": self.dataset_size,
        }

    def __repr__(self) -> str:
        return (
            f"Distillation(temperature={self.temperature}, soft_weight={self.soft_weight}, "
            f"hard_weight={self.hard_weight})"
        )


class GaussianDistillation(Likelihood):
    r"""Regression distillation: a heteroskedastic student fitted to a teacher's predictive moments.

    The targets are the teacher's Gaussian predictive per point, ``y[n] = (m_n, s_n²)``: shape
    ``(N, 2)`` for a scalar output, ``(N, D, 2)`` for ``D`` outputs (from
    :func:`~pyro_bdl.workflows.teachers.gaussian_teacher_targets`). Like
    :class:`~pyro_bdl.likelihoods.HeteroskedasticGaussian`, the student outputs ``2·D`` numbers
    per point, a location :math:`\mu` and an unconstrained scale mapped to
    :math:`\sigma = \mathrm{softplus}(\cdot) + \text{min\_scale}`; the log-likelihood is the
    student's expected log density under the teacher's predictive
    (:class:`~pyro_bdl.distributions.expected_normal.ExpectedNormal`):

    .. math::

        \log p(y_n \mid \mu_n, \sigma_n) = -\tfrac12 \log(2 \pi \sigma_n^2)
        - \frac{(m_n - \mu_n)^2 + s_n^2}{2 \sigma_n^2}.

    It is maximised at :math:`\mu = m, \sigma^2 = s^2`: the student learns the teacher's whole
    predictive (epistemic plus aleatoric variance), as in Bayesian dark knowledge.

    :param min_scale: lower bound added to the student's scale.
    :param dataset_size: N the ELBO is scaled to (see :class:`~pyro_bdl.likelihoods.Likelihood`).

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro.infer.autoguide import AutoDelta
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> from pyro_bdl.distill import gaussian_teacher_targets
        >>> x = torch.linspace(-1, 1, 16)[:, None]
        >>> teacher = BNN(nn.Linear(1, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
        >>> _ = teacher.fit(x, 2 * x[:, 0], epochs=2, progress=False)  # (more in practice)
        >>> y = gaussian_teacher_targets(teacher, x, num_samples=10, seed=0)
        >>> y.shape  # (N, 2): mean, variance
        torch.Size([16, 2])
        >>> student = BNN(nn.Linear(1, 2), dist.Normal(0.0, 1.0), GaussianDistillation(),
        ...               guide=AutoDelta)
        >>> student.fit(x, y, epochs=2, progress=False).num_steps
        2
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
        check_moments("y", y)

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
        base = base_distribution(d, ExpectedNormal, "GaussianDistillation")
        return Prediction("gaussian", samples=base.loc, scale=base.scale)

    def config(self) -> dict[str, Any] | None:
        """The constructor arguments."""
        return {"min_scale": self.min_scale, "dataset_size": self.dataset_size}

    def __repr__(self) -> str:
        return f"GaussianDistillation(min_scale={self.min_scale})"
