"""Stochastic-gradient MCMC over minibatches of a BNN's model: SGLD and SGHMC.

Both samplers draw from the posterior of the BNN's :class:`~pyro_bdl.model.BayesianModel`
through its potential, estimated on a minibatch ``B`` of the ``N`` data points,

.. math::

    \\tilde U(W) = -\\log p(W) - \\frac{N}{|B|} \\sum_{i \\in B} \\log p(y_i \\mid x_i, W),

and return the kept draws as a :class:`~pyro_bdl.inference.SamplesPosterior` (chains kept, chain
after chain), which predicts (``bnn.predict(x, S, posterior=post)``), decomposes, exports to
ArviZ (``posterior`` group with chains x draws) and serves as a distillation teacher through the
same paths as MCMC draws. Draws of ``pyro.infer.MCMC`` (NUTS, HMC) take the same path through
``SamplesPosterior.from_samples(mcmc, bnn.bayesian_model.latent_shapes(x))``.

Sampled sites are every latent site of the model: the weights the prior selects and, with
``HomoskedasticGaussian(precision_prior=...)``, the noise ``"precision"``. A site with a
constrained support (the precision) is sampled in unconstrained space,
``z = T^{-1}(W)`` with ``T = biject_to(support)``, with the potential
``U(T(z)) - log |det dT/dz|``; its draws are reported in the constrained space.

**Updates** (``lr`` is the step size ``eps``, or a :class:`Cyclical` schedule of it):

* :class:`SGLD` (Welling & Teh 2011): ``W <- W - (eps / 2) grad U~(W) + N(0, eps)``.
* :class:`SGHMC` (Chen, Fox & Guestrin 2014, eq. 15, the practical parameterisation with the
  gradient-noise estimate ``beta_hat = 0``): with momentum ``v`` (started at ``N(0, eta)``),
  learning rate ``eta = lr`` (``= eps^2 M^-1``) and friction ``alpha`` (``= eps M^-1 C``, the
  momentum decay),
  ``v <- (1 - alpha) v - eta grad U~(W) + N(0, 2 alpha eta)``, ``W <- W + v``.
  ``alpha = 1`` is SGLD with step ``2 eta``.

With a :class:`Cyclical` step size (Zhang et al. 2020, cSG-MCMC) the first ``exploration``
fraction of each cycle is an optimisation stage (no injected noise) whose iterates are never
kept; burn-in and thinning count the sampling-stage steps only.

**Counting**: a chain takes ``burn_in`` steps, then keeps the iterate after every ``thin``-th
step until it has ``num_samples`` draws: ``burn_in + thin * num_samples`` steps for a constant
step size, the kept draws being the iterates after steps ``burn_in + thin * j``,
``j = 1 .. num_samples``. The network runs in evaluation mode (dropout off, BatchNorm on its
running statistics). The model's learned point estimates (``pyro.param``: a learned noise
scale, network parameters outside the prior) are not sampled: they stay at their current values
and :class:`~pyro_bdl.inference.FixedParameterWarning` says so, as for NUTS.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

import torch
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to
from torch.distributions.transforms import Transform

from .._checks import check_float, check_seed, positive_int
from ..inference.data import LoaderBatches, TensorBatches, make_batches
from ..inference.posterior import Draws, SamplesPosterior, warn_fixed_parameters
from ..inference.predict import run_model
from ..model import OBS_MEAN, BayesianModel
from ..nn import eval_mode, is_real_support

__all__ = ["SGHMC", "SGLD", "Cyclical"]

Sites = dict[str, torch.Tensor]


class HasModel(Protocol):
    """What the samplers read of a :class:`~pyro_bdl.BNN` (layer 5, not imported here)."""

    bayesian_model: BayesianModel


class Cyclical:
    """Cyclical cosine step size of cSG-MCMC (Zhang et al. 2020, eq. 1).

    At step ``k`` (0-based, counted from a chain's first step, burn-in included), with
    ``r = (k mod L) / L`` the position in the current cycle of ``L = cycle_length`` steps:
    ``lr_k = lr / 2 * (cos(pi r) + 1)``; the step is in the exploration stage (an optimisation
    step: no injected noise, iterate not kept) when ``r < exploration``.

    :param lr: the initial (largest) step size of each cycle.
    :param cycle_length: steps per cycle (``ceil(K / M)`` in the paper: K steps, M cycles).
    :param exploration: the fraction ``beta`` of each cycle spent exploring, in ``[0, 1)``.

    Example::

        >>> sched = Cyclical(0.1, cycle_length=4, exploration=0.5)
        >>> [(round(lr, 4), sampling) for lr, sampling in map(sched, range(5))]
        [(0.1, False), (0.0854, False), (0.05, True), (0.0146, True), (0.1, False)]
    """

    def __init__(self, lr: float, cycle_length: int, exploration: float = 0.0) -> None:
        self.lr = check_float("lr", lr)
        self.cycle_length = positive_int("cycle_length", cycle_length)
        exploration = check_float("exploration", exploration, allow_zero=True)
        if exploration >= 1 or (self.cycle_length - 1) / self.cycle_length < exploration:
            raise ValueError(
                "Expected exploration, the fraction of each cycle without noise, in [0, 1) and "
                f"leaving at least one sampling step in each cycle of {self.cycle_length} steps "
                f"(at most {(self.cycle_length - 1) / self.cycle_length}), but got "
                f"{exploration}: no iterate would ever be kept."
            )
        self.exploration = exploration

    def __call__(self, step: int) -> tuple[float, bool]:
        """``(step size, whether step ``step`` is a sampling-stage step)``."""
        r = (step % self.cycle_length) / self.cycle_length
        return self.lr / 2 * (math.cos(math.pi * r) + 1), r >= self.exploration

    def __repr__(self) -> str:
        return (
            f"Cyclical(lr={self.lr}, cycle_length={self.cycle_length}, "
            f"exploration={self.exploration})"
        )


def _model_of(bnn: Any) -> BayesianModel:
    """The :class:`~pyro_bdl.model.BayesianModel` of a BNN (duck-typed) or the model itself."""
    model = bnn if isinstance(bnn, BayesianModel) else getattr(bnn, "bayesian_model", None)
    if not isinstance(model, BayesianModel):
        raise TypeError(
            "Expected a pyro_bdl.BNN (or its bayesian_model, a pyro_bdl.model.BayesianModel), but "
            f"got {type(bnn).__name__}."
        )
    return model


class _Chain:
    """The state one chain moves: unconstrained leaves ``z`` and their transforms."""

    def __init__(self, z: Sites, transforms: Mapping[str, Transform]) -> None:
        self.z = z
        self.transforms = transforms

    def constrained(self) -> Sites:
        return {k: self.transforms[k](v) for k, v in self.z.items()}

    def log_det(self) -> torch.Tensor | float:
        total: torch.Tensor | float = 0.0
        for k, t in self.transforms.items():
            if t is not _IDENTITY:
                z = self.z[k]
                total = total + t.log_abs_det_jacobian(z, t(z)).sum()
        return total


_IDENTITY = biject_to(torch.distributions.constraints.real)


class _SGMCMC:
    """What SGLD and SGHMC share: the potential, the batches, chains, counting, the draws."""

    name = "SG-MCMC"

    def __init__(
        self, bnn: HasModel | BayesianModel, lr: float | Cyclical, *, init: Any = "net"
    ) -> None:
        self.model = _model_of(bnn)
        self.schedule = lr if isinstance(lr, Cyclical) else Cyclical(check_float("lr", lr), 1)
        self.init = init
        #: steps each chain of the last :meth:`run` took (burn-in and exploration included)
        self.num_steps: list[int] = []

    # ------------------------------------------------------------------ the potential
    def _potential(
        self, values: Sites, x: torch.Tensor, y: torch.Tensor, size: int, traced: bool
    ) -> torch.Tensor:
        """``U~(W)`` on the minibatch ``(x, y)`` of a data set of ``size`` rows (scalar)."""
        model = self.model
        if traced:  # any latent site beside the weights (a noise precision): the Pyro program
            trace = run_model(
                model, Draws({k: v[None] for k, v in values.items()}), x, y, dataset_size=size
            )
            log_joint = trace.log_prob_sum(lambda n, s: not site_is_subsample(s) and n != OBS_MEAN)
            return -cast(torch.Tensor, log_joint)
        priors = model.prior_dists()
        log_prior = sum(priors[n].log_prob(values[model.site_name(n)]) for n in model.random_names)
        with eval_mode(model.net):
            f = model.outputs({k: v[None] for k, v in values.items()}, x, by_site=True)
        log_lik = model.likelihood.log_density(f, y, sample_ndim=1).sum()
        return -(log_prior + log_lik * (size / len(x)))

    # ------------------------------------------------------------------ set-up
    def _initial(
        self, chain: int, shapes: Mapping[str, torch.Size], priors: Mapping[str, Any]
    ) -> Sites:
        """A chain's starting point (constrained values), from ``init``."""
        init = self.init
        if isinstance(init, Sequence) and not isinstance(init, str):
            if len(init) == 0:
                raise ValueError("Expected one init dict per chain, but got an empty list.")
            init = init[chain % len(init)]
        if isinstance(init, Mapping):
            missing = [s for s in shapes if s not in init]
            if missing:
                raise ValueError(
                    f"Expected init to give every latent site {sorted(shapes)}, but it lacks "
                    f"{missing}."
                )
            p = next(self.model.net.parameters())
            return {
                s: torch.as_tensor(init[s], dtype=p.dtype, device=p.device).reshape(shapes[s])
                for s in shapes
            }
        if init == "prior":
            return {s: priors[s].sample() for s in shapes}
        if init != "net":
            raise ValueError(
                "Expected init='net' (the network's current weights), 'prior' (a prior draw per "
                f"chain), a dict {{site: tensor}} or a list of them, but got {init!r}."
            )
        params = dict(self.model.net.named_parameters())
        out = {}
        for s, shape in shapes.items():
            name = s[len(self.model.prefix) :]
            if s.startswith(self.model.prefix) and name in params:
                out[s] = params[name].detach().clone()
            else:  # a latent beyond the weights (a noise precision): the prior's mean
                mean = priors[s].mean
                if not torch.isfinite(mean).all():
                    raise ValueError(
                        f"Expected a finite prior mean to start site {s!r} at, but got {mean}; "
                        "pass init={site: value} or init='prior'."
                    )
                out[s] = mean.expand(shape).clone()
        return out

    def _site_priors(self, x: torch.Tensor) -> dict[str, Any]:
        """``{latent site: prior distribution}``, read from one prior run of the model."""
        from pyro import poutine

        model = self.model
        with model.side_effect_free(), torch.no_grad(), poutine.block():
            trace = poutine.trace(model).get_trace(x[:1].expand(2, *x.shape[1:]))
        shapes = model.latent_shapes(x)
        return {s: trace.nodes[s]["fn"] for s in shapes}

    # ------------------------------------------------------------------ the loop
    def _batches(self, data: TensorBatches | LoaderBatches, g: torch.Generator) -> Iterator[Any]:
        while True:
            yield from data.epoch(g)

    def _update(
        self, chain: _Chain, grads: Sites, lr: float, noise: bool, state: Sites, g: torch.Generator
    ) -> None:
        """One step of the sampler, in place on ``chain.z`` (``state``: e.g. the momentum)."""
        raise NotImplementedError

    def _run_chain(
        self,
        chain_index: int,
        data: TensorBatches | LoaderBatches,
        counts: tuple[int, int, int],
        priors: Mapping[str, Any],
        g: torch.Generator,
    ) -> Sites:
        """One chain's kept draws ``{site: (num_samples, *shape)}``."""
        num_samples, burn_in, thin = counts
        shapes = {s: torch.Size(d.event_shape) for s, d in priors.items()}
        transforms = {
            s: _IDENTITY if is_real_support(d.support) else biject_to(d.support)
            for s, d in priors.items()
        }
        start = self._initial(chain_index, shapes, priors)
        z = {  # own copies: the steps are in place, a user's init stays as it is
            s: transforms[s].inv(v).detach().clone().requires_grad_(True) for s, v in start.items()
        }
        chain, state = _Chain(z, transforms), cast(Sites, {})
        traced = set(shapes) != set(self.model.site_names)
        kept: list[Sites] = []
        counted = step = 0
        batches = self._batches(data, g)
        while len(kept) < num_samples:
            lr, sampling = self.schedule(step)
            xb, yb = next(batches)
            u = self._potential(chain.constrained(), xb, yb, data.size, traced) - chain.log_det()
            grads = dict(zip(z, torch.autograd.grad(u, list(z.values())), strict=True))
            if not torch.isfinite(u) or not all(torch.isfinite(v).all() for v in grads.values()):
                raise FloatingPointError(
                    f"Expected a finite potential and gradient, but {self.name} chain "
                    f"{chain_index} got U = {u.item():.4g} at step {step} (step size {lr:.3g}): "
                    "the chain diverged. Lower lr, or start nearer the posterior (init='net' "
                    "after a fit)."
                )
            with torch.no_grad():
                self._update(chain, grads, lr, sampling, state, g)
            step += 1
            if sampling:
                counted += 1
                if counted > burn_in and (counted - burn_in) % thin == 0:
                    kept.append({k: v.detach().clone() for k, v in chain.constrained().items()})
        self.num_steps.append(step)
        return {s: torch.stack([d[s] for d in kept]) for s in shapes}

    def _noise(self, like: torch.Tensor, std: float, g: torch.Generator) -> torch.Tensor:
        e = torch.randn(like.shape, generator=g, dtype=like.dtype, device="cpu")
        return e.to(like.device) * std

    def run(
        self,
        x: Any,
        y: Any = None,
        *,
        num_samples: int,
        burn_in: int = 0,
        thin: int = 1,
        batch_size: int | None = None,
        num_chains: int = 1,
        seed: int | None = None,
    ) -> SamplesPosterior:
        """Run ``num_chains`` chains one after the other; their kept draws.

        :param x: inputs ``(N, ...)``, or a ``DataLoader`` of ``(x, y)`` batches (``y=None``;
            it owns the order of the batches, so only the injected noise follows ``seed``).
        :param y: targets ``(N, ...)``.
        :param num_samples: draws kept per chain (D).
        :param burn_in: (sampling-stage) steps discarded at the start of each chain.
        :param thin: keep every ``thin``-th iterate after the burn-in.
        :param batch_size: minibatch size B (default: all N, full-batch gradients).
        :param num_chains: chains C, each from its own start (``init``) and noise stream.
        :param seed: seed of the minibatch order and the injected noise (default: drawn from
            torch's global random stream, which is otherwise left untouched).
        :return: a :class:`~pyro_bdl.inference.SamplesPosterior` of ``C * D`` draws,
            ``chains=C``, of every latent site ``{site: (C * D, *shape)}``.
        :raises FloatingPointError: when a chain diverges (non-finite potential or gradient).
        :raises ValueError, TypeError: for bad counts, data or ``init``.
        :raises FixedParameterWarning: (a warning) when the model has learned ``pyro.param``
            point estimates, which stay fixed.
        """
        counts = (
            positive_int("num_samples", num_samples),
            _non_negative_int("burn_in", burn_in),
            positive_int("thin", thin),
        )
        num_chains = positive_int("num_chains", num_chains)
        seed = check_seed("seed", seed, optional=True)
        model = self.model

        def check(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if b is None:
                raise ValueError(f"Expected targets y for {self.name}, but got None.")
            a, b = model.check_data(a, b)
            return a, cast(torch.Tensor, b)

        data = make_batches(x, y, batch_size, True, check)
        x_example, _ = data.example()
        warn_fixed_parameters(model, x_example, stacklevel=2)
        priors = self._site_priors(x_example)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), device="cpu"))
        self.num_steps = []
        chains = []
        for c in range(num_chains):
            g = torch.Generator(device="cpu").manual_seed(seed + c)
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(seed + c)  # init='prior' draws
                chains.append(self._run_chain(c, data, counts, priors, g))
        flat = {s: torch.cat([ch[s] for ch in chains]) for s in priors}
        return SamplesPosterior(flat, chains=num_chains)


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Expected {name} to be a non-negative int, but got {value!r}.")
    return value


