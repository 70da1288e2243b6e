"""Reload a model written by ``pyro-bdl fit`` and predict in the data's original units.

The report folder of ``pyro-bdl fit`` holds ``model.json`` (the columns, the standardisation,
the architecture) and ``posterior.pt`` (the fitted posterior). :func:`load_fit` rebuilds the
network, loads the posterior, and returns a :class:`FittedModel` whose
:meth:`~FittedModel.predict` takes raw feature rows -- the CSV's units, in ``model.json``'s
column order -- standardises them with the training statistics and, for regression, returns
predictions in the target's original units.

Example::

    >>> model = load_fit("pyro_bdl_fit")  # doctest: +SKIP
    >>> pred = model.predict([[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.86, 87]])  # doctest: +SKIP
    >>> pred.mean, pred.interval(0.95)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .common import DTYPE, CLIError, mlp

if TYPE_CHECKING:
    from ..bnn import BNN
    from ..uncertainty import Prediction

__all__ = ["ACTIVATIONS", "FittedModel", "load_fit"]

#: The hidden-layer activations ``model.json`` may name.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass
class FittedModel:
    """A model fitted by ``pyro-bdl fit``, reloaded by :func:`load_fit`.

    :param bnn: the BNN with its fitted posterior.
    :param meta: the contents of ``model.json``.

    Example::

        >>> model = load_fit("pyro_bdl_fit")  # doctest: +SKIP
        >>> model.features, model.classes  # doctest: +SKIP
        (['age', 'sex', 'bmi', ...], None)
    """

    bnn: BNN
    meta: dict[str, Any]

    @property
    def features(self) -> list[str]:
        """The feature columns, in the order :meth:`predict` expects them."""
        return list(self.meta["features"])

    @property
    def classes(self) -> list[str] | None:
        """The class labels (``classes[k]`` is label ``k``); ``None`` for regression."""
        classes = self.meta.get("classes")
        return None if classes is None else list(classes)

    def predict(
        self,
        rows: Sequence[Sequence[float]] | torch.Tensor,
        num_samples: int = 100,
        *,
        seed: int | None = None,
    ) -> Prediction:
        """Posterior predictive at raw feature rows, in the data's original units.

        :param rows: ``(N, features)`` values in the CSV's units, columns as :attr:`features`.
        :param num_samples: posterior draws.
        :param seed: if given, the same draws every call (the report used ``meta["seed"]``).
        :return: a :class:`~pyro_bdl.uncertainty.Prediction`: for regression Gaussian draws in
            the target's units (``mean``, ``interval``, ``decompose`` in those units); for
            classification class probabilities ``(S, N, K)``, ``K`` as :attr:`classes`.
        :raises ValueError: for rows of the wrong width.
        """
        from ..uncertainty import Prediction

        x = torch.as_tensor(rows, dtype=DTYPE)
        if x.dim() != 2 or x.shape[1] != len(self.features):
            raise ValueError(
                f"Expected rows of shape (N, {len(self.features)}) with the columns "
                f"{self.features}, but got shape {tuple(x.shape)}."
            )
        mean = torch.tensor(self.meta["feature_mean"], dtype=DTYPE)
        std = torch.tensor(self.meta["feature_std"], dtype=DTYPE)
        pred = self.bnn.predict((x - mean) / std, num_samples, seed=seed)
        if self.meta["task"] != "regression":
            return pred
        assert pred.scale is not None  # a Gaussian likelihood predicts a noise std
        y_mean, y_std = self.meta["target_mean"], self.meta["target_std"]
        return Prediction(
            "gaussian", samples=pred.samples * y_std + y_mean, scale=pred.scale * y_std
        )


def load_fit(folder: str | os.PathLike[str]) -> FittedModel:
    """Reload the model of a ``pyro-bdl fit`` report folder.

    :param folder: the folder ``pyro-bdl fit --out`` wrote (with ``model.json`` and
        ``posterior.pt``).
    :return: a :class:`FittedModel`.
    :raises CLIError: if the folder lacks those files or names an unknown activation.

    Example::

        >>> load_fit("no-such-folder")
        Traceback (most recent call last):
        ...
        pyro_bdl.cli.common.CLIError: no model.json in 'no-such-folder': expected the folder \
that `pyro-bdl fit --out` wrote
    """
    from ..bnn import BNN

    path = Path(folder)
    meta_file, posterior = path / "model.json", path / "posterior.pt"
    for f in (meta_file, posterior):
        if not f.is_file():
            raise CLIError(
                f"no {f.name} in {str(path)!r}: expected the folder that `pyro-bdl fit --out` wrote"
            )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    activation = ACTIVATIONS.get(meta.get("activation", "relu"))
    if activation is None:
        raise CLIError(
            f"model.json names the activation {meta['activation']!r}; expected one of "
            f"{sorted(ACTIVATIONS)}"
        )
    net = mlp(len(meta["features"]), meta["hidden"], meta["outputs"], activation)
    return FittedModel(BNN.load(posterior, net=net), meta)
