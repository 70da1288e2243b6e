"""The ELBO split into its two terms, for any model/guide pair.

:func:`elbo_terms` estimates

.. math::

    \\mathcal L = \\underbrace{\\mathbb E_q[\\log p(y \\mid x, W)]}_{\\text{loglik}}
    - \\underbrace{\\mathrm{KL}(q(W) \\,\\|\\, p(W))}_{\\text{kl}}

in nats, with the data term scaled to the data set by the data plate. It is the estimator of
:class:`pyro.infer.TraceMeanField_ELBO` (the KL in closed form wherever
:func:`torch.distributions.kl_divergence` knows the pair, Monte Carlo otherwise), returned term by
term, which Pyro's ELBO classes do not do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from torch.distributions import Distribution, kl_divergence

from .tempering import PriorSampler, tempered_normal

if TYPE_CHECKING:
    from ..model import BayesianModel

__all__ = [
    "ELBOTerms",
    "elbo_terms",
    "PARTICLE_PLATE",
    "Objective",
    "TracedELBO",
    "TraceFreeELBO",
    "estimator_handler",
    "leaf_tensor",
    "make_objective",
]

PARTICLE_PLATE = "num_particles_vectorized"


@dataclass(frozen=True)
class ELBOTerms:
    """The two terms of an ELBO estimate (scalars, nats, for the whole data set)."""

    loglik: torch.Tensor
    kl: torch.Tensor

    @property
    def elbo(self) -> torch.Tensor:
        """``loglik - kl``."""
        return self.loglik - self.kl

    @property
    def loss(self) -> torch.Tensor:
        """``kl - loglik``, the quantity SVI minimises."""
        return self.kl - self.loglik


def _site_log_prob_sum(site: Any) -> torch.Tensor:
    lp = site["fn"].log_prob(site["value"])
    return scale_and_mask(lp, site["scale"], site["mask"]).sum()


def _one_trace_pair(
    model: Callable, guide: Callable, args: tuple, kwargs: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    # python zeros: the sums take the device and dtype of the first term (the net's)
    loglik: Any = 0.0
    kl: Any = 0.0
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        if site["is_observed"]:
            loglik = loglik + _site_log_prob_sum(site)
            continue
        gsite = guide_trace.nodes.get(name)
        if gsite is None:  # a model latent the guide does not cover: sampled from the prior
            continue
        try:
            if site["scale"] is not gsite["scale"] and site["scale"] != gsite["scale"]:
                k = _scaled_kl(gsite, site)  # a tempered model: E_q[g log q - s log p] / g
            else:
                k = kl_divergence(cast(Distribution, gsite["fn"]), cast(Distribution, site["fn"]))
        except NotImplementedError:
            kl = kl + _site_log_prob_sum(gsite) - _site_log_prob_sum(site)
        else:
            kl = kl + scale_and_mask(k, gsite["scale"], gsite["mask"]).sum()
    for name, gsite in guide_trace.nodes.items():  # auxiliary guide sites contribute log q
        if gsite["type"] == "sample" and name not in model_trace.nodes:
            kl = kl + _site_log_prob_sum(gsite)
    return _as_tensor(loglik, model_trace), _as_tensor(kl, model_trace)


def _scaled_kl(gsite: Any, site: Any) -> torch.Tensor:
    r"""A site's term :math:`\mathbb E_q[g \log q - s \log p] / g` in closed form, where the
    model's site has another scale :math:`s` than the guide's :math:`g` (``poutine.scale``; a
    tempered model's :math:`s = 1/T`). Pyro's ``TraceMeanField_ELBO`` uses the guide's scale
    alone, which drops the :math:`1/T` on the prior.

    For a Gaussian prior, :math:`(s/g) \log p = \log p_{g/s} + c` (:func:`~pyro_bdl.inference.
    tempering.tempered_normal`): the term is :math:`\mathrm{KL}(q \,\|\, p_{g/s}) - c`, the
    trace-free estimator's form. Otherwise it is :math:`((s/g)\,\mathrm{KL}(q \,\|\, p) +
    (s/g - 1)\,\mathrm H[q])`.

    :raises NotImplementedError: if neither closed form exists (the caller then estimates the
        term by Monte Carlo).
    """
    g, s = gsite["scale"], site["scale"]
    q, p = cast(Distribution, gsite["fn"]), cast(Distribution, site["fn"])
    made = tempered_normal(p, g / s)
    if made is not None:
        p_tempered, c = made
        return kl_divergence(q, p_tempered) - c
    return (s / g) * kl_divergence(q, p) + (s / g - 1) * q.entropy()


def _as_tensor(total: Any, trace: Any) -> torch.Tensor:
    """``total`` as a tensor: a sum of no terms becomes a zero on the trace's device and dtype."""
    if isinstance(total, torch.Tensor):
        return total
    like = next(
        (s["value"] for s in trace.nodes.values() if isinstance(s.get("value"), torch.Tensor)),
        None,
    )
    if like is None:
        return torch.tensor(float(total))
    return torch.tensor(float(total), device=like.device, dtype=like.dtype)


def elbo_terms(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_particles: int = 1,
    vectorize_particles: bool = True,
    max_plate_nesting: int = 1,
    **kwargs: Any,
) -> ELBOTerms:
    """Estimate the expected log-likelihood and the KL of a model/guide pair.

    With ``vectorize_particles`` the particles are drawn under a plate at dim
    ``-(max_plate_nesting + 1)``, exactly as :class:`~pyro.infer.Trace_ELBO` does, so the same
    seed gives the same draws and the same estimate as Pyro's ELBO.

    :param model: Pyro model.
    :param guide: Pyro guide with reparameterised sites.
    :param num_particles: number of draws averaged.
    :param vectorize_particles: draw all particles in one vectorised pass.
    :param max_plate_nesting: plates of the model (1 for a :class:`~pyro_bdl.BNN`).
    :return: :class:`ELBOTerms` with scalar ``loglik`` and ``kl`` (nats, full data set).

    Example::

        >>> terms = elbo_terms(bnn.model, bnn.guide, x, y, num_particles=8)  # doctest: +SKIP
        >>> loss = terms.loss; loss.backward()  # doctest: +SKIP
    """
    if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
        raise ValueError(f"Expected num_particles to be a positive int, but got {num_particles!r}.")
    if vectorize_particles and num_particles > 1:
        plate = pyro.plate(PARTICLE_PLATE, num_particles, dim=-(max_plate_nesting + 1))
        loglik, kl = _one_trace_pair(plate(model), plate(guide), args, kwargs)
        return ELBOTerms(loglik / num_particles, kl / num_particles)
    pairs = [_one_trace_pair(model, guide, args, kwargs) for _ in range(num_particles)]
    loglik, kl = pairs[0]
    for more in pairs[1:]:
        loglik, kl = loglik + more[0], kl + more[1]
    return ELBOTerms(loglik / num_particles, kl / num_particles)


def leaf_tensor(value: Any) -> torch.Tensor:
    """The unconstrained leaf tensor of a captured ``pyro.param`` value (what optimisers step).

    Example::

        >>> import pyro
        >>> from pyro import poutine
        >>> with poutine.trace(param_only=True) as tr:
        ...     _ = pyro.param("leaf_example", torch.ones(2))
        >>> leaf_tensor(tr.trace.nodes["leaf_example"]["value"]).shape
        torch.Size([2])
    """
    if value is None:
        raise RuntimeError("Expected a parameter value in the captured trace, but got None.")
    return cast(torch.Tensor, value.unconstrained())


# ============================================================================ objectives
class Objective(Protocol):
    """An ELBO estimator for one model/guide pair, with the parameters it trains.

    ``objective(x, y, dataset_size, num_particles)`` returns the estimate's two terms and the
    parameters this estimate depends on (their gradients are what a step applies).
    """

    #: the parameters known when the objective was made, in a fixed order (may be empty for a
    #: traced objective whose guide builds its parameters lazily)
    params: list[torch.Tensor]
    #: the model the estimate is of
    model: BayesianModel

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        dataset_size: int,
        num_particles: int = 1,
        *,
        rows: tuple[int, slice] | None = None,
    ) -> tuple[ELBOTerms, list[torch.Tensor]]: ...


class TracedELBO:
    """Pyro's traced estimate (:func:`elbo_terms`) under the guide's estimator handler.

    :param model: the :class:`~pyro_bdl.model.BayesianModel` (a Pyro model
        ``model(x, y, dataset_size=...)``).
    :param guide: the guide.
    :param handler: a zero-argument callable returning the context the estimate runs under
        (e.g. per-example dropout masks; default: none).
    :param vectorize_particles: draw the particles in one vectorised pass.

    Example::

        >>> objective = TracedELBO(bnn.model, bnn.guide)  # doctest: +SKIP
        >>> terms, params = objective(x, y, dataset_size=len(x))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: BayesianModel,
        guide: Callable,
        *,
        handler: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        vectorize_particles: bool = True,
        params: list[torch.Tensor] | None = None,
    ) -> None:
        self.model, self.guide, self.handler = model, guide, handler
        self.vectorize_particles = vectorize_particles
        self.params: list[torch.Tensor] = list(params or [])

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        dataset_size: int,
        num_particles: int = 1,
        *,
        rows: tuple[int, slice] | None = None,
    ) -> tuple[ELBOTerms, list[torch.Tensor]]:
        """The estimate and every parameter it touched (the unconstrained leaf tensors).

        ``rows`` (a data-parallel shard's place in its minibatch) is not used: a traced step
        with per-example randomness is not split across processes.
        """
        with self.handler(), poutine.trace(param_only=True) as capture:
            terms = elbo_terms(
                self.model,
                self.guide,
                x,
                y,
                dataset_size=dataset_size,
                num_particles=num_particles,
                vectorize_particles=self.vectorize_particles,
            )
        touched = {leaf_tensor(site["value"]) for site in capture.trace.nodes.values()}
        return terms, list(touched)


class TraceFreeELBO:
    """The same estimate as :class:`TracedELBO`, from the same random numbers, without Pyro.

    The guide's trace-free sampler draws every weight and the closed-form KL in one pass; the
    model's vectorised forward and the likelihood's :meth:`log_density` give the expected
    log-likelihood, scaled by ``N / B`` as the data plate scales it.

    :param model: the :class:`~pyro_bdl.model.BayesianModel`.
    :param sampler: ``guide.trace_free_sampler(priors, model)`` (draws, KL and ``input_fns``).
    :param params: every parameter of the estimate, in a fixed order.
    :param source: where the sampler came from
        (:class:`~pyro_bdl.inference.tempering.PriorSampler`): at a temperature :math:`T \\ne 1`
        the estimate is the tempered ELBO (``loglik`` divided by :math:`T`, the KL term taken to
        the tempered prior), and with learned prior scales the sampler is rebuilt every step.

    Example::

        >>> objective = make_objective(model, guide, (x[:2], y[:2]), len(x))  # doctest: +SKIP
        >>> isinstance(objective, TraceFreeELBO)  # mean-field / dropout guides  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        model: BayesianModel,
        sampler: Any,
        params: list[torch.Tensor],
        *,
        source: PriorSampler | None = None,
        offset: torch.Tensor | float = 0.0,
    ) -> None:
        self.model = model
        self.sampler = sampler
        self.params = list(params)
        self._target_layouts: dict[tuple, tuple] = {}
        #: tempering and learned priors (``None``: the Bayes posterior under a fixed prior)
        self.source = source
        self.offset = offset

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        dataset_size: int,
        num_particles: int = 1,
        *,
        rows: tuple[int, slice] | None = None,
    ) -> tuple[ELBOTerms, list[torch.Tensor]]:
        """The estimate and :attr:`params`.

        :param rows: ``(B, slice)``: ``x`` are these rows of a minibatch of B (a data-parallel
            shard); per-example noise is then drawn for all B rows and these rows kept, as one
            process draws it.
        """
        sample_shape = (num_particles,) if num_particles > 1 else ()
        source = self.source
        if source is not None and source.learned:  # this step's learned prior scales
            self.sampler, self.offset = source()
        if self.sampler.input_fns:
            self.sampler.rows = rows
        draws, kl = self.sampler(sample_shape)
        model = self.model
        weights = model.weights_from_sites(draws)  # z * s(h) for hierarchical priors
        f = model.forward(
            weights,
            x,
            sample_shape=sample_shape,
            input_fns=self.sampler.input_fns,
            layer_fns=getattr(self.sampler, "layer_fns", None),
        )
        ndim = len(sample_shape)
        y = self._target(y, f, ndim)
        lp = model.likelihood.log_density(f, y, ndim)
        loglik = (lp * (dataset_size / len(x))).sum() / num_particles
        if source is not None and source.temperature != 1.0:  # see pyro_bdl.inference.tempering
            loglik, kl = loglik / source.temperature, kl - self.offset
        return ELBOTerms(loglik, kl), self.params

    def _target(self, y: torch.Tensor, f: torch.Tensor, ndim: int) -> torch.Tensor:
        """``likelihood.check_target`` once per target layout, then only its reshape and cast.

        Every minibatch of a fit comes from targets whose values were validated as a whole
        (``BNN.check_data``), so repeating the value checks each step is redundant. Only a
        ``check_target`` that returned a reshape/cast of ``y`` (checked on the first batch) is
        shortcut; any other (stacking, conversion) runs every step.
        """
        likelihood = self.model.likelihood
        key = (tuple(y.shape[1:]), y.dtype, tuple(f.shape[ndim + 1 :]), f.dtype, ndim)
        layout = self._target_layouts.get(key)
        if layout is None or y.shape[0] != f.shape[ndim]:
            checked = likelihood.check_target(y, f, ndim)
            plain = torch.is_tensor(checked) and checked.shape[:1] == y.shape[:1]
            plain = plain and checked.numel() == y.numel()  # a reshape (and cast) of y only?
            plain = plain and torch.equal(y.reshape(checked.shape).to(checked.dtype), checked)
            self._target_layouts[key] = (tuple(checked.shape[1:]), checked.dtype) if plain else ()
            return checked
        if not layout:
            return likelihood.check_target(y, f, ndim)
        shape, dtype = layout
        return y.reshape(y.shape[:1] + shape).to(dtype)


ESTIMATORS = ("auto", "traced", "trace_free")


def estimator_handler(
    guide: Callable, model: BayesianModel, training: bool = True
) -> contextlib.AbstractContextManager:
    """The effect handler a guide asks its ELBO estimate (``training``) or prediction to run under.

    Guides may define ``estimator_context(model, training)`` (the dropout guides draw masks per
    example; ``MeanFieldNormal(estimator=...)`` adds local reparameterization or flipout while
    training); otherwise this is a no-op.

    Example::

        >>> with estimator_handler(bnn.guide, bnn.bayesian_model):  # doctest: +SKIP
        ...     terms = elbo_terms(bnn.model, bnn.guide, x, y)
    """
    make = getattr(guide, "estimator_context", None)
    return make(model, training) if make is not None else contextlib.nullcontext()


def make_objective(
    model: BayesianModel,
    guide: Callable,
    example: tuple[torch.Tensor, torch.Tensor],
    dataset_size: int,
    *,
    estimator: str = "auto",
    handler: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    num_particles: int = 1,
    vectorize_particles: bool = True,
) -> TracedELBO | TraceFreeELBO:
    """The ELBO estimator of a fit, decided once, without touching the random stream.

    A traced pass on the example batch registers every parameter with Pyro's param store (so
    ``pyro.optim`` can name them) and collects them, sorted by name; the guide is then asked for
    a trace-free sampler (``guide.trace_free_sampler(priors, model)``: draws and closed-form KL
    from the same random calls), and the trace-free estimate is tried once. The decision does
    not depend on earlier steps, so a resumed fit takes the same path as an uninterrupted one.

    :param model: the :class:`~pyro_bdl.model.BayesianModel`.
    :param guide: the guide (an AutoGuide, or any guide callable).
    :param example: an example batch ``(x, y)`` (two rows are enough).
    :param dataset_size: N.
    :param estimator: ``"auto"`` (trace-free when the guide offers it), ``"traced"`` (always
        Pyro's traced estimate) or ``"trace_free"`` (fail if it is not available).
    :param handler: context of the guide's estimator (see ``BNN.estimator``).
    :param num_particles: particles per step (trace-free needs them vectorised).
    :param vectorize_particles: whether particles are drawn in one pass.
    :return: a :class:`TraceFreeELBO` or a :class:`TracedELBO`.
    :raises ValueError: for an unknown ``estimator``, or ``"trace_free"`` where it cannot apply.

    Example::

        >>> objective = make_objective(bnn.bayesian_model, bnn.guide, (x[:2], y[:2]), len(x),
        ...                            estimator="traced")  # doctest: +SKIP
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"Expected estimator in {ESTIMATORS}, but got {estimator!r}.")
    x, y = example
    traced = TracedELBO(model, guide, handler=handler, vectorize_particles=vectorize_particles)
    make = getattr(guide, "trace_free_sampler", None)
    if estimator == "traced" or make is None:
        return _refuse_trace_free(estimator, "the guide has no trace_free_sampler", traced)
    with model.side_effect_free(), torch.no_grad():
        with handler(), poutine.trace(param_only=True) as capture:
            elbo_terms(model, guide, x, y, dataset_size=dataset_size)
        nodes = capture.trace.nodes
        params = [leaf_tensor(nodes[name]["value"]) for name in sorted(nodes)]
        traced.params = params
        source = PriorSampler(model, make)
        sampler, offset = source()  # the priors at the model's temperature
        if sampler is None or not set(sampler.params) <= set(params):
            why = "the guide's sampler does not apply to this prior, likelihood or estimator"
            return _refuse_trace_free(estimator, why, traced)
        if num_particles > 1 and not vectorize_particles:
            return _refuse_trace_free(estimator, "particles are not vectorised", traced)
        if num_particles > 1 and getattr(sampler, "layer_fns", None):
            why = "its per-example output noise is drawn for one particle at a time"
            return _refuse_trace_free(estimator, why, traced)
        if not source.follows_learned():
            why = "the guide's trace-free KL does not follow the prior's learned scales"
            return _refuse_trace_free(estimator, why, traced)
        plain = source.temperature == 1.0 and not source.learned
        objective = TraceFreeELBO(
            model, sampler, params, source=None if plain else source, offset=offset
        )
        objective(x, y, dataset_size)  # tried once, on the example batch
    return objective


def _refuse_trace_free(estimator: str, why: str, traced: TracedELBO) -> TracedELBO:
    if estimator == "trace_free":
        raise ValueError(
            f"Expected a model/guide pair with a trace-free ELBO, but {why}. Use "
            "estimator='auto' or 'traced'."
        )
    return traced