class SGLD(_SGMCMC):
    """Stochastic-gradient Langevin dynamics (Welling & Teh 2011) over the BNN's model.

    Update, with step size ``eps = lr`` (or a :class:`Cyclical` schedule; no noise in its
    exploration stage): ``W <- W - (eps / 2) grad U~(W) + N(0, eps)``, ``U~`` the minibatch
    potential of the module docstring. The stationary law is the posterior up to an
    ``O(eps)`` discretisation bias (for a Gaussian posterior of precision ``lam``, variances
    come out ``1 / (1 - eps lam / 4)`` times too large): choose ``eps`` well below
    ``1 / lam_max``.

    :param bnn: a :class:`~pyro_bdl.BNN` (its ``bayesian_model`` is used) or a
        :class:`~pyro_bdl.model.BayesianModel`.
    :param lr: the step size ``eps``, or a :class:`Cyclical` schedule.
    :param init: where chains start: ``"net"`` (the network's current weights, e.g. after a MAP
        fit, other latent sites at their prior mean), ``"prior"`` (a prior draw per chain), a
        dict ``{site: value}`` or a list of them (one per chain, cycled).

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl import BNN
        >>> from pyro_bdl.likelihoods import HomoskedasticGaussian
        >>> x = torch.randn(20, 2); y = x.sum(-1)
        >>> bnn = BNN(torch.nn.Linear(2, 1), dist.Normal(0., 1.), HomoskedasticGaussian(0.5))
        >>> post = SGLD(bnn, lr=1e-3).run(x, y, num_samples=50, burn_in=100, thin=2,
        ...                               num_chains=2, seed=0)
        >>> post.num_draws, post.chains, post.samples["weight"].shape
        (100, 2, torch.Size([100, 1, 2]))
        >>> bnn.predict(x[:3], 100, posterior=post).samples.shape
        torch.Size([100, 3])
    """

    name = "SGLD"

    def _update(
        self, chain: _Chain, grads: Sites, lr: float, noise: bool, state: Sites, g: torch.Generator
    ) -> None:
        for k, z in chain.z.items():
            z.sub_(grads[k], alpha=lr / 2)
            if noise:
                z.add_(self._noise(z, math.sqrt(lr), g))


