"""Classification likelihoods on logits: :class:`Categorical` (labels) and :class:`Bernoulli`."""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import Tensor
from torch.distributions import Distribution

from ..uncertainty import Prediction
from .base import ElementwiseLikelihood, Likelihood, base_distribution

__all__ = ["Categorical", "Bernoulli", "check_logits_shape"]


def check_logits_shape(f: Tensor, sample_ndim: int, who: str) -> None:
    """Raise ``ValueError`` unless the per-draw outputs ``f`` are logits of shape ``(N, C)``.

    :param f: outputs ``sample_shape + (N, C)``.
    :param sample_ndim: number of leading draw dimensions of ``f``.
    :param who: the likelihood, for the message (e.g. ``"a Categorical likelihood"``).

    Example::

        >>> check_logits_shape(torch.zeros(3, 5, 4), 1, "a Categorical likelihood")  # passes
    """
    if f.dim() != sample_ndim + 2:
        raise ValueError(
            f"Expected network outputs of shape (N, num_classes) for {who}, but got per-draw "
            f"shape {tuple(f.shape[sample_ndim:])}."
        )


class Categorical(Likelihood):
    """Categorical likelihood on logits: the network outputs ``(N, C)``; labels are ``(N,)`` longs.

    Example::

        >>> lik = Categorical()
        >>> d = lik.predictive_dist(torch.zeros(4, 3))
        >>> d.batch_shape
        torch.Size([4])
    """

    kind = "categorical"

    def predictive_dist(self, f: Tensor, sample_ndim: int = 0) -> Distribution:
        check_logits_shape(f, sample_ndim, "a Categorical likelihood")
        return dist.Categorical(logits=f)

    def validate_target(self, y: Tensor) -> None:
        super().validate_target(y)
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(
                f"Expected integer class labels (torch.long) for a Categorical likelihood, but got "
                f"dtype {y.dtype}; convert with y.long() if the values are whole numbers."
            )
        if y.numel() and y.min() < 0:
            raise ValueError(f"Expected class labels >= 0, but got min label {y.min().item()}.")

    def check_target(self, y: Tensor, f: Tensor, sample_ndim: int = 0) -> Tensor:
        self.validate_target(y)
        self._check_rows(y, f, sample_ndim)
        if y.dim() != 1:
            raise ValueError(f"Expected labels of shape (N,), but got shape {tuple(y.shape)}.")
        c = f.shape[-1]
        if y.numel() and y.max() >= c:
            raise ValueError(
                f"Expected class labels in [0, {c - 1}] for a network with {c} outputs, but got "
                f"label {y.max().item()}."
            )
        return y

    def prediction(self, d: Distribution) -> Prediction:
        probs = base_distribution(d, torch.distributions.Categorical, "Categorical").probs
        return Prediction("categorical", samples=probs)

    def log_density(self, f: Tensor, y: Tensor, sample_ndim: int = 0) -> Tensor:
        """Categorical log mass, as ``torch.distributions.Categorical(logits=f).log_prob``.

        Example::

            >>> Categorical().log_density(torch.zeros(2, 4), torch.tensor([0, 3]))
            tensor([-1.3863, -1.3863])
        """
        log_pmf = f - f.logsumexp(dim=-1, keepdim=True)
        index = y.long().unsqueeze(-1).expand(log_pmf.shape[:-1] + (1,))
        return log_pmf.gather(-1, index).squeeze(-1)


class Bernoulli(ElementwiseLikelihood):
    """Bernoulli likelihood on logits: outputs ``(N,)``, ``(N, 1)`` or ``(N, D)``; y in {0, 1}.

    Example::

        >>> Bernoulli().predictive_dist(torch.zeros(5, 1)).batch_shape
        torch.Size([5])
    """

    kind = "bernoulli"

    def validate_target(self, y: Tensor) -> None:
        super().validate_target(y)
        if y.numel() and not ((y == 0) | (y == 1)).all():
            raise ValueError(
                "Expected binary targets in {0, 1} for a Bernoulli likelihood, but got values "
                f"{torch.unique(y)[:5].tolist()}..."
            )

    def predictive_dist(self, f: Tensor, sample_ndim: int = 0) -> Distribution:
        (logits,) = self._split(f, sample_ndim)
        return self._event(dist.Bernoulli(logits=logits), logits.dim() - sample_ndim - 1)

    def prediction(self, d: Distribution) -> Prediction:
        probs = base_distribution(d, torch.distributions.Bernoulli, "Bernoulli").probs
        return Prediction("bernoulli", samples=probs)
