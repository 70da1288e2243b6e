r"""Teachers for distillation: soft targets and predictive moments from a fitted model.

A teacher is a deterministic network returning logits, a fitted :class:`~pyro_bdl.BNN` (its
posterior predictive: an average of per-draw **probabilities**, never of logits) or a list of them
(an ensemble). :func:`teacher_targets` computes the soft targets of
:class:`~pyro_bdl.likelihoods.distillation.Distillation` once; :class:`TeacherTargets` computes
them per minibatch; :func:`gaussian_teacher_targets` gives a regression teacher's predictive
moments for :class:`~pyro_bdl.likelihoods.distillation.GaussianDistillation`.

Example::

    >>> import pyro.distributions as dist
    >>> from pyro.infer.autoguide import AutoDelta
    >>> from torch import nn
    >>> from pyro_bdl import BNN
    >>> from pyro_bdl.likelihoods import Distillation
    >>> x, teacher_net = torch.randn(64, 3), nn.Linear(3, 4)
    >>> soft = teacher_targets(teacher_net, x, temperature=4.0)  # (N, C)
    >>> student = BNN(nn.Linear(3, 4), dist.Normal(0.0, 1.0), Distillation(4.0), guide=AutoDelta)
    >>> result = student.fit(x, soft, epochs=2, batch_size=32, progress=False)
    >>> student.predict(x[:5]).probs.shape  # T = 1 probabilities
    torch.Size([5, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from .._checks import as_tensor, check_seed, check_tensor, positive_int
from ..bnn import BNN
from ..distributions.tempered import check_temperature, stack_targets
from ..inference.posterior import DRAWS_PLATE, Posterior
from ..inference.predict import default_chunk, iter_draw_chunks, predictive_dists
from ..likelihoods import OBS
from ..nn import eval_mode

__all__ = [
    "teacher_targets",
    "gaussian_teacher_targets",
    "TeacherTargets",
    "Teacher",
    "TEACHER_DRAWS_PLATE",
]

#: A teacher: a network returning logits, a fitted classification BNN, or a sequence of them.
Teacher = nn.Module | BNN | Sequence[nn.Module | BNN]

#: Plate under which :func:`teacher_targets` draws a BNN teacher's weights (outside the data plate).
TEACHER_DRAWS_PLATE = DRAWS_PLATE  # the package's one draws plate (this name kept for imports)

#: Elements of weight draws held at once by :func:`teacher_targets` (bounds memory).


def _row_batches(x: Tensor, batch_size: int | None) -> list[Tensor]:
    if batch_size is None:
        return [x]
    return list(x.split(positive_int("batch_size", batch_size)))


def _members(teacher: Any) -> list[Any]:
    if isinstance(teacher, (list, tuple, nn.ModuleList)):
        members = list(teacher)
        if not members:
            raise ValueError("Expected at least one model in the teacher ensemble, but got none.")
        return members
    return [teacher]


def _module_logits(net: nn.Module, x: Tensor, batch_size: int | None) -> Tensor:
    try:
        with eval_mode(net):  # every module's own mode is restored afterwards
            logits = torch.cat([net(xb) for xb in _row_batches(x, batch_size)])
    except (RuntimeError, TypeError, IndexError) as error:
        raise ValueError(
            f"Expected inputs the teacher {type(net).__name__} accepts, but it failed on x of "
            f"shape {tuple(x.shape)} and dtype {x.dtype} (its error is chained above). Check the "
            "number of features, the rank and the dtype the teacher expects."
        ) from error
    if not torch.is_tensor(logits) or logits.dim() != 2 or len(logits) != len(x):
        raise ValueError(
            f"Expected the teacher {type(net).__name__} to return logits of shape (N, C) = "
            f"({len(x)}, C), but got shape {tuple(getattr(logits, 'shape', ()))}."
        )
    return logits


def _logits(bnn: BNN, fn: object) -> Tensor:
    """Logits of the observation distribution (up to a per-row shift, which softmax ignores)."""
    if not isinstance(fn, Distribution):
        raise TypeError(
            f"Expected a distribution at the teacher's {OBS!r} site, but got {type(fn).__name__}."
        )
    logits = getattr(fn, "logits", None)  # Categorical (normalised) and DistillationCategorical
    return bnn.likelihood.prediction(fn).samples.log() if logits is None else logits


def _bnn_probs(
    bnn: BNN,
    x: Tensor,
    temperature: float,
    num_samples: int | None,
    batch_size: int | None,
    posterior: Posterior | None = None,
) -> Tensor:
    """Posterior predictive at temperature T, from the draws ``BNN.predict`` takes.

    The package's one draws loop: every chunk of draws is run on every batch of rows, so all
    rows share the same draws whatever ``batch_size`` is; the network runs in evaluation mode,
    as in ``BNN.predict``.
    """
    if bnn.likelihood.kind != "categorical":
        raise ValueError(
            "Expected a classification teacher (a BNN with a Categorical or Distillation "
            f"likelihood), but got likelihood {bnn.likelihood!r}; for a Gaussian teacher use "
            "gaussian_teacher_targets."
        )
    bnn.check_data(x)  # dtype, and that the network accepts x (a cheap side-effect-free probe)
    batches = _row_batches(x, batch_size)
    model = bnn.bayesian_model
    source = bnn.posterior(batches[0]) if posterior is None else posterior
    num = num_samples or source.num_draws or 100
    sites = model.latent_shapes(x)
    chunk = default_chunk(model, max(len(b) for b in batches), x.dtype, sites)
    totals: list[Any] = [0.0 for _ in batches]  # sums take the device and dtype of the logits
    for _, draws in iter_draw_chunks(source, num, chunk=chunk):
        for i, xb in enumerate(batches):
            logits = _logits(bnn, predictive_dists(model, draws, xb, sites))
            logits = logits.expand((draws.num, len(xb), -1))
            totals[i] = totals[i] + torch.softmax(logits / temperature, dim=-1).sum(0)
    return torch.cat([t / num for t in totals])


@torch.no_grad()
def teacher_targets(
    teacher: Teacher,
    x: Tensor,
    temperature: float,
    *,
    num_samples: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    posterior: Posterior | None = None,
) -> Tensor:
    r"""Soft targets: the teacher's class probabilities at temperature :math:`T`, computed once.

    - an ``nn.Module`` returning logits :math:`v` (run in eval mode, so dropout is off):
      :math:`\mathrm{softmax}(v / T)`;
    - a fitted :class:`~pyro_bdl.BNN` with a categorical likelihood: its posterior predictive
      at temperature :math:`T`, the average of the per-draw tempered **probabilities** over
      ``num_samples`` weight draws :math:`W_s \sim q` (never the softmax of averaged logits;
      its network in eval mode, as ``BNN.predict`` runs it);
    - a list/tuple of such models (an ensemble): the average of the members' probabilities.

    .. math::

        p_n = \frac1S \sum_{s=1}^S \mathrm{softmax}\!\left(f_{W_s}(x_n) / T\right)

    To compute targets per minibatch instead (a large transfer set, augmented inputs), use
    :class:`TeacherTargets`.

    **Choosing the teacher and T** (Fashion-MNIST, ``benchmarks/distillation.py``; see
    :class:`~pyro_bdl.likelihoods.Distillation` for when distillation helps at all): check
    ``teacher_targets(teacher, x, 1.0).max(-1).values.mean()`` on the transfer set first. Near 1
    the targets are one-hot and carry nothing the labels do not; a teacher trained with dropout
    (or stopped early) keeps them soft (0.88 for the 784-800-800-10 MC-dropout teacher there).
    A small student learned most at :math:`T = 1` and less at every higher :math:`T`. The
    MC-dropout posterior predictive of the same network (10 mask draws) was a slightly worse
    teacher than its deterministic dropout net (1280 against 1262 test errors); its students were
    as good within the seed noise. A Bayesian teacher pays off when its predictive is the better
    model, not by itself.

    :param teacher: the teacher (see above).
    :param x: transfer-set inputs ``(N, ...)``.
    :param temperature: :math:`T > 0`; use the same value in :class:`Distillation`.
    :param num_samples: posterior draws :math:`S` for a BNN teacher (default: 100 from a
        guide, every draw of a fixed set).
    :param batch_size: inputs per forward pass (default: all at once).
    :param seed: if given, the draws are reproducible without touching the global RNG.
    :param posterior: for a BNN teacher, where its draws come from (default: its fitted
        guide); any :class:`~pyro_bdl.inference.Posterior`, e.g. a
        :class:`~pyro_bdl.inference.SamplesPosterior` of MCMC draws or ensemble members.
    :return: soft targets ``(N, C)``, rows summing to 1.

    Example::

        >>> import pyro.distributions as dist
        >>> from torch import nn
        >>> from pyro_bdl import BNN, Categorical
        >>> x_train = torch.randn(8, 3)
        >>> teacher_net = nn.Linear(3, 4)
        >>> teacher_targets(teacher_net, x_train, temperature=4.0).shape  # (N, C)
        torch.Size([8, 4])
        >>> teacher_bnn = BNN(nn.Linear(3, 4), dist.Normal(0.0, 1.0), Categorical())
        >>> soft = teacher_targets(teacher_bnn, x_train, 1.0, num_samples=20, seed=0)
        >>> soft.sum(-1).allclose(torch.ones(8))  # rows are probability vectors
        True
        >>> ensemble = [nn.Linear(3, 4), nn.Linear(3, 4), teacher_bnn]
        >>> teacher_targets(ensemble, x_train, 2.0, num_samples=20).shape
        torch.Size([8, 4])
    """
    temperature = check_temperature(temperature)
    x, seed = check_tensor("x", as_tensor("x", x, teacher)), check_seed("seed", seed)
    if num_samples is not None:
        num_samples = positive_int("num_samples", num_samples)
    members = _members(teacher)
    if posterior is not None and not (len(members) == 1 and isinstance(members[0], BNN)):
        raise ValueError(
            "Expected posterior= with one BNN teacher (whose model the draws are of), but got "
            f"a teacher of {len(members)} member(s)."
        )
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        return _ensemble_probs(members, x, temperature, num_samples, batch_size, posterior)


def _ensemble_probs(
    members: list[Any],
    x: Tensor,
    temperature: float,
    num_samples: int | None,
    batch_size: int | None,
    posterior: Posterior | None = None,
) -> Tensor:
    total: Tensor | None = None
    for k, member in enumerate(members):
        if isinstance(member, BNN):
            probs = _bnn_probs(member, x, temperature, num_samples, batch_size, posterior)
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

        >>> import pyro.distributions as dist
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x_train = torch.linspace(-1, 1, 10)[:, None]
        >>> teacher_bnn = BNN(nn.Linear(1, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.1))
        >>> _ = teacher_bnn.fit(x_train, 2 * x_train[:, 0], epochs=2, progress=False)
        >>> y = gaussian_teacher_targets(teacher_bnn, x_train, num_samples=20, seed=0)
        >>> y.shape, bool((y[:, 1] >= 0.1**2).all())  # (N, 2); variance >= the noise's
        (torch.Size([10, 2]), True)
    """
    x, seed = check_tensor("x", as_tensor("x", x, teacher)), check_seed("seed", seed)
    num_samples = positive_int("num_samples", num_samples)
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

        >>> import pyro.distributions as dist
        >>> from pyro.infer.autoguide import AutoDelta
        >>> from torch import nn
        >>> from pyro_bdl import BNN
        >>> from pyro_bdl.likelihoods import Distillation
        >>> x_train, teacher_net = torch.randn(20, 3), nn.Linear(3, 4)
        >>> data = TeacherTargets(teacher_net, x_train, temperature=4.0)
        >>> prior, lik = dist.Normal(0.0, 1.0), Distillation(4.0)
        >>> student = BNN(nn.Linear(3, 4), prior, lik, guide=AutoDelta)
        >>> student.fit(data.loader(batch_size=8, seed=0), epochs=2, progress=False).num_steps
        6
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
        self.temperature = check_temperature(temperature)
        self.x = check_tensor("x", as_tensor("x", x, teacher))
        self.num_samples = positive_int("num_samples", num_samples)
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

            >>> from torch import nn
            >>> x, teacher_net = torch.randn(100, 3), nn.Linear(3, 4)
            >>> loader = TeacherTargets(teacher_net, x, 2.0).loader(batch_size=64, seed=0)
            >>> xb, yb = next(iter(loader))
            >>> xb.shape, yb.shape  # (64, ...), (64, C)
            (torch.Size([64, 3]), torch.Size([64, 4]))
        """
        batch_size, seed = positive_int("batch_size", batch_size), check_seed("seed", seed)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        order = RandomSampler(self, generator=generator) if shuffle else SequentialSampler(self)
        return DataLoader(
            self, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False)
        )
