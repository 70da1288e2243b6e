r"""SWAG: a Gaussian over the weights from the iterates of SGD (Maddox et al. 2019).

A point estimate is fitted by the one fit loop (:func:`~pyro_bdl.posteriors.ensemble.
fit_point_estimate`: ``AutoDelta``, MAP under the BNN's prior or maximum likelihood), and a
callback (:class:`SWAGCollector`) records its iterates θ_1..θ_n -- every ``every`` steps or
epochs after the first ``start`` -- in the unconstrained space (the weights as they are; a
positive ``"precision"`` as its log). From them, with d the number of unconstrained values:

* the SWA mean :math:`\bar\theta = \frac1n \sum_i \theta_i` and the diagonal
  :math:`\Sigma_{diag} = \frac1n \sum_i (\theta_i - \bar\theta)^2` (the population variance of
  the iterates, computed with Welford's update, so exactly ``iterates.var(0, unbiased=False)``
  up to round-off);
* the deviation matrix :math:`D \in \mathbb{R}^{d \times K}` of the **last K iterates** from
  the final SWA mean, :math:`D_{:,k} = \theta_{n-K+k} - \bar\theta`, so that
  :math:`DD^\top / (K - 1)` is the sample covariance of those iterates about
  :math:`\bar\theta` (exactly ``torch.cov`` of the iterates when K = n). The paper's online
  version centres each column at the running mean of its time; centring at the final mean
  removes that lag (same memory: K vectors).

``covariance="lowrank"`` (low rank plus diagonal, the paper's SWAG) draws

.. math::

    \theta = \bar\theta + \tfrac{1}{\sqrt 2}\,\Sigma_{diag}^{1/2} z_1
             + \tfrac{1}{\sqrt{2(K-1)}}\, D z_2, \qquad z_1 \sim N(0, I_d),\ z_2 \sim N(0, I_K),

whose covariance is :math:`\tfrac12 \Sigma_{diag} + \tfrac12 DD^\top/(K-1)` (the paper's
formula, with no further scale factor); ``covariance="diag"`` (SWAG-Diagonal) draws
:math:`\theta = \bar\theta + \Sigma_{diag}^{1/2} z_1`, covariance :math:`\Sigma_{diag}`.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pyro.optim
import torch
from pyro import poutine
from torch.distributions import constraints

from .._checks import positive_int
from ..inference.callbacks import Callback
from ..inference.data import make_batches
from ..inference.loop import FitOptions, FitResult
from ..inference.posterior import Draws
from ..inference.state import FitState
from ..model import BayesianModel
from .ensemble import OBJECTIVES, HasModel, check_point_model, fit_point_estimate

__all__ = ["COVARIANCES", "SWAG", "SWAGCollector", "site_transforms"]

#: the covariance forms: diagonal only, or low rank plus diagonal
COVARIANCES = ("diag", "lowrank")
#: how an unconstrained iterate maps to a site's value
_TRANSFORMS = ("identity", "exp")


def site_transforms(model: BayesianModel, x: torch.Tensor) -> dict[str, str]:
    """``{site: "identity" | "exp"}`` for every latent site of the model (real or positive).

    :raises ValueError: for a site with another support.

    Example::

        >>> site_transforms(bnn.bayesian_model, x)  # doctest: +SKIP
        {'0.weight': 'identity', ..., 'precision': 'exp'}
    """
    shapes = model.latent_shapes(x)
    with model.side_effect_free(), torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(x[:1].expand(2, *x.shape[1:]))
    out = {}
    for name in shapes:
        support = cast(Any, trace.nodes[name]["fn"]).support
        while isinstance(support, constraints.independent):
            support = support.base_constraint
        lower = getattr(support, "lower_bound", None)
        if support is constraints.real:
            out[name] = "identity"
        elif isinstance(lower, (int, float)) and lower == 0 and not hasattr(support, "upper_bound"):
            out[name] = "exp"  # positive or nonnegative: log-space (exp lands in (0, inf))
        else:
            raise ValueError(
                f"Expected latent sites with real or positive support, but {name!r} has support "
                f"{support}."
            )
    return out


class SWAGCollector(Callback):
    """The fit-loop callback that collects SWAG's moments from a point estimate's iterates.

    Counting completed steps (``per="step"``) or epochs (``per="epoch"``) from 1, the iterate
    after count c is collected when ``c > start`` and ``(c - start) % every == 0``.

    :param read: returns the current point estimate ``{site: tensor}`` (constrained values),
        e.g. ``lambda: guide.median()`` of an ``AutoDelta`` fitted by ``bnn.fit``; may be set
        later (:func:`~pyro_bdl.posteriors.ensemble.fit_point_estimate` passes it).
    :param transforms: ``{site: "identity" | "exp"}`` (default: every site ``"identity"``).
    :param rank: K, the deviations kept (the last K iterates).
    :param start: steps or epochs skipped first (burn-in).
    :param every: collect every this many steps or epochs.
    :param per: ``"step"`` or ``"epoch"``.

    Example::

        >>> c = SWAGCollector(rank=2)
        >>> for v in (0.0, 1.0, 5.0):
        ...     c.collect({"w": torch.tensor([v])})
        >>> c.num_collected, c.mean, c.variance  # over all 3; deviations of the last 2
        (3, tensor([2.]), tensor([4.6667]))
        >>> c.deviations
        tensor([[-1.],
                [ 3.]])
    """

    def __init__(
        self,
        read: Callable[[], Mapping[str, torch.Tensor]] | None = None,
        *,
        transforms: Mapping[str, str] | None = None,
        rank: int = 20,
        start: int = 0,
        every: int = 1,
        per: str = "epoch",
    ) -> None:
        self.read = read
        self.transforms = None if transforms is None else dict(transforms)
        self.rank = positive_int("rank", rank)
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"Expected start to be an int >= 0, but got {start!r}.")
        self.start = start
        self.every = positive_int("every", every)
        if per not in ("step", "epoch"):
            raise ValueError(f"Expected per in ('step', 'epoch'), but got {per!r}.")
        self.per = per
        #: ``{site: shape}`` of the collected sites, in the order of the flat vector
        self.shapes: dict[str, torch.Size] = {}
        self.num_collected = 0
        self._mean: torch.Tensor | None = None
        self._m2: torch.Tensor | None = None
        self._last: deque[torch.Tensor] = deque(maxlen=self.rank)

    # ------------------------------------------------------------------ the hooks
    def on_step(self, state: FitState, loglik: float, kl: float) -> None:
        if self.per == "step":
            self._tick(state.step)

    def on_epoch(self, state: FitState) -> bool | None:
        if self.per == "epoch":
            self._tick(state.epoch)
        return None

    def _tick(self, count: int) -> None:
        if count > self.start and (count - self.start) % self.every == 0:
            if self.read is None:
                raise RuntimeError("Expected SWAGCollector.read to be set before the fit.")
            self.collect(self.read())

    # ------------------------------------------------------------------ the moments
    def flatten(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The unconstrained flat vector ``(d,)`` of a point estimate."""
        if not self.shapes:
            self.shapes = {k: v.shape for k, v in values.items()}
        if set(values) != set(self.shapes):
            raise ValueError(f"Expected the sites {list(self.shapes)}, but got {list(values)}.")
        parts = []
        for name in self.shapes:
            v = values[name].detach()
            if (self.transforms or {}).get(name, "identity") == "exp":
                v = v.log()
            parts.append(v.reshape(-1))
        return torch.cat(parts)

    def collect(self, values: Mapping[str, torch.Tensor]) -> None:
        """Add one iterate (Welford's update of the mean and the sum of squared deviations)."""
        theta = self.flatten(values).clone()
        self.num_collected += 1
        if self._mean is None or self._m2 is None:
            self._mean, self._m2 = theta.clone(), torch.zeros_like(theta)
        else:
            delta = theta - self._mean
            self._mean = self._mean + delta / self.num_collected
            self._m2 = self._m2 + delta * (theta - self._mean)
        self._last.append(theta)

    def _ready(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._mean is None or self._m2 is None:
            raise RuntimeError(
                "Expected collected iterates, but none were collected: fit for more than "
                f"start={self.start} {self.per}s."
            )
        return self._mean, self._m2

    @property
    def mean(self) -> torch.Tensor:
        """The SWA mean θ̄ ``(d,)``."""
        return self._ready()[0]

    @property
    def variance(self) -> torch.Tensor:
        """Σ_diag ``(d,)``: the population variance of all collected iterates."""
        return self._ready()[1] / self.num_collected

    @property
    def deviations(self) -> torch.Tensor:
        """``(K, d)``: the last K iterates minus θ̄ (the columns of D, as rows)."""
        mean = self.mean
        return torch.stack([t - mean for t in self._last])

    def state(self) -> dict[str, torch.Tensor]:
        """The moments as named tensors (``mean``, ``m2``, ``last``)."""
        mean, m2 = self._ready()
        return {"mean": mean.clone(), "m2": m2.clone(), "last": torch.stack(list(self._last))}

    def load(self, tensors: Mapping[str, torch.Tensor], num_collected: int) -> None:
        """Restore :meth:`state` (and the count of collected iterates)."""
        self._mean, self._m2 = tensors["mean"].clone(), tensors["m2"].clone()
        self._last = deque(tensors["last"].clone(), maxlen=self.rank)
        self.num_collected = num_collected


class SWAG:
    """SWAG posterior of a BNN: a Gaussian fitted to the iterates of SGD (see the module doc).

    :meth:`fit` starts from a copy of the BNN's network as it is (pre-train it, e.g. as one
    member of a :class:`~pyro_bdl.posteriors.DeepEnsemble`, or skip a burn-in with ``start``),
    runs the one fit loop with an ``AutoDelta`` guide and SGD at a constant learning rate, and
    collects the iterates. The BNN's network is not changed. The posterior draws afresh
    (``num_draws is None``): ``bnn.predict(x, S, posterior=swag)``.

    :param bnn: the :class:`~pyro_bdl.BNN`; no learned ``pyro.param`` in its model.
    :param rank: K, the rank of the low-rank part (>= 2 for ``"lowrank"``).
    :param covariance: ``"lowrank"`` (low rank plus diagonal) or ``"diag"``.
    :param start: steps or epochs skipped before collecting.
    :param every: collect every this many steps or epochs.
    :param per: ``"epoch"`` (the paper) or ``"step"``.
    :param objective: ``"map"`` (under the BNN's prior) or ``"ml"``.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 16).unsqueeze(-1)
        >>> y = 2 * x[:, 0]
        >>> bnn = BNN(torch.nn.Linear(1, 1), dist.Normal(0.0, 1.0), HomoskedasticGaussian(0.5))
        >>> swag = SWAG(bnn, rank=5, per="step", start=20)
        >>> _ = swag.fit(x, y, epochs=40, batch_size=4, lr=1e-2, seed=0)
        >>> swag.collector.num_collected, swag.sample(7).sites["weight"].shape
        (140, torch.Size([7, 1, 1]))
    """

    num_draws: int | None = None

    def __init__(
        self,
        bnn: HasModel,
        *,
        rank: int = 20,
        covariance: str = "lowrank",
        start: int = 0,
        every: int = 1,
        per: str = "epoch",
        objective: str = "map",
    ) -> None:
        self.bnn = bnn
        self.model: BayesianModel = bnn.bayesian_model
        if covariance not in COVARIANCES:
            raise ValueError(f"Expected covariance in {COVARIANCES}, but got {covariance!r}.")
        if covariance == "lowrank" and positive_int("rank", rank) < 2:
            raise ValueError(
                f"Expected rank >= 2 for covariance='lowrank' (D D^T / (K - 1)), but got {rank}; "
                "use covariance='diag' for a diagonal Gaussian."
            )
        if objective not in OBJECTIVES:
            raise ValueError(f"Expected objective in {OBJECTIVES}, but got {objective!r}.")
        self.covariance = covariance
        self.objective = objective
        self.collector = SWAGCollector(rank=rank, start=start, every=every, per=per)
        #: the history of the SGD run
        self.history: FitResult | None = None

    def fit(
        self,
        x: Any,
        y: Any = None,
        *,
        epochs: int = 1,
        batch_size: int | None = None,
        lr: float = 1e-2,
        optim: pyro.optim.PyroOptim | None = None,
        seed: int | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> FitResult:
        """Run SGD from the BNN's current weights and collect the iterates.

        :param x: inputs ``(N, ...)`` or a DataLoader of ``(x, y)`` (with ``y=None``).
        :param y: targets ``(N, ...)``.
        :param epochs: passes over the data.
        :param batch_size: minibatch size (default: all of N).
        :param lr: learning rate of the default ``pyro.optim.SGD`` (the loss is the negative
            log joint of the whole data set, in nats: its curvature grows with N).
        :param optim: any ``pyro.optim`` optimiser instead.
        :param seed: the fit's seed (minibatch order).
        :param callbacks: more fit-loop callbacks (run after the collector).
        :return: the run's :class:`~pyro_bdl.FitResult`.
        """
        data = make_batches(x, y, batch_size, True, self.model.check_pair)
        example = data.example()[0]
        check_point_model(self.model, example)
        self.collector.transforms = site_transforms(self.model, example)

        def attach(read: Callable[[], dict[str, torch.Tensor]]) -> None:
            self.collector.read = read

        sgd = pyro.optim.SGD({"lr": lr})  # type: ignore[attr-defined]  # built at import
        fitted = fit_point_estimate(
            self.model,
            copy.deepcopy(self.model.net),
            data,
            objective=self.objective,
            optim=sgd if optim is None else optim,
            options=FitOptions(epochs=epochs, seed=seed),
            callbacks=[self.collector, *callbacks],
            read=attach,
        )
        self.collector.read = None  # the guide is gone with the fit's param-store scope
        self.history = fitted.history
        return fitted.history

    def sample(self, num: int, *, offset: int = 0) -> Draws:
        """``num`` fresh draws (``offset`` is ignored), with torch's global random stream."""
        num = positive_int("num", num)
        c = self.collector
        mean, var = c.mean, c.variance.clamp(min=0.0)
        z1 = torch.randn((num, mean.numel()), dtype=mean.dtype, device=mean.device)
        if self.covariance == "diag":
            theta = mean + var.sqrt() * z1
        else:
            dev = c.deviations  # (K, d)
            k = len(dev)
            if k < 2:
                raise RuntimeError(
                    f"Expected at least 2 collected iterates for covariance='lowrank', but got "
                    f"{k}; collect more (lower start/every, more epochs)."
                )
            z2 = torch.randn((num, k), dtype=mean.dtype, device=mean.device)
            theta = mean + var.sqrt() * z1 / math.sqrt(2.0) + (z2 @ dev) / math.sqrt(2.0 * (k - 1))
        return Draws(self._unflatten(theta))

    def _unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.collector
        out, i = {}, 0
        for name, shape in c.shapes.items():
            n = shape.numel()
            v = theta[:, i : i + n].reshape((len(theta),) + tuple(shape))
            out[name] = v.exp() if (c.transforms or {}).get(name) == "exp" else v
            i += n
        return out

    def covariance_matrix(self) -> torch.Tensor:
        """The ``(d, d)`` covariance of the draws (unconstrained space; small models only)."""
        c = self.collector
        diag = torch.diag(c.variance.clamp(min=0.0))
        if self.covariance == "diag":
            return diag
        dev = c.deviations
        return diag / 2 + dev.T @ dev / (2 * (len(dev) - 1))

    def to_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(config, tensors)``: plain data and the moments (``mean``, ``m2``, ``last``)."""
        c = self.collector
        config = {
            "type": type(self).__name__,
            "covariance": self.covariance,
            "objective": self.objective,
            "rank": c.rank,
            "start": c.start,
            "every": c.every,
            "per": c.per,
            "num_collected": c.num_collected,
            "sites": {k: list(v) for k, v in c.shapes.items()},
            "transforms": dict(c.transforms or {}),
        }
        return config, c.state()

    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], bnn: HasModel
    ) -> SWAG:
        """Rebuild a fitted SWAG posterior from :meth:`to_state`'s output, for ``bnn``."""
        if config.get("type") != cls.__name__:
            raise ValueError(
                f"Expected a config of type {cls.__name__!r}, but got {config.get('type')!r}."
            )
        transforms = dict(config["transforms"])
        bad = {k: v for k, v in transforms.items() if v not in _TRANSFORMS}
        if bad:
            raise ValueError(f"Expected transforms in {_TRANSFORMS}, but got {bad}.")
        swag = cls(
            bnn,
            rank=int(config["rank"]),
            covariance=str(config["covariance"]),
            start=int(config["start"]),
            every=int(config["every"]),
            per=str(config["per"]),
            objective=str(config["objective"]),
        )
        c = swag.collector
        c.shapes = {k: torch.Size(v) for k, v in config["sites"].items()}
        c.transforms = transforms
        c.load(tensors, int(config["num_collected"]))
        return swag

    def __repr__(self) -> str:
        c = self.collector
        return (
            f"SWAG(covariance={self.covariance!r}, rank={c.rank}, "
            f"collected={c.num_collected} per {c.per})"
        )
