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


#: The dropout layers :func:`from_dropout_net` reads (and replaces by identities).
DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)

#: Modules a dropout layer's masks pass through unchanged (``f(m * x) = m * f(x)`` for a mask
#: ``m`` of zeros and ``1 / (1 - p)``): elementwise, zero at zero and positively homogeneous, or
#: a reshape.
MASK_COMMUTING = (nn.Identity, nn.ReLU, nn.LeakyReLU, nn.Flatten)


def _in_sequentials(net: nn.Module, *names: str) -> bool:
    """Whether every container above the named modules is a plain ``nn.Sequential`` (whose
    forward runs its children in registration order)."""
    for name in names:
        parts = name.split(".")[:-1] if name else []
        module = net
        if type(module) is not nn.Sequential:
            return False
        for part in parts:
            module = module.get_submodule(part)
            if type(module) is not nn.Sequential:
                return False
    return True


def _check_masks_pass(between: list[tuple[str, nn.Module]], drop: str, layer: str) -> None:
    """The modules run between a dropout layer and its layer must let the masks through."""
    for name, module in between:
        if type(module) is nn.Sequential or isinstance(module, MASK_COMMUTING):
            continue
        raise ValueError(
            f"Expected the masks of dropout layer {drop!r} to reach layer {layer!r} unchanged, "
            f"but {type(module).__name__} {name!r} runs between them, and f(mask * x) != "
            f"mask * f(x) for it: the MC-dropout passes of this net are not a distribution over "
            f"the weights of {layer!r}. Only {', '.join(m.__name__ for m in MASK_COMMUTING)} "
            "may sit between a dropout layer and its Linear/Conv layer (put the dropout right "
            "before the layer when training)."
        )


def _drop_probabilities(net: nn.Module) -> dict[str, float]:
    """``{weight name: p}``: each dropout layer's p for the next Linear/Conv layer's weight
    (layers without dropout before them are left out: p = 0), checked as
    :func:`from_dropout_net` states."""
    expect = {
        nn.Linear: nn.Dropout,
        nn.Conv1d: nn.Dropout1d,
        nn.Conv2d: nn.Dropout2d,
        nn.Conv3d: nn.Dropout3d,
    }
    probs: dict[str, float] = {}
    pending: tuple[str, nn.Module] | None = None
    between: list[tuple[str, nn.Module]] = []  # modules run after the pending dropout
    for name, module in net.named_modules():
        if isinstance(module, DROPOUTS):
            if pending is not None and _in_sequentials(net, name, pending[0]):
                raise ValueError(
                    f"Expected one dropout layer before each Linear/Conv layer, but "
                    f"{type(module).__name__} {name!r} follows {type(pending[1]).__name__} "
                    f"{pending[0]!r} with no layer between them: merge them into one "
                    "dropout layer (keep probability (1 - p1)(1 - p2))."
                )
            pending, between = (name, module), []
        elif type(module) in expect and pending is not None:
            if type(pending[1]) is not expect[type(module)]:
                raise ValueError(
                    f"Expected {expect[type(module)].__name__} before {type(module).__name__} "
                    f"{name!r}, but got {type(pending[1]).__name__} {pending[0]!r}: its masks "
                    "are not a distribution over this layer's weight columns."
                )
            if _in_sequentials(net, name, pending[0]):
                _check_masks_pass(between, pending[0], name)
            probs[f"{name}.weight" if name else "weight"] = check_p(
                f"of {pending[0]!r}", pending[1].p
            )
            pending = None
        elif pending is not None:
            between.append((name, module))
    if not probs:
        raise ValueError(
            "Expected a network with nn.Dropout layers before its Linear/Conv layers, but "
            "found none. Train it with dropout, or build "
            "BNN(..., guide=BernoulliDropout(p=...))."
        )
    if pending is not None and _in_sequentials(net, pending[0]):
        raise ValueError(
            f"Expected a Linear/Conv layer after every dropout layer, but "
            f"{type(pending[1]).__name__} {pending[0]!r} drops the network's outputs: its "
            "masks are not a distribution over any weight. Remove it (it only adds noise to "
            "the outputs) or read the rest with a copy of the net without it."
        )
    return probs


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
    p becomes that weight's drop probability and M = W / (1 - p); a layer with no dropout
    before it gets p = 0 (no mask, and no random numbers drawn, as ``nn.Dropout(0)``). The
    network is copied and its dropout layers replaced by identities, so the guide draws the
    masks.

    **Mask for mask.** With the same seed, ``bnn.predict(x, S, chunk_size=1, seed=s)`` equals
    S MC-dropout passes of ``net`` after ``torch.manual_seed(s)`` (its dropout layers in
    training mode, every other module in evaluation mode: ``net.train()`` for a net without
    BatchNorm), to float rounding, for any placement of the dropout layers (before every
    layer, some or none of them) when

    * the forward runs the modules in registration order (an ``nn.Sequential``, nested ones
      included), and
    * between a dropout layer and its ``Linear``/``ConvNd`` there are only modules the
      masks pass through unchanged (``nn.Identity``, ``nn.ReLU``, ``nn.LeakyReLU``,
      ``nn.Flatten``: they commute with multiplying by 0 or 1/(1 - p)), and no second
      dropout layer.

    Inside ``nn.Sequential`` containers both are checked, and a layout that breaks them (e.g.
    ``Dropout, Tanh, Linear``: the masks would be applied after the ``Tanh`` instead of before
    it, a different model) is refused. A network with its own ``forward`` is read in
    registration order without these checks. ``chunk_size > 1`` draws the same distribution
    from a different random stream (the masks of several draws come from one batched call).

    :param net: the trained network (unchanged).
    :param likelihood: the likelihood it was trained with.
    :param prior: the prior (default ``Normal(0, 1)``); it matters only for further fitting.
    :return: a :class:`~pyro_bdl.BNN` with an :class:`~pyro_bdl.guides.AutoDropout` guide.
    :raises ValueError: for a network without dropout before any layer, a dropout layer of
        the wrong kind for its layer, or (inside ``nn.Sequential``) a layout whose masks are
        not a distribution over the layer's weights (see above).

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
    probs = _drop_probabilities(net)
    copied = copy.deepcopy(net)
    for name, module in list(copied.named_modules()):
        if isinstance(module, DROPOUTS):
            parent, _, child = name.rpartition(".")
            setattr(copied.get_submodule(parent), child, nn.Identity())
    prefix = bnn_kwargs.get("prefix", "")
    guide = BernoulliDropout({prefix + k: v for k, v in probs.items()}, estimator=estimator)
    prior = dist.Normal(0.0, 1.0) if prior is None else prior
    bnn = BNN(copied, prior, likelihood, guide=guide, **bnn_kwargs)
    bnn.mark_fitted()  # the trained network's weights are the posterior: predict does not warn
    return bnn
