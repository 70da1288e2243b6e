"""The one chunked draws loop: posterior draws → model runs → predictions.

:func:`iter_draw_chunks` is the only loop in the package that draws weights in chunks;
:func:`run_model` is the only place the model is run on a chunk of draws under the
:data:`~pyro_bdl.inference.posterior.DRAWS_PLATE`; :func:`default_chunk` is the one chunk policy.
``BNN.predict``, ``BNN.predict_from_samples``, the ArviZ export, ``psis_khat``, teacher targets
and distributed prediction are all built on them.

All three run the network in **evaluation mode** (:func:`~pyro_bdl.nn.eval_mode`: dropout
layers off, BatchNorm on its running statistics, which stay unchanged), each module's own mode
restored afterwards; the dropout guides' per-example masks are drawn whatever the modes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import pyro
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from torch import nn
from torch.distributions import Distribution

from ..likelihoods import OBS, check_outputs
from ..nn import eval_mode
from ..uncertainty import Prediction
from .posterior import DRAWS_PLATE, Draws, Posterior

if TYPE_CHECKING:
    from ..model import BayesianModel

__all__ = [
    "SkipObservation",
    "concatenate",
    "default_chunk",
    "is_functional",
    "iter_draw_chunks",
    "predictive_dists",
    "predict",
    "run_model",
]

#: Memory a default chunk may use, in bytes (``vmap``: weights and activations).
CHUNK_BYTES = 64 * 2**20
#: For a Linear chain, whose activations are known: cache-sized chunks are fastest.
CHAIN_CHUNK_BYTES = 4 * 2**20


class SkipObservation(Messenger):
    """Leave the ``"obs"`` site unsampled: prediction needs its distribution, not a draw."""

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if msg["name"] == OBS and msg["value"] is None:
            fn = msg["fn"]
            like = _a_tensor_of(fn)  # the placeholder lives with the distribution's parameters
            device = like.device if like is not None else None
            msg["value"] = torch.zeros(fn.batch_shape + fn.event_shape, device=device)


def _a_tensor_of(fn: Any) -> torch.Tensor | None:
    """A tensor a distribution holds (a parameter, or one of its base distribution's)."""
    for value in vars(fn).values():
        if torch.is_tensor(value):
            return value
        if isinstance(value, torch.distributions.Distribution):
            inner = _a_tensor_of(value)
            if inner is not None:
                return inner
    return None


def default_chunk(
    model: BayesianModel,
    n: int,
    dtype: torch.dtype,
    shapes: Mapping[str, torch.Size] | None = None,
) -> int:
    """Draws per batched model run: about 64 MB of work for ``vmap``; for a Linear chain, whose
    activations are known, about 4 MB of them.

    :param model: the model.
    :param n: number of inputs per run.
    :param dtype: floating dtype of the draws.
    :param shapes: latent site shapes (default: the weights).
    :return: a chunk size >= 1.

    Example::

        >>> default_chunk(bnn.bayesian_model, 1000, torch.float64)  # doctest: +SKIP
        52
    """
    if shapes is None:
        shapes = {n_: model.shapes[n_] for n_ in model.random_names}
    size = torch.finfo(dtype).bits // 8
    width = model.forward.activation_width()
    if width is not None:
        return max(1, CHAIN_CHUNK_BYTES // (size * n * width))
    weights = sum(math.prod(s) for s in shapes.values())
    return max(1, CHUNK_BYTES // (size * (4 * weights + 1024 * n)))


def iter_draw_chunks(
    posterior: Posterior,
    num: int,
    *,
    chunk: int,
    keep: Callable[[int], bool] | None = None,
) -> Iterator[tuple[int, Draws]]:
    """``num`` draws from ``posterior`` in chunks of at most ``chunk``: ``(start, draws)``.

    Every chunk is drawn (the random stream is the same whichever chunks are kept); ``keep(j)``
    says whether chunk ``j`` is yielded (a data-parallel rank evaluates its own chunks only).

    :param posterior: any :class:`~pyro_bdl.inference.posterior.Posterior`.
    :param num: total number of draws S (at most ``posterior.num_draws`` for a fixed set).
    :param chunk: draws per chunk.
    :param keep: which chunk indices to yield (default: all).

    Example::

        >>> from pyro_bdl.inference import SamplesPosterior
        >>> post = SamplesPosterior({"w": torch.zeros(5, 2)})
        >>> [(s, d.num) for s, d in iter_draw_chunks(post, 5, chunk=2)]
        [(0, 2), (2, 2), (4, 1)]
    """
    for j, start in enumerate(range(0, num, chunk)):
        draws = posterior.sample(min(chunk, num - start), offset=start)
        if keep is None or keep(j):
            yield start, draws


def run_model(
    model: Callable,
    draws: Draws,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    dataset_size: int | None = None,
    sample_obs: bool = False,
) -> poutine.Trace:
    """Trace of ``model(x, y)`` with every drawn site fixed to its draws, vectorised over them.

    The draws are placed under the :data:`DRAWS_PLATE` at dim -2 (left of the data plate);
    without ``y`` the observation site keeps its distribution and is not sampled. The network of
    a :class:`~pyro_bdl.model.BayesianModel` (or of a ``BNN``'s ``model`` method) runs in
    evaluation mode; another callable runs as it is.

    :param model: a Pyro model callable ``model(x, y, dataset_size=...)``.
    :param draws: S draws of (some of) the model's latent sites; sites not drawn are sampled
        from the model.
    :param x: inputs ``(N, ...)``.
    :param y: targets ``(N, ...)`` or ``None``.
    :param dataset_size: the data plate's size (default: the model's).
    :param sample_obs: without ``y``, draw the observation site (posterior predictive draws of
        y) instead of leaving it unsampled.
    :return: the model trace; ``trace.nodes["obs"]["fn"]`` has batch shape ``(S, N)``.
    :raises ValueError: for draws with per-example noise (those need :func:`predict`'s
        functional path).
    """
    if draws.input_fns:
        raise ValueError(
            "Expected draws without per-example noise for a model run, but got input functions "
            "(per-example dropout masks): evaluate them through predict()."
        )
    c = draws.num
    data = {k: v.reshape((c, 1) + v.shape[1:]) for k, v in draws.sites.items()}
    kwargs = {} if dataset_size is None else {"dataset_size": dataset_size}
    skip = contextlib.nullcontext() if sample_obs else SkipObservation()
    net = _network_of(model)
    mode = eval_mode(net) if net is not None else contextlib.nullcontext()
    with pyro.plate(DRAWS_PLATE, c, dim=-2), skip, mode:
        return poutine.trace(poutine.condition(model, data=data)).get_trace(x, y, **kwargs)


def _network_of(model: Callable) -> nn.Module | None:
    """The network a model callable runs: that of a :class:`~pyro_bdl.model.BayesianModel`, or
    of the ``BNN`` whose bound ``model`` method this is; ``None`` for any other callable."""
    owner = getattr(model, "__self__", model)  # a bound method: its object
    owner = getattr(owner, "bayesian_model", owner)  # a BNN: its BayesianModel
    net = getattr(owner, "net", None) if hasattr(owner, "random_names") else None
    return net if isinstance(net, nn.Module) else None


def is_functional(model: BayesianModel, draws: Draws, sites: Mapping[str, torch.Size]) -> bool:
    """Whether the draws are exactly the model's latent sites, all of them weights: then the
    network runs on them directly (no Pyro), per-example noise included."""
    return set(draws.sites) == set(model.site_names) == set(sites)


def predictive_dists(
    model: BayesianModel, draws: Draws, x: torch.Tensor, sites: Mapping[str, torch.Size]
) -> Distribution:
    """The per-draw predictive distributions p(y | x, W_s), batch shape ``(S, N)``.

    :param model: the model.
    :param draws: S draws.
    :param x: inputs ``(N, ...)``.
    :param sites: the model's latent site shapes (``model.latent_shapes(x)``).

    Example::

        >>> d = predictive_dists(model, post.sample(10), x, model.latent_shapes(x))
        ... # doctest: +SKIP
    """
    if is_functional(model, draws, sites):
        with eval_mode(model.net):
            f = model.outputs(draws.sites, x, input_fns=draws.input_fns, by_site=True)
        return model.likelihood.predictive_dist(f, 1)
    return cast(Distribution, run_model(model, draws, x).nodes[OBS]["fn"])


def concatenate(parts: list[Prediction]) -> Prediction:
    """One :class:`~pyro_bdl.uncertainty.Prediction` from chunks of draws, in order (any kind,
    the generic one included: :meth:`~pyro_bdl.uncertainty.Prediction.cat`)."""
    return parts[0] if len(parts) == 1 else Prediction.cat(parts)


def predict(
    model: BayesianModel,
    posterior: Posterior,
    x: torch.Tensor,
    num: int,
    *,
    chunk: int | None = None,
    keep: Callable[[int], bool] | None = None,
    sites: Mapping[str, torch.Size] | None = None,
) -> Prediction | None:
    """Posterior predictive of ``model`` at ``x`` from ``num`` draws of ``posterior``.

    Functional when the draws are exactly the weights (the network runs on all draws of a chunk
    at once, per-example noise included); otherwise the model runs conditioned on each chunk
    (:func:`run_model`), e.g. for a sampled noise precision. The network runs in evaluation
    mode (each module's mode restored afterwards, also on an error); the posterior's draws,
    per-example dropout masks included, are not affected by the modes.

    :param model: the :class:`~pyro_bdl.model.BayesianModel`.
    :param posterior: any :class:`~pyro_bdl.inference.posterior.Posterior`.
    :param x: inputs ``(N, ...)``.
    :param num: number of draws S.
    :param chunk: draws per batched run (default: :func:`default_chunk`).
    :param keep: which chunks to evaluate (default: all); the others are drawn and skipped.
    :param sites: the model's latent site shapes (default: computed by one prior run).
    :return: a :class:`~pyro_bdl.uncertainty.Prediction` with samples ``(S_kept, N, ...)``, or
        ``None`` when no chunk is kept.

    Example::

        >>> pred = predict(bnn.bayesian_model, SamplesPosterior(mcmc.get_samples()), x_test, 300)
        ... # doctest: +SKIP
    """
    if sites is None:
        sites = model.latent_shapes(x)
    dtype = next(iter(model.net.parameters())).dtype
    chunk = chunk or default_chunk(model, len(x), dtype, sites)
    f_all: torch.Tensor | None = None
    parts: list[Prediction] = []
    kept = 0
    with eval_mode(model.net):
        for _, draws in iter_draw_chunks(posterior, num, chunk=chunk, keep=keep):
            if is_functional(model, draws, sites):
                f = model.outputs(draws.sites, x, input_fns=draws.input_fns, by_site=True)
                if f_all is None:
                    check_outputs(f, 1)
                    f_all = f.new_empty((num,) + f.shape[1:])
                f_all[kept : kept + len(f)] = f
                kept += len(f)
            else:
                trace = run_model(model, draws, x)
                fn = cast(Distribution, trace.nodes[OBS]["fn"])
                parts.append(model.likelihood.prediction(fn))
    if f_all is not None:
        return model.likelihood.prediction_from_outputs(f_all[:kept], 1)
    return concatenate(parts) if parts else None
