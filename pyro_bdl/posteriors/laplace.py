r"""The Laplace approximation around a MAP fit: a Gaussian over (some of) the network's weights.

**The MAP first.** :class:`Laplace` is post-hoc: the network's *current* weights are taken as
the MAP estimate :math:`\theta^*` under the BNN's prior and likelihood. Get them by

* fitting the BNN with a point-mass guide, ``BNN(..., guide=AutoDelta)`` and ``bnn.fit(x, y)``,
  then copying the guide's point estimate into the network with :func:`map_to_net` (the
  deterministic parameters are trained in place already);
* or training the network yourself on the negative log joint
  :math:`-\sum_n \log p(y_n \mid f_\theta(x_n)) - \log p(\theta)` (weight decay
  :math:`\lambda/2\,\lVert\theta\rVert^2` for a ``Normal(0, s)`` prior, :math:`\lambda = 1/s^2`).

**Curvature.** The posterior precision is :math:`A = G + \Lambda`, with :math:`\Lambda` the
diagonal prior precision and :math:`G = \sum_n J_n^\top H_n J_n` the generalised Gauss-Newton
matrix (GGN: :math:`J_n` the Jacobian of the outputs at :math:`x_n` in the weights,
:math:`H_n` the Hessian of the negative log-likelihood in the outputs: :math:`I/\sigma^2`
(Gaussian), :math:`\mathrm{diag}(p) - pp^\top` (Categorical), :math:`p(1-p)` (Bernoulli)). For a
linear-Gaussian model the GGN is the Hessian of the negative log-likelihood and the
approximation is exact. ``hessian="full"`` keeps :math:`G` dense (small nets, the last layer),
``"diag"`` its exact diagonal (per-example Jacobians, ``torch.func``), ``"kron"`` KFAC blocks for
``nn.Linear`` and ``nn.Conv2d`` layers (see :meth:`Laplace.fit`).

**Hyperparameters.** :meth:`Laplace.log_marginal_likelihood` is the Laplace evidence of the
quadratic (GGN) expansion of the log joint around :math:`\theta^*`, using only that
:math:`\theta^*` is stationary for the prior precision :math:`\Lambda_0` and noise
:math:`\sigma_0` of the fit (:math:`\nabla_\theta \mathrm{NLL}(\theta^*) = -\Lambda_0\theta^*`).
At :math:`(\Lambda_0, \sigma_0)` it is the usual

.. math::

    \log Z = \log p(y \mid \theta^*) + \log p(\theta^*) + \tfrac d2 \log 2\pi
    - \tfrac12 \log\det A;

at other hyperparameters the posterior mean moves by the Gauss-Newton step
:math:`-A^{-1}(\Lambda - s\Lambda_0)\theta^*` (:math:`s = \sigma_0^2/\sigma^2`, 1 without noise)
and the evidence gains :math:`\tfrac12 c^\top A^{-1} c`, :math:`c = (\Lambda - s\Lambda_0)
\theta^*`. For Bayesian linear regression this is the exact log evidence at *any* prior
precision and noise, so :meth:`Laplace.optimize_prior` finds the exact evidence maximiser there.

The step is only taken from a mode: :meth:`Laplace.fit` records the log-likelihood's gradient
:math:`g` at :math:`\theta^*`, and unless :math:`\lVert g - \Lambda_0\theta^*\rVert` is below
``STATIONARY_TOL`` relative to the larger norm (:attr:`Laplace.stationary`), the weights are not
a mode (a MAP fit stopped early) and the step, which assumes one, would grow without bound as
:math:`\Lambda \to 0` along directions without curvature. Then the evidence is the usual one at
the fixed weights, :math:`c = 0`, and the mean stays :math:`\theta^*` (as laplace-torch does);
the evidence then falls as :math:`\Lambda \to 0` (the Occam factor), so the prior tuning stays
bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import ExpandedDistribution
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, transform_to
from torch.func import functional_call, jacrev, vmap

from .._checks import as_tensor, check_float, check_seed, positive_int
from ..inference.posterior import Draws
from ..likelihoods import Bernoulli, Categorical, HomoskedasticGaussian
from ..uncertainty import Prediction

#: a :class:`~pyro_bdl.BNN`, taken by duck typing (its ``bayesian_model``, ``net``, ``guide``):
#: the posteriors sit below the facade and do not import it
_BNN = Any

__all__ = ["Laplace", "map_to_net"]

HESSIANS = ("full", "diag", "kron")
#: data points whose Jacobians are held at once while fitting or predicting
JACOBIAN_CHUNK = 256


def map_to_net(bnn: _BNN, x: Tensor) -> None:
    """Copy a fitted point-mass guide's estimate (``AutoDelta``: the MAP) into the network.

    ``BNN.fit`` with ``guide=AutoDelta`` keeps the MAP of the weight sites in the guide, and
    trains the deterministic parameters in place; :class:`Laplace` reads the network's current
    weights. Call this between the two.

    :param bnn: a BNN whose guide is a fitted ``pyro.infer.autoguide.AutoDelta``.
    :param x: example inputs ``(N, ...)`` (the guide is called with them).
    :raises TypeError: for another guide (its point estimate is not a MAP).

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro.infer.autoguide import AutoDelta
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.randn(20, 2)
        >>> bnn = BNN(nn.Linear(2, 1), dist.Normal(0., 1.), HomoskedasticGaussian(0.1),
        ...           guide=AutoDelta)
        >>> _ = bnn.fit(x, x[:, 0], epochs=20, lr=0.1, progress=False)
        >>> map_to_net(bnn, x)
        >>> bool(bnn.net.weight[0, 0] > 0.5)  # the MAP of y = x_0
        True
    """
    from pyro.infer.autoguide import AutoDelta

    guide = bnn.guide
    if not isinstance(guide, AutoDelta):
        raise TypeError(
            "Expected a BNN fitted with a point-mass guide (guide=AutoDelta), whose estimate is "
            f"the MAP, but got a {type(guide).__name__} guide; refit with "
            "BNN(..., guide=AutoDelta) or train the network on the negative log joint yourself."
        )
    model = bnn.bayesian_model
    values = guide.median(x)
    params = dict(model.net.named_parameters())
    with torch.no_grad():
        for n in model.random_names:
            params[n].copy_(values[model.site_name(n)])


def _gaussian_precision(d: Distribution) -> float | None:
    """``1/s²`` of a zero-mean isotropic Normal prior site (any wrapping), else ``None``."""
    while isinstance(d, (Independent, ExpandedDistribution)):
        d = d.base_dist
    if not isinstance(d, Normal):
        return None
    loc, scale = d.loc.detach(), d.scale.detach()
    if bool((loc != 0).any()) or bool((scale != scale.reshape(-1)[0]).any()):
        return None
    return float(scale.reshape(-1)[0]) ** -2


#: Relative gradient norm below which the fitted weights count as a mode (see
#: :attr:`Laplace.stationary`).
STATIONARY_TOL = 1e-3


class Laplace:
    r"""Laplace approximation :math:`\mathcal N(\theta^*, (G + \Lambda)^{-1})` of a BNN's weights.

    **Which weights** (``subset``): ``"all"`` (every weight site of the model), ``"last_layer"``
    (the parameters of the last module owning weight sites), a predicate
    ``(name, param) -> bool`` or a list of parameter names. The subset must lie within the
    model's weight sites (``BNN(include=...)``): a deterministic parameter has no prior. The
    rule for the rest: weight sites outside the subset are held at their MAP values in every
    draw (a point mass: the last-layer Laplace conditions on the features), and the
    deterministic parameters stay as they are in the network. For a Laplace over exactly the
    model's random weights, build the BNN with the same ``include``.

    **Curvature** (``hessian``): ``"full"`` (dense GGN, :math:`d^2` memory), ``"diag"`` (its
    exact diagonal) or ``"kron"`` (KFAC, ``nn.Linear`` and ``nn.Conv2d`` layers; see
    :meth:`fit`).

    **Prior precision**: from the BNN's prior, which must be a zero-mean isotropic Normal per
    parameter tensor (``dist.Normal(0, s)``: :math:`\lambda = 1/s^2`); for any other prior pass
    ``prior_precision`` (a float, or one per subset parameter tensor).

    **Likelihoods**: ``HomoskedasticGaussian`` with a fixed or learned scale, ``Categorical``
    and ``Bernoulli``.

    A :class:`~pyro_bdl.inference.Posterior` (``num_draws = None``): ``sample(num)`` draws all
    the model's weight sites afresh, so ``bnn.predict(x, S, posterior=lap)``, its
    ``decompose()`` and ``teacher_targets(..., posterior=lap)`` work as with a guide.
    :meth:`predict_glm` is the linearised predictive.

    :param bnn: the BNN (duck-typed: its ``bayesian_model``), its network at the MAP.
    :param hessian: ``"full"``, ``"diag"`` or ``"kron"``.
    :param subset: ``"all"``, ``"last_layer"``, a predicate or parameter names.
    :param prior_precision: overrides the prior's precision (float or one per tensor).
    :raises ValueError, TypeError: for an unknown hessian/subset, an unsupported likelihood or
        prior, or a subset outside the model's weight sites.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro.infer.autoguide import AutoDelta
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.randn(30, 2)
        >>> y = x @ torch.tensor([1.0, -1.0]) + 0.1 * torch.randn(30)
        >>> bnn = BNN(nn.Linear(2, 1), dist.Normal(0., 1.), HomoskedasticGaussian(0.1),
        ...           guide=AutoDelta)
        >>> _ = bnn.fit(x, y, epochs=200, lr=0.05, progress=False)  # the MAP, in the guide
        >>> map_to_net(bnn, x)  # now in the network
        >>> lap = Laplace(bnn, hessian="full").fit(x, y)
        >>> lap.sample(5).sites["weight"].shape  # {site: (S, *shape)}
        torch.Size([5, 1, 2])
        >>> lap.optimize_prior(steps=100).log_marginal_likelihood().shape
        torch.Size([])
        >>> bnn.predict(x[:3], 100, posterior=lap).samples.shape  # Monte Carlo over weights
        torch.Size([100, 3])
        >>> lap.predict_glm(x[:3]).decompose().aleatoric  # linearised: exact σ² = 0.01
        tensor([0.0100, 0.0100, 0.0100])
    """

    num_draws: int | None = None

    def __init__(
        self,
        bnn: _BNN,
        hessian: str = "full",
        subset: str | Callable[[str, nn.Parameter], bool] | Sequence[str] = "all",
        *,
        prior_precision: float | Sequence[float] | None = None,
    ) -> None:
        if hessian not in HESSIANS:
            raise ValueError(f"Expected hessian in {HESSIANS}, but got {hessian!r}.")
        self.bnn = bnn
        self.model = bnn.bayesian_model
        self.hessian = hessian
        self.likelihood = self.model.likelihood
        self.kind = _likelihood_kind(self.likelihood)
        #: parameter names (``named_parameters()`` keys) under the Laplace, in network order
        self.names: list[str] = self._resolve_subset(subset)
        params = dict(self.model.net.named_parameters())
        self.shapes = {n: params[n].shape for n in self.names}
        self.sizes = [params[n].numel() for n in self.names]
        if hessian == "kron":
            self._check_kron()
        precision = self._prior_precision(prior_precision)
        #: the prior precision the MAP was fitted with, one per subset tensor
        self.prior_precision0 = precision
        self._prior_precision_now = precision.clone()
        self._fitted: dict[str, Tensor] | None = None
        self._held: dict[str, Tensor] = {}
        self._cache: tuple[tuple[float, ...], dict[str, Tensor]] | None = None

    @property
    def prior_precision(self) -> Tensor:
        """The current prior precision, one per subset tensor, shape ``(len(names),)``.

        :meth:`optimize_prior` tunes it; assigning a float or a tensor changes the posterior
        (its mean moves by the Gauss-Newton step, see the module's docstring).

        Example::

            >>> lap.prior_precision = 2.0  # doctest: +SKIP
        """
        return self._prior_precision_now

    @prior_precision.setter
    def prior_precision(self, value: float | Tensor) -> None:
        like = self.prior_precision0
        value = torch.as_tensor(value, dtype=like.dtype, device=like.device).detach()
        value = value.expand(like.shape).clone() if value.dim() == 0 else value.clone()
        if value.shape != like.shape or not bool((value > 0).all()):
            raise ValueError(
                f"Expected a prior precision > 0: a float or one per subset tensor "
                f"({len(self.names)}), but got {value.tolist()}."
            )
        self._prior_precision_now = value

    # ------------------------------------------------------------------ set-up
    def _resolve_subset(
        self, subset: str | Callable[[str, nn.Parameter], bool] | Sequence[str]
    ) -> list[str]:
        random = self.model.random_names
        params = dict(self.model.net.named_parameters())
        if subset == "all":
            names = list(random)
        elif subset == "last_layer":
            owners = [n.rpartition(".")[0] for n in random]
            names = [n for n, o in zip(random, owners, strict=True) if o == owners[-1]]
        elif callable(subset):
            names = [n for n, p in params.items() if subset(n, p)]
        elif isinstance(subset, Sequence) and not isinstance(subset, str):
            names = [n for n in params if n in set(subset)]
            unknown = sorted(set(subset) - set(params))
            if unknown:
                raise ValueError(
                    f"Expected subset names of network parameters, but got unknown {unknown}."
                )
        else:
            raise ValueError(
                "Expected subset 'all', 'last_layer', a predicate (name, param) -> bool or a list "
                f"of parameter names, but got {subset!r}."
            )
        outside = [n for n in names if n not in random]
        if outside:
            raise ValueError(
                f"Expected a subset within the model's weight sites {random}, but {outside} are "
                "deterministic (no prior); widen BNN(include=...) or narrow the subset."
            )
        if not names:
            raise ValueError("Expected a subset selecting at least one weight, but got none.")
        return names

    def _check_kron(self) -> None:
        for n in self.names:
            module = self.model.net.get_submodule(n.rpartition(".")[0])
            conv = isinstance(module, nn.Conv2d)
            if conv and (
                module.groups != 1
                or isinstance(module.padding, str)
                or module.padding_mode != "zeros"
            ):
                raise ValueError(
                    f"Expected hessian='kron' Conv2d layers with groups=1 and numeric zero "
                    f"padding, but {n!r} belongs to {module}; use hessian='diag'."
                )
            if not conv and not isinstance(module, nn.Linear):
                raise ValueError(
                    f"Expected hessian='kron' over nn.Linear and nn.Conv2d layers only, but {n!r} "
                    f"belongs to a {type(module).__name__}; use hessian='diag' or a subset of "
                    "Linear/Conv2d layers."
                )

    def _prior_precision(self, given: float | Sequence[float] | None) -> Tensor:
        p = next(self.model.net.parameters())
        if given is not None:
            values = [float(given)] * len(self.names) if _is_number(given) else list(given)  # type: ignore[arg-type]
            if len(values) != len(self.names) or min(values) <= 0:
                raise ValueError(
                    f"Expected prior_precision > 0: a float or one per subset tensor "
                    f"({len(self.names)}: {self.names}), but got {given!r}."
                )
            return torch.tensor(values, dtype=p.dtype, device=p.device)
        dists = self.model.prior_dists()
        values = []
        for n in self.names:
            lam = _gaussian_precision(dists[n])
            if lam is None:
                raise ValueError(
                    f"Expected a zero-mean isotropic Normal prior (dist.Normal(0, s)) on {n!r} "
                    f"for the Laplace approximation, but got {dists[n]}; pass "
                    "prior_precision=... (the 1/s² of the Gaussian prior to use)."
                )
            values.append(lam)
        return torch.tensor(values, dtype=p.dtype, device=p.device)

    # ------------------------------------------------------------------ the network as f(θ)
    def _theta(self) -> Tensor:
        params = dict(self.model.net.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def _unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """``{name: (..., *shape)}`` of flat ``(..., d)`` vectors."""
        parts = theta.split(self.sizes, dim=-1)
        return {
            n: v.reshape(theta.shape[:-1] + self.shapes[n])
            for n, v in zip(self.names, parts, strict=True)
        }

    def _jacobians(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Outputs ``(B, K)`` and Jacobians ``(B, K, d)`` at ``theta``, per example."""
        net = self.model.net

        def f(t: Tensor, xi: Tensor) -> Tensor:
            return functional_call(net, self._unflatten(t), (xi.unsqueeze(0),)).reshape(-1)

        def f_and_out(t: Tensor, xi: Tensor) -> tuple[Tensor, Tensor]:
            out = f(t, xi)
            return out, out

        with self.model.side_effect_free():
            jac, out = vmap(jacrev(f_and_out, has_aux=True), in_dims=(None, 0))(theta, x)
        return out.detach(), jac.detach()

    def _loglik_grad(self, x: Tensor, y: Tensor, theta: Tensor) -> Tensor:
        """``(d,)`` gradient of the chunk's log-likelihood in the subset at ``theta``, at the
        fit's noise scale."""
        t = theta.clone().requires_grad_(True)
        with self.model.side_effect_free(), torch.enable_grad():
            out = functional_call(self.model.net, self._unflatten(t), (x,))
            f = out.reshape((len(x),) + self.model.probe_output(x))
            loglik = self.likelihood.log_density(f, self.likelihood.check_target(y, f)).sum()
            (grad,) = torch.autograd.grad(loglik, t)
        return grad.detach()

    @property
    def stationarity(self) -> float:
        r"""How far the fitted weights are from a mode of the log joint:
        :math:`\lVert g - \Lambda_0\theta^*\rVert / \max(\lVert g\rVert,
        \lVert\Lambda_0\theta^*\rVert)` with :math:`g` the log-likelihood's gradient (0 at a
        MAP; see :attr:`stationary`)."""
        fit = self.fitted
        pull = self._expand(self.prior_precision0) * fit["theta"]
        if "grad" not in fit:  # a state saved without the gradient: taken as stationary
            return 0.0
        scale = max(float(fit["grad"].norm()), float(pull.norm()), 1e-300)
        return float((fit["grad"] - pull).norm()) / scale

    @property
    def stationary(self) -> bool:
        """Whether the weights are a mode of the log joint (:attr:`stationarity` below
        ``STATIONARY_TOL``): only then do the evidence and the mean follow the prior and noise
        by the Gauss-Newton step; otherwise both are taken at the fixed weights."""
        return self.stationarity < STATIONARY_TOL

    def _output_hessian(self, out: Tensor) -> Tensor:
        """``(B, K, K)`` Hessians of the NLL in the outputs (Gaussian: at unit noise)."""
        b, k = out.shape
        if self.kind == "gaussian":
            return torch.eye(k, dtype=out.dtype, device=out.device).expand(b, k, k)
        if self.kind == "categorical":
            p = out.softmax(-1)
            return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)
        p = out.sigmoid()
        return torch.diag_embed(p * (1 - p))

    # ------------------------------------------------------------------ fitting
    def fit(self, x: Tensor | Iterable[tuple[Tensor, Tensor]], y: Tensor | None = None) -> Laplace:
        r"""Curvature at the network's current weights (the MAP) over the data.

        ``"kron"`` uses, per ``nn.Linear``/``nn.Conv2d`` weight (row-major, flattened to
        ``(out, P)``), the KFAC block :math:`G \otimes A` with

        .. math::

            A = \frac1N \sum_n \sum_t a_{nt} a_{nt}^\top, \qquad
            G = \frac1T \sum_n \sum_t g_{nt}^\top H_n\, g_{nt}

        (:math:`a_{nt}` the layer's input -- a Conv2d's unfolded patch at output position
        :math:`t` of :math:`T`, a Linear's input with :math:`T = 1` --, :math:`g_{nt}` the
        ``(K, out)`` Jacobian of the network's outputs in the layer's output at :math:`t`,
        :math:`H_n` the output Hessian): the **mean** over the data on :math:`A`, the **sum**
        on :math:`G` (Grosse & Martens' KFC for convolutions), so that for one example and one
        position the block is the exact GGN block. A bias block is its exact GGN block, and
        blocks of different tensors are taken as independent.

        :param x: inputs ``(N, ...)``, or a DataLoader (or list) of ``(x, y)`` minibatches.
        :param y: targets ``(N, ...)`` (``None`` with minibatches).
        :return: ``self``.

        Example::

            >>> lap = Laplace(bnn, hessian="kron", subset="last_layer").fit(loader)
            ... # doctest: +SKIP
        """
        if isinstance(x, (torch.utils.data.DataLoader, list, tuple)):
            batches = cast(Iterable, x)
        else:
            if y is None:
                raise ValueError(
                    "Expected targets y with inputs x (or a DataLoader of (x, y) batches as x), "
                    "but got y=None."
                )
            batches = [(as_tensor("x", x, self.model.net), as_tensor("y", y, self.model.net))]
        theta = self._theta()
        curv: Any = None
        stats = {"n_obs": 0.0, "rss": 0.0, "nll": 0.0, "n": 0.0}
        grad: Tensor | None = None
        for xb, yb in batches:
            xb, yb = self.model.check_data(xb, yb)
            assert yb is not None
            for xc, yc in zip(xb.split(JACOBIAN_CHUNK), yb.split(JACOBIAN_CHUNK), strict=True):
                if self.hessian == "kron":
                    out, curv = self._accumulate_kron(curv, xc)
                else:
                    out, jac = self._jacobians(xc, theta)
                    curv = self._accumulate(curv, out, jac)
                self._data_terms(stats, xc, yc, out)
                grad = self._loglik_grad(xc, yc, theta) + (0 if grad is None else grad)
        if curv is None:
            raise ValueError("Expected at least one minibatch of data, but got none.")
        if self.hessian == "kron":
            curv = self._kron_eigen(curv, stats["n"])
        self._fitted = {
            "theta": theta,
            "sigma0": self._sigma(theta).detach().reshape(()),
            **{
                k: torch.tensor(v, dtype=theta.dtype, device=theta.device) for k, v in stats.items()
            },
            **(curv if isinstance(curv, dict) else {"ggn": curv}),
            "grad": cast(Tensor, grad),
        }
        params = dict(self.model.net.named_parameters())
        self._held = {
            self.model.site_name(n): params[n].detach().clone()
            for n in self.model.random_names
            if n not in self.names
        }
        self._cache = None  # a new fit: new terms
        return self

    def _accumulate(self, curv: Any, out: Tensor, jac: Tensor) -> Any:
        h = self._output_hessian(out)
        if self.hessian == "full":
            g = torch.einsum("nkp,nkl,nlq->pq", jac, h, jac)
        else:
            g = torch.einsum("nkp,nkl,nlp->p", jac, h, jac)
        return g if curv is None else curv + g

    def _layers(self) -> list[str]:
        """Names of the ``nn.Linear``/``nn.Conv2d`` modules owning subset tensors, in order."""
        return list(dict.fromkeys(n.rpartition(".")[0] for n in self.names))

    def _layer_io(self, x: Tensor) -> tuple[dict[str, Tensor], dict[str, torch.Size]]:
        """Each KFAC layer's input patches ``(B, P, T)`` and per-example output shape."""
        net, patches, shapes = self.model.net, {}, {}

        def record(name: str) -> Callable:
            def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
                patches[name] = _patches(name, module, args[0].detach(), len(x))
                shapes[name] = output.shape[1:]

            return hook

        handles = [net.get_submodule(n).register_forward_hook(record(n)) for n in self._layers()]
        try:
            with torch.no_grad():
                net(x)
        finally:
            for h in handles:
                h.remove()
        return patches, shapes

    def _accumulate_kron(self, curv: Any, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Add one chunk's ``Σ_t a aᵀ``, ``Σ_t gᵀ H g / T`` and the exact bias blocks per layer;
        return the outputs ``(B, K)`` too."""
        net, layers = self.model.net, self._layers()

        def perturb(eps: dict[str, Tensor], name: str) -> Callable:
            def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
                return output + eps[name]

            return hook

        def f(eps: dict[str, Tensor], xi: Tensor) -> tuple[Tensor, Tensor]:
            handles = [net.get_submodule(n).register_forward_hook(perturb(eps, n)) for n in layers]
            try:
                out = net(xi.unsqueeze(0)).reshape(-1)
            finally:
                for h in handles:
                    h.remove()
            return out, out

        p = next(net.parameters())
        with self.model.side_effect_free():
            patches, shapes = self._layer_io(x)
            zero = {n: torch.zeros(shapes[n], dtype=p.dtype, device=p.device) for n in layers}
            back, out = vmap(jacrev(f, has_aux=True), in_dims=(None, 0))(zero, x)
        hess = self._output_hessian(out.detach())
        curv = {} if curv is None else curv
        for n in layers:
            a = patches[n]  # (B, P, T)
            g = back[n].detach().reshape(len(x), out.shape[1], shapes[n][0], -1)  # (B, K, o, T)
            gs = g.sum(-1)
            terms = {
                "G": torch.einsum("nkot,nkl,nlpt->op", g, hess, g) / g.shape[-1],
                "A": torch.einsum("nit,njt->ij", a, a),
                "B": torch.einsum("nko,nkl,nlp->op", gs, hess, gs),  # the bias block, exact
            }
            for k, v in terms.items():
                key = f"{k}.{n}"
                curv[key] = v if key not in curv else curv[key] + v
        return out.detach(), curv

    def _kron_eigen(self, curv: dict[str, Tensor], n: float) -> dict[str, Tensor]:
        """Eigenvectors per layer and the GGN's eigenvalues ``(d,)`` in their basis."""
        fitted: dict[str, Tensor] = {}
        eig = []
        for layer in self._layers():
            g, a, b = curv[f"G.{layer}"], curv[f"A.{layer}"] / n, curv[f"B.{layer}"]
            e_g, fitted[f"qg.{layer}"] = torch.linalg.eigh(g)
            e_a, fitted[f"qa.{layer}"] = torch.linalg.eigh(a)  # A = E_n[Σ_t a aᵀ], the mean
            e_b, fitted[f"qb.{layer}"] = torch.linalg.eigh(b)
            fitted[f"kronG.{layer}"], fitted[f"kronA.{layer}"] = g, a
            for name in self.names:
                if name.rpartition(".")[0] != layer:
                    continue
                if len(self.shapes[name]) == 1:  # the bias: its exact GGN block
                    eig.append(e_b.clamp_min(0))
                else:
                    eig.append(torch.outer(e_g, e_a).clamp_min(0).reshape(-1))
        fitted["ggn"] = torch.cat(eig)
        return fitted

    def _rotate(self, v: Tensor, back: bool = False) -> Tensor:
        """``(..., d)`` vectors into (``back``: out of) the KFAC eigenbasis; others unchanged."""
        if self.hessian != "kron":
            return v
        fit, parts = self.fitted, []
        for name, part in zip(self.names, v.split(self.sizes, dim=-1), strict=True):
            layer = name.rpartition(".")[0]
            if len(self.shapes[name]) == 1:
                q_b = fit[f"qb.{layer}"]
                parts.append(part @ (q_b.T if back else q_b))
                continue
            q_g, q_a = fit[f"qg.{layer}"], fit[f"qa.{layer}"]
            w = part.reshape(part.shape[:-1] + (len(q_g), len(q_a)))
            w = q_g @ w @ q_a.T if back else q_g.T @ w @ q_a
            parts.append(w.reshape(part.shape))
        return torch.cat(parts, -1)

    def _data_terms(self, stats: dict[str, float], x: Tensor, y: Tensor, out: Tensor) -> None:
        f = out.reshape((len(x),) + self.model.probe_output(x))
        stats["n"] += len(x)
        if self.kind == "gaussian":
            target = self.likelihood.check_target(y, f)
            r = target.reshape(len(x), -1) - out
            stats["rss"] += float((r**2).sum())
            stats["n_obs"] += r.numel()
        else:
            target = self.likelihood.check_target(y, f)
            stats["nll"] -= float(self.likelihood.log_density(f, target).sum())

    def _sigma(self, like: Tensor) -> Tensor:
        if self.kind != "gaussian":
            return torch.ones((), dtype=like.dtype, device=like.device)
        return cast(HomoskedasticGaussian, self.likelihood).noise_scale(like).detach()

    @property
    def fitted(self) -> dict[str, Tensor]:
        """The fitted statistics (MAP, curvature, data terms).

        :raises RuntimeError: before :meth:`fit`.
        """
        if self._fitted is None:
            raise RuntimeError("Expected a fitted Laplace, but fit(x, y) was not called yet.")
        return self._fitted

    # ------------------------------------------------------------------ the Gaussian
    def _expand(self, per_tensor: Tensor) -> Tensor:
        sizes = torch.tensor(self.sizes, device=per_tensor.device)
        return per_tensor.repeat_interleave(sizes)

    def _terms(self, prior_precision: Tensor, sigma: Tensor) -> dict[str, Tensor]:
        """Posterior mean, precision factor, log det and evidence at these hyperparameters."""
        fit = self.fitted
        theta = fit["theta"]
        lam = self._expand(prior_precision)
        lam0 = self._expand(self.prior_precision0)
        noise = sigma**-2 if self.kind == "gaussian" else torch.ones_like(sigma)
        s = (fit["sigma0"] / sigma) ** 2 if self.kind == "gaussian" else torch.ones_like(sigma)
        # the Gauss-Newton step to (Λ, σ) assumes θ* stationary at (Λ0, σ0); from weights that
        # are not (a MAP fit stopped early) it is unbounded as Λ -> 0, so they stay fixed
        c = (lam - s * lam0) * theta if self.stationary else torch.zeros_like(theta)
        if self.hessian == "full":
            a = noise * fit["ggn"] + torch.diag(lam)
            chol = torch.linalg.cholesky(a)
            w = torch.cholesky_solve(c.unsqueeze(-1), chol).squeeze(-1)
            logdet = 2 * chol.diagonal().log().sum()
            factor = chol
        else:
            a = noise * fit["ggn"] + lam
            w = self._rotate(self._rotate(c) / a, back=True)
            logdet = a.log().sum()
            factor = a
        if self.kind == "gaussian":
            nll = fit["n_obs"] * (sigma.log() + 0.5 * math.log(2 * math.pi)) + fit["rss"] / (
                2 * sigma**2
            )
        else:
            nll = fit["nll"]
        log_z = (
            -nll
            - 0.5 * (lam * theta**2).sum()
            + 0.5 * (c * w).sum()
            + 0.5 * lam.log().sum()
            - 0.5 * logdet
        )
        return {"mean": theta - w, "factor": factor, "log_z": log_z}

    def _current(self) -> dict[str, Tensor]:
        """The terms at the current prior precision and noise (recomputed when they change)."""
        theta = self.fitted["theta"]
        sigma = self._sigma(theta)
        key = (*self.prior_precision.tolist(), float(sigma))
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self._terms(self.prior_precision, sigma))
        return self._cache[1]

    @property
    def mean(self) -> Tensor:
        """Posterior mean ``(d,)`` of the subset's weights, flattened in network order."""
        return self._current()["mean"]

    @property
    def posterior_precision(self) -> Tensor:
        """``(d, d)`` (``"full"``; ``"kron"``: dense from its blocks, for inspection) or ``(d,)``
        (``"diag"``) posterior precision :math:`A`."""
        factor = self._current()["factor"]
        if self.hessian == "kron":
            basis = self._rotate(torch.eye(factor.numel()).to(factor), back=True)
            return basis.T @ (factor.unsqueeze(-1) * basis)
        return factor @ factor.T if self.hessian == "full" else factor

    @property
    def posterior_covariance(self) -> Tensor:
        """``(d, d)`` (``"full"``, ``"kron"``) or ``(d,)`` (``"diag"``: the marginal variances)."""
        factor = self._current()["factor"]
        if self.hessian == "kron":
            basis = self._rotate(torch.eye(factor.numel()).to(factor), back=True)
            return basis.T @ (basis / factor.unsqueeze(-1))
        return torch.cholesky_inverse(factor) if self.hessian == "full" else 1 / factor

    def log_marginal_likelihood(
        self,
        prior_precision: float | Tensor | None = None,
        sigma: float | Tensor | None = None,
    ) -> Tensor:
        """The Laplace log evidence (see the module's docstring), differentiable in its inputs.

        :param prior_precision: a float or one per subset tensor (default: the current ones).
        :param sigma: the Gaussian noise scale (default: the likelihood's current one).
        :return: a scalar tensor.

        Example::

            >>> [float(lap.log_marginal_likelihood(lam)) for lam in (0.1, 1.0, 10.0)]
            ... # doctest: +SKIP
        """
        theta = self.fitted["theta"]
        lam = self.prior_precision if prior_precision is None else prior_precision
        lam = torch.as_tensor(lam, dtype=theta.dtype, device=theta.device)
        lam = lam.expand(len(self.names)) if lam.dim() == 0 else lam
        sig = self._sigma(theta) if sigma is None else sigma
        sig = torch.as_tensor(sig, dtype=theta.dtype, device=theta.device)
        return self._terms(lam, sig)["log_z"]

    def optimize_prior(
        self,
        *,
        per_layer: bool = False,
        noise: bool | None = None,
        steps: int = 500,
        lr: float = 0.1,
    ) -> Laplace:
        """Maximise :meth:`log_marginal_likelihood` over the prior precision (and noise).

        Adam on the logarithms, its learning rate decaying exponentially to ``lr / 100`` over
        the ``steps``.

        :param per_layer: one precision per subset tensor (else one for all).
        :param noise: also tune the Gaussian noise scale (default: when the likelihood's scale
            is learned, ``HomoskedasticGaussian(scale=None)``); the optimum is written into the
            likelihood, so ``bnn.predict`` uses it.
        :return: ``self``.
        :raises ValueError: ``noise=True`` with a fixed or no noise scale.

        Example::

            >>> lap.optimize_prior(per_layer=True).prior_precision  # doctest: +SKIP
            tensor([0.8032, 1.9010])
        """
        steps = positive_int("steps", steps)
        lr = check_float("lr", lr)
        theta = self.fitted["theta"]
        learned = self.kind == "gaussian" and self.likelihood.fixed_scale is None
        noise = learned if noise is None else noise
        if noise and not learned:
            raise ValueError(
                "Expected a Gaussian likelihood with a learned scale "
                "(HomoskedasticGaussian(scale=None)) to tune the noise, but got "
                f"{self.likelihood!r}; pass noise=False or build it with scale=None."
            )
        init = self.prior_precision.log()
        log_lam = (init if per_layer else init.mean().reshape(1)).clone().requires_grad_(True)
        log_sig = self._sigma(theta).log().clone().requires_grad_(noise)
        params = [log_lam] + ([log_sig] if noise else [])
        opt = torch.optim.Adam(params, lr=lr)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.01 ** (1 / max(steps, 1)))
        for _ in range(steps):
            opt.zero_grad()
            lam = log_lam.exp().expand(len(self.names))
            loss = -self._terms(lam, log_sig.exp())["log_z"]
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            self.prior_precision = log_lam.exp().expand(len(self.names)).clone()
            if noise:
                self._set_noise(log_sig.exp())
        return self

    def _set_noise(self, sigma: Tensor) -> None:
        raw = cast(Tensor, self.likelihood.scale_unconstrained)
        raw.copy_(transform_to(constraints.positive).inv(sigma.to(raw)))

    # ------------------------------------------------------------------ draws
    def sample(self, num: int, *, offset: int = 0) -> Draws:
        """``num`` fresh joint draws of every weight site (``offset`` is ignored).

        Subset sites are drawn from the Gaussian, the model's other weight sites are held at
        their MAP values.

        :return: :class:`~pyro_bdl.inference.Draws` ``{site: (num, *shape)}``.

        Example::

            >>> lap.sample(10).sites["0.weight"].shape  # (S, *shape)  # doctest: +SKIP
            torch.Size([10, 50, 1])
        """
        num = positive_int("num", num)
        cur = self._current()
        mean, factor = cur["mean"], cur["factor"]
        z = torch.randn((num, mean.numel()), dtype=mean.dtype, device=mean.device)
        if self.hessian == "full":
            eps = torch.linalg.solve_triangular(factor.T, z.T, upper=True).T
        else:
            eps = self._rotate(z / factor.sqrt(), back=True)
        drawn = self._unflatten(mean + eps)
        sites = {self.model.site_name(n): v for n, v in drawn.items()}
        sites.update({k: v.expand((num,) + v.shape) for k, v in self._held.items()})
        return Draws({s: sites[s] for s in self.model.site_names})

    # ------------------------------------------------------------------ linearised predictive
    def glm_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Mean ``(N, K)`` and covariance ``(N, K, K)`` of the linearised outputs.

        :math:`f(x) \approx f_{\theta^*}(x) + J(x)(\mu - \theta^*)`, covariance
        :math:`J(x)\,\Sigma\,J(x)^\top` (``K`` the flattened per-datum output size).

        Example::

            >>> mean, cov = lap.glm_moments(x_test)  # (N, K), (N, K, K)  # doctest: +SKIP
        """
        x, _ = self.model.check_data(as_tensor("x", x, self.model.net))
        fit, cur = self.fitted, self._current()
        means, covs = [], []
        for xc in x.split(JACOBIAN_CHUNK):
            out, jac = self._jacobians(xc, fit["theta"])
            means.append(out + jac @ (cur["mean"] - fit["theta"]))
            if self.hessian == "full":
                w = torch.linalg.solve_triangular(cur["factor"], jac.transpose(-1, -2), upper=False)
                covs.append(w.transpose(-1, -2) @ w)
            else:
                jac = self._rotate(jac)
                covs.append(torch.einsum("nkp,p,nlp->nkl", jac, 1 / cur["factor"], jac))
        return torch.cat(means), torch.cat(covs)

    def predict_glm(
        self, x: Tensor, *, num_samples: int = 100, link: str = "mc", seed: int | None = None
    ) -> Prediction:
        r"""The linearised (GLM) predictive: :math:`f \sim \mathcal N(m(x), J\Sigma J^\top)`.

        Regression: a Gaussian :class:`~pyro_bdl.uncertainty.Prediction` of two sigma points
        :math:`m \pm \sqrt{\mathrm{diag}(J\Sigma J^\top)}` per output, so that its
        ``decompose()`` is exact: epistemic :math:`\mathrm{diag}(J\Sigma J^\top)`, aleatoric
        :math:`\sigma^2`, mean :math:`m` (its ``log_prob``/``interval`` are those of the
        two-point mixture, not of :math:`\mathcal N(m, v + \sigma^2)`).
        Classification: ``link="mc"`` draws ``num_samples`` outputs from the Gaussian
        (the full output covariance per datum) and maps them through the likelihood;
        ``link="probit"`` is the probit approximation
        :math:`\mathrm{softmax}(m / \sqrt{1 + \pi\,\mathrm{diag}(v)/8})`, one draw (its
        decomposition has no epistemic part).

        :param x: inputs ``(N, ...)``.
        :param num_samples: draws of the ``"mc"`` link.
        :param link: ``"mc"`` or ``"probit"`` (classification only).
        :param seed: if given, the ``"mc"`` draws are reproducible without touching the global
            RNG.
        :return: a :class:`~pyro_bdl.uncertainty.Prediction` with samples ``(2, N, ...)``
            (regression), ``(num_samples, N, C)`` (``"mc"``) or ``(1, N, C)`` (``"probit"``).

        Example::

            >>> lap.predict_glm(x_test).decompose().epistemic.shape  # (N,)  # doctest: +SKIP
            torch.Size([50])
        """
        if link not in ("mc", "probit"):
            raise ValueError(f"Expected link 'mc' or 'probit', but got {link!r}.")
        num_samples = positive_int("num_samples", num_samples)
        seed = check_seed("seed", seed)
        x, _ = self.model.check_data(as_tensor("x", x, self.model.net))
        m, v = (t.detach() for t in self.glm_moments(x))
        shape = (len(x),) + self.model.probe_output(x)
        with torch.no_grad():  # a prediction, not a graph (a learned noise scale needs grad)
            return self._glm_prediction(m, v, shape, num_samples, link, seed)

    def _glm_prediction(
        self, m: Tensor, v: Tensor, shape: tuple[int, ...], num: int, link: str, seed: int | None
    ) -> Prediction:
        num_samples = num
        if self.kind == "gaussian":
            sd = v.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
            f = torch.stack([m + sd, m - sd]).reshape((2,) + shape)
            return self.likelihood.prediction_from_outputs(f, 1)
        if link == "probit":
            var = v.diagonal(dim1=-2, dim2=-1)
            f = (m / (1 + math.pi * var / 8).sqrt()).reshape((1,) + shape)
            return self.likelihood.prediction_from_outputs(f, 1)
        e, q = torch.linalg.eigh(v)  # a square root of a PSD (possibly singular) covariance
        root = q * e.clamp_min(0).sqrt().unsqueeze(-2)
        gen = None if seed is None else torch.Generator(m.device).manual_seed(seed)
        z = torch.randn((num_samples,) + m.shape, dtype=m.dtype, device=m.device, generator=gen)
        f = m + (root @ z.unsqueeze(-1)).squeeze(-1)
        return self.likelihood.prediction_from_outputs(f.reshape((num_samples,) + shape), 1)

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """``(config, tensors)``: plain JSON-able data and named tensors.

        Example::

            >>> config, tensors = lap.to_state()  # doctest: +SKIP
            >>> config["type"], sorted(tensors)[:2]  # doctest: +SKIP
            ('Laplace', ['fit.ggn', 'fit.n'])
        """
        config = {"type": type(self).__name__, "hessian": self.hessian, "subset": self.names}
        tensors = {
            "prior_precision": self.prior_precision,
            "prior_precision0": self.prior_precision0,
        }
        if self._fitted is not None:
            tensors.update({f"fit.{k}": v for k, v in self._fitted.items()})
            tensors.update({f"held.{k}": v for k, v in self._held.items()})
        return config, {k: v.detach().clone() for k, v in tensors.items()}

    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], tensors: Mapping[str, Tensor], bnn: _BNN
    ) -> Laplace:
        """Rebuild from :meth:`to_state` for ``bnn`` (the same model).

        :raises ValueError: for a config of another type.

        Example::

            >>> back = Laplace.from_state(*lap.to_state(), bnn)  # doctest: +SKIP
        """
        if config.get("type") != cls.__name__:
            raise ValueError(
                f"Expected a {cls.__name__} state, but got type {config.get('type')!r}."
            )
        lap = cls(
            bnn,
            config["hessian"],
            list(config["subset"]),
            prior_precision=tensors["prior_precision0"].tolist(),
        )
        lap.prior_precision = tensors["prior_precision"].clone()
        fit = {k[4:]: v.clone() for k, v in tensors.items() if k.startswith("fit.")}
        if fit:
            lap._fitted = fit
            lap._held = {k[5:]: v.clone() for k, v in tensors.items() if k.startswith("held.")}
        return lap

    def __repr__(self) -> str:
        return (
            f"Laplace(hessian={self.hessian!r}, subset={self.names}, "
            f"fitted={self._fitted is not None})"
        )


def _patches(name: str, module: nn.Module, a: Tensor, batch: int) -> Tensor:
    """A KFAC layer's input as ``(B, P, T)``: ``(B, in, 1)`` for Linear, unfolded Conv2d patches
    ``(B, C·kh·kw, positions)`` (in the weight's row-major order).

    :raises ValueError: for a Linear applied to more than one vector per example.
    """
    if isinstance(module, nn.Conv2d):
        conv = module
        return torch.nn.functional.unfold(
            a,
            conv.kernel_size,
            dilation=conv.dilation,
            padding=cast(tuple[int, int], conv.padding),
            stride=conv.stride,
        )
    if a.dim() != 2 or len(a) != batch:
        raise ValueError(
            f"Expected hessian='kron' Linear layers applied once per example (input (N, in)), "
            f"but {name!r} got input of shape {tuple(a.shape)}; use hessian='diag'."
        )
    return a.unsqueeze(-1)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _likelihood_kind(likelihood: Any) -> str:
    if isinstance(likelihood, HomoskedasticGaussian) and likelihood.precision_prior is None:
        return "gaussian"
    if isinstance(likelihood, Categorical):
        return "categorical"
    if isinstance(likelihood, Bernoulli):
        return "bernoulli"
    raise ValueError(
        "Expected a HomoskedasticGaussian (fixed or learned scale, no precision prior), "
        f"Categorical or Bernoulli likelihood for the Laplace approximation, but got "
        f"{likelihood!r}."
    )
