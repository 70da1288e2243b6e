"""Plain dropout networks and dropout BNNs, both ways: read a network trained with dropout as a
posterior (:func:`from_dropout_net`), or export a fitted dropout guide as a network with dropout
layers (:func:`to_dropout_net`).
"""

from __future__ import annotations

import copy
from typing import Any

import pyro.distributions as dist
import torch
from torch import nn

from ..bnn import BNN
from ..guides.dropout import AutoDropout, BernoulliDropout, check_p

__all__ = ["from_dropout_net", "to_dropout_net"]


def to_dropout_net(bnn: Any) -> nn.Module:
    """Export a fitted dropout BNN as a plain ``nn.Module`` with dropout layers.

    Each masked weight's module is wrapped as ``nn.Sequential(nn.Dropout(p), module)``
    (``nn.Dropout2d`` for ``nn.Conv2d`` ...) with weight ``W = (1 - p) · M`` (inverted dropout);
    biases are their point estimates. The dropout layers are left in training mode and the rest
    of the network in the mode it was in, so calling the result draws from the guide's predictive:
    with the same seed, S calls equal ``bnn.predict(x, S, chunk_size=1)`` (per-example masks).
    Parameter names gain the ``.1`` of the wrapper (``"0.weight"`` -> ``"0.1.weight"``).

    :param bnn: a :class:`~pyro_bdl.BNN` whose guide is an :class:`AutoDropout`.
    :return: the exported network.

    Example::

        >>> import pyro.distributions as dist
        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import BNN, HomoskedasticGaussian
        >>> x = torch.linspace(-1, 1, 8).unsqueeze(-1)  # 8 rows
        >>> y = torch.sin(3 * x[:, 0])
        >>> net = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))
        >>> bnn = BNN(net, dist.Normal(0.0, 1.0), HomoskedasticGaussian(scale=0.1),
        ...           guide=BernoulliDropout(p=0.25))
        >>> result = bnn.fit(x, y, epochs=2, progress=False)
        >>> mc = to_dropout_net(bnn)
        >>> draws = torch.stack([mc(x) for _ in range(100)])  # 100 MC-dropout passes
        >>> draws.shape
        torch.Size([100, 8, 1])
    """
    guide = bnn.guide
    if not isinstance(guide, AutoDropout):
        raise TypeError(
            f"Expected a BNN with a dropout guide (BernoulliDropout), but its guide is "
            f"{type(guide).__name__}."
        )
    if guide.prototype_trace is None:
        raise RuntimeError(
            "The guide has no parameters yet: fit the BNN (or call its guide) first."
        )
    if guide.temperature is not None:
        raise ValueError(
            "Expected hard Bernoulli masks; a concrete-dropout guide uses relaxed masks. Its "
            "learned p can be used with BernoulliDropout(p=bnn.guide.drop_probabilities())."
        )
    net = copy.deepcopy(bnn.net)
    wrappers = {
        nn.Linear: nn.Dropout,
        nn.Conv1d: nn.Dropout1d,
        nn.Conv2d: nn.Dropout2d,
        nn.Conv3d: nn.Dropout3d,
    }
    inserted = []
    with torch.no_grad():
        for param_name in bnn.random_names:
            site = bnn.site_name(param_name)
            q = guide.get_site_dist(site)
            owner_name, _, attr = param_name.rpartition(".")
            owner = net.get_submodule(owner_name)
            getattr(owner, attr).copy_(q.mean)
        for param_name in bnn.random_names:
            site = bnn.site_name(param_name)
            if guide._mask_dims[site] is None:
                continue
            p = float(guide.drop_probability(site))
            owner_name, _, _ = param_name.rpartition(".")
            owner = net.get_submodule(owner_name)
            if type(owner) not in wrappers:
                raise ValueError(
                    f"Expected masked weights of nn.Linear/nn.ConvNd modules, but {param_name!r} "
                    f"belongs to {type(owner).__name__}."
                )
            drop = wrappers[type(owner)](p)
            inserted.append(drop)
            wrapped = nn.Sequential(drop, owner)
            if owner_name:
                parent, _, child = owner_name.rpartition(".")
                setattr(net.get_submodule(parent), child, wrapped)
            else:
                net = wrapped
    for d in inserted:
        d.train()
    return net


