"""Deep ensembles: K point estimates from independent initialisations, and mixtures of guides.

:class:`DeepEnsemble` trains K copies of the user's network (Lakshminarayanan, Pritzel &
Blundell 2017), each from its own initialisation and minibatch order, through the package's one
fit loop (:func:`pyro_bdl.inference.loop.fit_model`) with a point-mass guide (Pyro's
``AutoDelta``): ``objective="map"`` maximises log p(y | W) + log p(W) under the BNN's prior,
``objective="ml"`` the log-likelihood alone (the prior is replaced by an improper flat one, so
the step's "KL" term is exactly 0). With a
:class:`~pyro_bdl.likelihoods.HeteroskedasticGaussian` likelihood each member predicts a mean and
a variance, as in the paper. The fitted ensemble is a posterior of K draws (a
:class:`~pyro_bdl.inference.SamplesPosterior` of the members): prediction is the uniform mixture
of the members' predictive distributions, and its epistemic part their disagreement.

:class:`GuideMixture` is the ensemble of K variational posteriors: a uniform mixture of fitted
guides (or any posteriors that draw afresh), drawn round-robin.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol, cast

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoDelta
from torch import nn

from .._checks import check_seed, positive_int
from ..inference.callbacks import Callback
from ..inference.data import LoaderBatches, TensorBatches, make_batches
from ..inference.loop import FitOptions, FitResult, fit_model
from ..inference.optim import make_optim
from ..inference.posterior import Draws, Posterior, SamplesPosterior
from ..model import BayesianModel
from ..nn import init_to_net
from ..priors import CallablePrior, Prior

__all__ = ["DeepEnsemble", "GuideMixture", "OBJECTIVES", "PointFit", "fit_point_estimate"]

#: the point estimates a member can be: maximum a posteriori, or maximum likelihood
OBJECTIVES = ("map", "ml")


class HasModel(Protocol):
    """What the posteriors read of a :class:`~pyro_bdl.BNN`: its Pyro program."""

    bayesian_model: BayesianModel


def _flat_prior(name: str, param: torch.Tensor) -> Any:
    """An improper flat prior over a weight (log density 0 everywhere): maximum likelihood."""
    return pyro.distributions.ImproperUniform(constraints.real, (), param.shape)


def check_point_model(model: BayesianModel, x: torch.Tensor) -> None:
    """Refuse a model with learned point estimates (``pyro.param``) beside its latent sites.

    A member or a SWAG iterate is a joint value of the model's latent sites (the weights, and a
    ``"precision"`` if the likelihood has a prior on it); a learned noise scale or a network
    parameter outside the prior would be one value per member that a draw cannot carry.

    :raises ValueError: naming the parameters and the fixes.

    Example::

        >>> check_point_model(bnn.bayesian_model, x)  # doctest: +SKIP
    """
    with model.side_effect_free(), torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(x[:1].expand(2, *x.shape[1:]))
    params = [name for name, site in trace.nodes.items() if site["type"] == "param"]
    if params:
        raise ValueError(
            "Expected a model whose only unknowns are its latent sites, but it has learned point "
            f"estimates {params} (pyro.param), which one joint draw per member cannot carry. "
            "Fix the noise scale (HomoskedasticGaussian(scale=0.1)), give it a prior "
            "(HomoskedasticGaussian(precision_prior=dist.Gamma(1.0, 0.01))) or predict it "
            "(HeteroskedasticGaussian()); put every network parameter under the prior."
        )


class PointFit:
    """One point estimate of a model's latent sites, fitted by the one fit loop.

    :ivar values: ``{site name: tensor (*site shape)}``, constrained (a ``"precision"`` > 0).
    :ivar history: the fit's :class:`~pyro_bdl.FitResult` (its ``kl`` is ``-log p(W)`` for a
        MAP fit, 0 for maximum likelihood).

    Example::

        >>> PointFit({"w": torch.zeros(2)}, FitResult(dataset_size=1)).values["w"].shape
        torch.Size([2])
    """

    def __init__(self, values: dict[str, torch.Tensor], history: FitResult) -> None:
        self.values = values
        self.history = history


def fit_point_estimate(
    model: BayesianModel,
    net: nn.Module,
    data: TensorBatches | LoaderBatches,
    *,
    objective: str = "map",
    optim: pyro.optim.PyroOptim | None = None,
    options: FitOptions | None = None,
    callbacks: Sequence[Callback] = (),
    read: Callable[[Callable[[], dict[str, torch.Tensor]]], None] | None = None,
) -> PointFit:
    """Fit a point estimate of ``model``'s latent sites on the network ``net`` (a copy of the
    model's, with its own initial values), through :func:`~pyro_bdl.inference.loop.fit_model`.

    The guide is ``AutoDelta`` started at ``net``'s values (a point mass: the negative ELBO is
    ``-log p(y | W) - log p(W)``, the MAP objective; with ``objective="ml"`` the prior over the
    weights is flat, ``-log p(y | W)``). The fit runs in a scope of Pyro's param store of its
    own, so that members never share parameters and the user's store is left as it was;
    ``fit_model`` seeds torch with ``options.seed`` (the minibatch order, too).

    :param model: the BNN's :class:`~pyro_bdl.model.BayesianModel` (its prior, likelihood,
        prefix).
    :param net: the network to fit (same parameter names and shapes as ``model.net``).
    :param data: the minibatches (:func:`~pyro_bdl.inference.data.make_batches`).
    :param objective: ``"map"`` or ``"ml"``.
    :param optim: a ``pyro.optim`` optimiser (default ``pyro.optim.Adam({"lr": 1e-3})``).
    :param options: epochs, seed, mode (the estimator is always Pyro's traced one).
    :param callbacks: fit-loop callbacks.
    :param read: called once before the fit with a function returning the current point
        estimate ``{site: tensor}`` (a collector's hook, e.g. SWAG's).
    :return: a :class:`PointFit`.

    Example::

        >>> data = make_batches(x, y, None, True, bnn.bayesian_model.check_pair)  # doctest: +SKIP
        >>> fit = fit_point_estimate(bnn.bayesian_model, copy.deepcopy(bnn.net), data,
        ...                          options=FitOptions(epochs=100, seed=0))  # doctest: +SKIP
    """
    if objective not in OBJECTIVES:
        raise ValueError(
            f"Expected objective in {OBJECTIVES} ('map': under the BNN's prior, 'ml': maximum "
            f"likelihood), but got {objective!r}."
        )
    prior: Prior = model.prior if objective == "map" else CallablePrior(_flat_prior)
    member = BayesianModel(
        net, prior, model.likelihood, prefix=model.prefix, name=f"{model.name}.point"
    )
    if member.random_names != model.random_names:
        raise ValueError(
            f"Expected a network with the random parameters {model.random_names}, but got "
            f"{member.random_names}."
        )
    options = replace(options or FitOptions(), estimator="traced")
    options.validate()
    with pyro.get_param_store().scope():
        guide = AutoDelta(member, init_loc_fn=init_to_net)

        def current() -> dict[str, torch.Tensor]:
            with torch.no_grad():
                median = cast(Callable[[], dict[str, torch.Tensor]], guide.median)()
                return {k: v.detach().clone() for k, v in median.items()}

        if read is not None:
            read(current)
        state = fit_model(
            member, guide, data, make_optim(1e-3, optim), options, callbacks=callbacks
        )
        values = current()
    return PointFit(values, state.history)


def reinitialised(net: nn.Module, seed: int) -> nn.Module:
    """A deep copy of ``net`` with every submodule's ``reset_parameters()`` run under ``seed``
    (torch's global random stream is left as it was).

    :raises ValueError: if no submodule has ``reset_parameters`` (pass ``make_net=``).

    Example::

        >>> a, b = reinitialised(nn.Linear(2, 1), 0), reinitialised(nn.Linear(2, 1), 0)
        >>> torch.equal(a.weight, b.weight)
        True
    """
    copied = copy.deepcopy(net)
    resettable = [m for m in copied.modules() if callable(getattr(m, "reset_parameters", None))]
    if not resettable:
        raise ValueError(
            f"Expected a network whose modules have reset_parameters(), but {type(net).__name__} "
            "has none; pass make_net=lambda: MyNet(...) to build each member."
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in resettable:
            cast(Any, m).reset_parameters()
    return copied


class DeepEnsemble:
    """K point estimates from independent initialisations; predicts as their uniform mixture.

    Member k starts from the BNN's network re-initialised under ``seeds[k]`` (each submodule's
    ``reset_parameters()``) or from ``make_net()`` called under that seed, and is fitted with
    ``seeds[k]`` as the fit's seed (minibatch order), by :func:`fit_point_estimate`. The BNN's own
    network is never changed, and torch's global random stream is left as it was.

    After :meth:`fit` the ensemble is a :class:`~pyro_bdl.inference.Posterior` of ``K`` draws
    (``num_draws == K``; :attr:`posterior` is the same draws as a
    :class:`~pyro_bdl.inference.SamplesPosterior`): pass it as ``posterior=`` to
    ``bnn.predict(x, K, posterior=ens)``, ``teacher_targets`` or ``to_inference_data``.

    :param bnn: the :class:`~pyro_bdl.BNN` (its network, prior, likelihood). Its model must have
        no learned ``pyro.param`` (a learned noise scale): see :func:`check_point_model`.
    :param num_members: K >= 1.
    :param objective: ``"map"`` (under the BNN's prior) or ``"ml"`` (maximum likelihood).
    :param seeds: K seeds (default ``0 .. K-1``); equal seeds give identical members.
    :param make_net: builds a fresh network (same parameter names and shapes); default:
        re-initialise a copy of ``bnn.net``.

    Example::

        >>> import pyro.distributions as dist
        >>> from pyro_bdl import BNN, HeteroskedasticGaussian
        >>> x = torch.linspace(-1, 1, 16).unsqueeze(-1)
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 2))  # mean, scale
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HeteroskedasticGaussian())
        >>> ens = DeepEnsemble(bnn, num_members=3)
        >>> fits = ens.fit(x, y, epochs=5, optim=pyro.optim.Adam({"lr": 0.01}))
        >>> ens.num_draws, len(fits)
        (3, 3)
        >>> bnn.predict(x, 3, posterior=ens).samples.shape  # (K, N)
        torch.Size([3, 16])
    """

    def __init__(
        self,
        bnn: HasModel,
        num_members: int,
        *,
        objective: str = "map",
        seeds: Sequence[int] | None = None,
        make_net: Callable[[], nn.Module] | None = None,
    ) -> None:
        self.bnn = bnn
        self.model: BayesianModel = bnn.bayesian_model
        self.num_members = positive_int("num_members", num_members)
        if objective not in OBJECTIVES:
            raise ValueError(f"Expected objective in {OBJECTIVES}, but got {objective!r}.")
        self.objective = objective
        seeds = list(range(self.num_members)) if seeds is None else list(seeds)
        if len(seeds) != self.num_members:
            raise ValueError(
                f"Expected {self.num_members} seeds (one per member), but got {len(seeds)}."
            )
        self.seeds = [check_seed("seeds", s, optional=False) for s in seeds]
        if make_net is not None and not callable(make_net):
            raise TypeError(f"Expected make_net to be callable, but got {make_net!r}.")
        self.make_net = make_net
        #: the members as a fixed set of K draws (``None`` before :meth:`fit`)
        self.posterior: SamplesPosterior | None = None
        #: the members' fit histories
        self.histories: list[FitResult] = []

    @property
    def num_draws(self) -> int | None:
        """K after :meth:`fit` (``None`` before)."""
        return None if self.posterior is None else self.posterior.num_draws

    def member_net(self, k: int) -> nn.Module:
        """Member ``k``'s network at its initialisation (before fitting)."""
        seed = self.seeds[k]
        if self.make_net is None:
            return reinitialised(self.model.net, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self.make_net()
        if not isinstance(net, nn.Module):
            raise TypeError(f"Expected make_net() to return an nn.Module, but got {net!r}.")
        ref = self.model.net.parameters().__next__()
        return net.to(device=ref.device, dtype=ref.dtype)

    def fit(
        self,
        x: Any,
        y: Any = None,
        *,
        epochs: int = 1,
        batch_size: int | None = None,
        lr: float = 1e-3,
        optim: Callable[[], pyro.optim.PyroOptim] | pyro.optim.PyroOptim | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> list[FitResult]:
        """Fit the K members, one after the other; return their histories.

        :param x: inputs ``(N, ...)`` or a DataLoader of ``(x, y)`` (with ``y=None``).
        :param y: targets ``(N, ...)``.
        :param epochs: passes over the data per member.
        :param batch_size: minibatch size (default: all of N).
        :param lr: learning rate of the default ``pyro.optim.Adam``.
        :param optim: a ``pyro.optim`` optimiser (copied for each member: no shared state), or
            a function returning one.
        :param callbacks: fit-loop callbacks, run for every member.
        :return: K :class:`~pyro_bdl.FitResult`.
        """
        data = make_batches(x, y, batch_size, True, self.model.check_pair)
        check_point_model(self.model, data.example()[0])
        members: list[Mapping[str, torch.Tensor]] = []
        self.histories = []
        with torch.random.fork_rng(devices=[]):
            for k in range(self.num_members):
                if optim is None or isinstance(optim, pyro.optim.PyroOptim):
                    made = make_optim(lr, copy.deepcopy(optim))
                else:
                    made = optim()
                fitted = fit_point_estimate(
                    self.model,
                    self.member_net(k),
                    data,
                    objective=self.objective,
                    optim=made,
                    options=FitOptions(epochs=epochs, seed=self.seeds[k]),
                    callbacks=callbacks,
                )
                members.append(fitted.values)
                self.histories.append(fitted.history)
        self.posterior = SamplesPosterior.stack(members)
        return self.histories

    def sample(self, num: int, *, offset: int = 0) -> Draws:
        """Members ``offset .. offset + num - 1`` (see
        :meth:`~pyro_bdl.inference.SamplesPosterior.sample`)."""
        return self._fitted().sample(num, offset=offset)

    def _fitted(self) -> SamplesPosterior:
        if self.posterior is None:
            raise RuntimeError(
                "Expected a fitted ensemble, but DeepEnsemble.fit has not run; call "
                "ens.fit(x, y, epochs=...) (or DeepEnsemble.from_state) first."
            )
        return self.posterior

    def to_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(config, tensors)``: plain data and the members' values ``{site: (K, *shape)}``.

        Example::

            >>> config, tensors = ens.to_state()  # doctest: +SKIP
            >>> config["type"]  # doctest: +SKIP
            'DeepEnsemble'
        """
        post = self._fitted()
        config = {
            "type": type(self).__name__,
            "num_members": self.num_members,
            "objective": self.objective,
            "seeds": list(self.seeds),
            "sites": list(post.samples),
        }
        return config, {k: v.detach().clone() for k, v in post.samples.items()}

    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], bnn: HasModel
    ) -> DeepEnsemble:
        """Rebuild a fitted ensemble from :meth:`to_state`'s output, for ``bnn``.

        :raises ValueError: for a config of another type or tensors missing a site.
        """
        if config.get("type") != cls.__name__:
            raise ValueError(
                f"Expected a config of type {cls.__name__!r}, but got {config.get('type')!r}."
            )
        sites = list(config["sites"])
        missing = [s for s in sites if s not in tensors]
        if missing:
            raise ValueError(f"Expected tensors for the sites {sites}, but none for {missing}.")
        ens = cls(
            bnn, int(config["num_members"]), objective=config["objective"], seeds=config["seeds"]
        )
        ens.posterior = SamplesPosterior({s: tensors[s] for s in sites})
        return ens

    def __repr__(self) -> str:
        state = "fitted" if self.posterior is not None else "not fitted"
        return (
            f"DeepEnsemble(num_members={self.num_members}, objective={self.objective!r}, {state})"
        )


class GuideMixture:
    """The uniform mixture of K posteriors that draw afresh (fitted guides): an ensemble of K
    variational posteriors.

    Draws are assigned to the members **round-robin**: draw ``i`` (counted from 0 across chunks,
    ``offset`` included) comes from member ``i mod K``. So ``S`` draws hold ``S // K`` or
    ``S // K + 1`` draws of every member, exactly ``S / K`` each when K divides S (a stratified
    sample of the uniform mixture: no member is over- or under-drawn by chance), and a chunked
    prediction draws the same members as one chunk. Each member draws with torch's global random
    stream, in member order within a chunk.

    :param members: K >= 1 posteriors with ``num_draws is None`` whose draws have the same sites
        (e.g. ``[b.posterior(x) for b in fitted_bnns]``: K BNNs of one architecture fitted from
        different seeds). Draws with per-example noise (MC dropout's masks, ``input_fns``) are
        refused: the masks belong to each member's own network.

    Example::

        >>> from pyro_bdl.inference import SamplesPosterior
        >>> class Fixed:  # a posterior that draws afresh: here, always its one value
        ...     num_draws = None
        ...     def __init__(self, v): self.v = v
        ...     def sample(self, num, *, offset=0):
        ...         return Draws({"w": self.v.expand(num, 1)})
        >>> mix = GuideMixture([Fixed(torch.zeros(1)), Fixed(torch.ones(1))])
        >>> mix.sample(5).sites["w"][:, 0]  # members 0, 1, 0, 1, 0
        tensor([0., 1., 0., 1., 0.])
    """

    num_draws: int | None = None

    def __init__(self, members: Sequence[Posterior]) -> None:
        members = list(members)
        if not members:
            raise ValueError("Expected at least one member posterior, but got none.")
        for i, m in enumerate(members):
            if not isinstance(m, Posterior) or m.num_draws is not None:
                raise TypeError(
                    "Expected posteriors that draw afresh (num_draws None, e.g. bnn.posterior(x)),"
                    f" but member {i} is {type(m).__name__} with num_draws="
                    f"{getattr(m, 'num_draws', '?')}; stack fixed sets with SamplesPosterior."
                )
        self.members = members

    @property
    def num_members(self) -> int:
        """K."""
        return len(self.members)

    def sample(self, num: int, *, offset: int = 0) -> Draws:
        """``num`` draws, draw ``offset + j`` from member ``(offset + j) mod K``."""
        num = positive_int("num", num)
        k = self.num_members
        owner = (torch.arange(num) + offset) % k
        parts: dict[int, Draws] = {}
        for m in range(k):
            count = int((owner == m).sum())
            if count:
                drawn = self.members[m].sample(count)
                if drawn.input_fns is not None:
                    raise ValueError(
                        f"Expected draws without per-example noise, but member {m} draws "
                        "input_fns (dropout masks) that belong to its own network; use "
                        "posterior(x, per_example=False) or a SamplesPosterior of its draws."
                    )
                parts[m] = drawn
        names = {m: set(d.sites) for m, d in parts.items()}
        if len({frozenset(s) for s in names.values()}) != 1:
            raise ValueError(f"Expected every member to draw the same sites, but got {names}.")
        sites = {}
        for name in next(iter(parts.values())).sites:
            first = parts[next(iter(parts))].sites[name]
            out = first.new_empty((num,) + first.shape[1:])
            for m, d in parts.items():
                out[owner == m] = d.sites[name]
            sites[name] = out
        return Draws(cast(dict[str, torch.Tensor], sites))

    def __repr__(self) -> str:
        return f"GuideMixture(members={[type(m).__name__ for m in self.members]})"