class SGHMC(_SGMCMC):
    """Stochastic-gradient Hamiltonian Monte Carlo (Chen, Fox & Guestrin 2014) over the model.

    The practical parameterisation of the paper's eq. 15, with the gradient-noise estimate
    ``beta_hat = 0``: learning rate ``eta = lr`` (``eps^2 M^-1``), friction ``alpha``
    (``eps M^-1 C``, the momentum decay per step), momentum ``v`` started at ``N(0, eta)``::

        v <- (1 - alpha) v - eta grad U~(W) + N(0, 2 alpha eta)
        W <- W + v

    (no noise in a :class:`Cyclical` schedule's exploration stage: momentum SGD). Near critical
    damping, ``alpha ~ 2 sqrt(eta lam)`` for a posterior precision ``lam``, mixes fastest; the
    paper suggests ``alpha`` in 0.01 .. 0.1 for neural networks.

    :param bnn: a :class:`~pyro_bdl.BNN` or a :class:`~pyro_bdl.model.BayesianModel`.
    :param lr: the learning rate ``eta``, or a :class:`Cyclical` schedule of it.
    :param alpha: the friction, in ``(0, 1]``.
    :param init: where chains start (see :class:`SGLD`).

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl import BNN
        >>> from pyro_bdl.likelihoods import HomoskedasticGaussian
        >>> x = torch.randn(20, 2); y = x.sum(-1)
        >>> bnn = BNN(torch.nn.Linear(2, 1), dist.Normal(0., 1.), HomoskedasticGaussian(0.5))
        >>> sampler = SGHMC(bnn, lr=Cyclical(1e-3, cycle_length=50, exploration=0.2), alpha=0.2)
        >>> post = sampler.run(x, y, num_samples=40, batch_size=10, seed=0)
        >>> post.num_draws, sampler.num_steps  # 40 sampling-stage steps per 50-step cycle
        (40, [50])
    """

    name = "SGHMC"

    def __init__(
        self,
        bnn: HasModel | BayesianModel,
        lr: float | Cyclical,
        *,
        alpha: float = 0.1,
        init: Any = "net",
    ) -> None:
        super().__init__(bnn, lr, init=init)
        alpha = check_float("alpha", alpha)
        if alpha > 1:
            raise ValueError(f"Expected the friction alpha in (0, 1], but got {alpha}.")
        self.alpha = alpha

    def _update(
        self, chain: _Chain, grads: Sites, lr: float, noise: bool, state: Sites, g: torch.Generator
    ) -> None:
        a = self.alpha
        if not state:  # the momentum's first draw, N(0, eta)
            state.update({k: self._noise(z, math.sqrt(lr), g) for k, z in chain.z.items()})
        for k, z in chain.z.items():
            v = state[k]
            v.mul_(1 - a).sub_(grads[k], alpha=lr)
            if noise:
                v.add_(self._noise(z, math.sqrt(2 * a * lr), g))
            z.add_(v)