def from_dropout_net(
    net: nn.Module,
    likelihood: Any,
    prior: Any = None,
    *,
    estimator: str = "per_example",
    **bnn_kwargs: Any,
) -> BNN:
    """Read an already-trained network with dropout layers as a posterior, without retraining.

    Each ``nn.Dropout`` (``nn.Dropout1d/2d/3d``) is matched to the next ``nn.Linear``
    (``nn.ConvNd``) in module registration order (the order of an ``nn.Sequential``); its
    p becomes that weight's drop probability and M = W / (1 - p). The network is copied and
    its dropout layers replaced by identities, so the guide draws the masks. With the same
    seed, ``bnn.predict(x, S, chunk_size=1)`` equals S MC-dropout passes of ``net``.

    :param net: the trained network (unchanged).
    :param likelihood: the likelihood it was trained with.
    :param prior: the prior (default ``Normal(0, 1)``); it matters only for further fitting.
    :return: a :class:`~pyro_bdl.BNN` with an :class:`~pyro_bdl.guides.AutoDropout` guide.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> from pyro_bdl import Categorical
        >>> trained = nn.Sequential(  # trained with dropout before its last layer
        ...     nn.Linear(2, 4), nn.ReLU(), nn.Dropout(0.25), nn.Linear(4, 3)
        ... )
        >>> bnn = from_dropout_net(trained, Categorical())
        >>> pred = bnn.predict(torch.randn(5, 2), num_samples=100)
        >>> bnn.guide.drop_probabilities(), pred.probs.shape
        ({'0.weight': 0.0, '3.weight': 0.25}, torch.Size([5, 3]))
    """

    if not isinstance(net, nn.Module):
        raise TypeError(f"Expected an nn.Module, but got {type(net).__name__}.")
    dropouts = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
    expect = {
        nn.Linear: nn.Dropout,
        nn.Conv1d: nn.Dropout1d,
        nn.Conv2d: nn.Dropout2d,
        nn.Conv3d: nn.Dropout3d,
    }
    probs: dict[str, float] = {}
    pending: tuple[str, nn.Module] | None = None
    for name, module in net.named_modules():
        if isinstance(module, dropouts):
            pending = (name, module)
        elif type(module) in expect and pending is not None:
            if type(pending[1]) is not expect[type(module)]:
                raise ValueError(
                    f"Expected {expect[type(module)].__name__} before {type(module).__name__} "
                    f"{name!r}, but got {type(pending[1]).__name__} {pending[0]!r}: its masks "
                    "are not a distribution over this layer's weight columns."
                )
            probs[f"{name}.weight" if name else "weight"] = check_p(
                f"of {pending[0]!r}", pending[1].p
            )
            pending = None
    if not probs:
        raise ValueError(
            "Expected a network with nn.Dropout layers before its Linear/Conv layers, but "
            "found none. Train it with dropout, or build "
            "BNN(..., guide=BernoulliDropout(p=...))."
        )
    copied = copy.deepcopy(net)
    for name, module in list(copied.named_modules()):
        if isinstance(module, dropouts):
            parent, _, child = name.rpartition(".")
            setattr(copied.get_submodule(parent), child, nn.Identity())
    prefix = bnn_kwargs.get("prefix", "")
    guide = BernoulliDropout({prefix + k: v for k, v in probs.items()}, estimator=estimator)
    prior = dist.Normal(0.0, 1.0) if prior is None else prior
    bnn = BNN(copied, prior, likelihood, guide=guide, **bnn_kwargs)
    bnn.mark_fitted()  # the trained network's weights are the posterior: predict does not warn
    return bnn
