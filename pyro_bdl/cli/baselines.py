"""The linear baselines of the ``pyro-bdl`` reports: ridge and L2 logistic regression.

Every report puts a linear model next to the BNN, so the reader sees whether the network earns
its keep. Both are fitted in float64 with torch alone (scikit-learn is not a dependency of the
command) on the standardised features the BNN sees:

* :func:`ridge`: ridge regression with an intercept; the penalty ``alpha`` is chosen from a grid
  by exact leave-one-out error (as scikit-learn's ``RidgeCV``); the predictive is Gaussian with
  the residual variance ``RSS / (n - effective parameters)``.
* :func:`logistic_regression`: multinomial logistic regression with the penalty
  ``||W||^2 / (2 C)`` on the weights (not the intercepts), ``C = 1`` as scikit-learn's default,
  fitted by L-BFGS.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 3, generator=g)
    >>> y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3 * torch.randn(200, generator=g)
    >>> fit = ridge(x[:150], y[:150], x[150:])  # noise std 0.3: little to shrink
    >>> fit.alpha, round(float(fit.prediction.scale[0, 0]), 2)  # the penalty, the residual std
    (0.001, 0.31)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import Tensor

    from ..uncertainty import Prediction

__all__ = ["ALPHAS", "LinearFit", "logistic_regression", "ridge"]

#: The ridge penalties tried: 10^-3 ... 10^3, four per decade.
ALPHAS = tuple(float(a) for a in torch.logspace(-3, 3, 25, dtype=torch.float64))


@dataclass
class LinearFit:
    """A fitted linear baseline and its prediction on the test inputs.

    :param prediction: a one-draw :class:`~pyro_bdl.uncertainty.Prediction` (Gaussian with the
        residual std for ridge; class probabilities for logistic regression), in the units
        the model was fitted in.
    :param alpha: ridge: the chosen penalty; logistic regression: ``1 / C``.
    :param description: one line for the report.
    """

    prediction: Prediction
    alpha: float
    description: str


def ridge(x: Tensor, y: Tensor, x_test: Tensor, alphas: tuple[float, ...] = ALPHAS) -> LinearFit:
    """Ridge regression with an intercept, ``alpha`` chosen by exact leave-one-out error.

    :param x: training inputs ``(N, D)`` (standardised: the penalty treats features alike).
    :param y: training targets ``(N,)``.
    :param x_test: test inputs ``(M, D)``.
    :param alphas: the penalties to try.
    :return: a :class:`LinearFit` whose prediction has mean ``(M,)`` and the residual std.

    Example::

        >>> x = torch.linspace(-1, 1, 20).unsqueeze(-1)
        >>> ridge(x, 3 * x[:, 0] + 1, x[:2]).prediction.mean.round(decimals=2)  # 3x + 1
        tensor([-2.0000, -1.6800], dtype=torch.float64)
    """
    from ..uncertainty import Prediction

    xd, yd, xt = x.double(), y.double(), x_test.double()
    x_mean, y_mean = xd.mean(0), yd.mean()
    xc, yc = xd - x_mean, yd - y_mean
    u, s, _ = torch.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    best: tuple[float, float] | None = None
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink * uty)
        leverage = (u**2 @ shrink) + 1 / len(yd)  # the intercept's leverage too
        loo = ((yc - fitted) / (1 - leverage)).square().mean()
        if best is None or float(loo) < best[1]:
            best = (alpha, float(loo))
    assert best is not None  # alphas is not empty
    alpha = best[0]
    d = xd.shape[1]
    w = torch.linalg.solve(xc.T @ xc + alpha * torch.eye(d, dtype=xd.dtype), xc.T @ yc)
    residuals = yc - xc @ w
    dof = float((s**2 / (s**2 + alpha)).sum()) + 1
    scale = (residuals.square().sum() / max(len(yd) - dof, 1.0)).sqrt()
    mean = (xt - x_mean) @ w + y_mean
    prediction = Prediction(
        "gaussian", samples=mean.unsqueeze(0), scale=scale.expand(1, len(mean)).clone()
    )
    return LinearFit(
        prediction,
        alpha,
        f"ridge regression (alpha {alpha:.3g}, chosen by leave-one-out error), "
        "Gaussian predictive with the residual std",
    )


def logistic_regression(
    x: Tensor, y: Tensor, x_test: Tensor, num_classes: int, c: float = 1.0
) -> LinearFit:
    """Multinomial logistic regression with the penalty ``||W||^2 / (2 c)``, by L-BFGS.

    :param x: training inputs ``(N, D)`` (standardised).
    :param y: training labels ``(N,)`` in ``0..num_classes-1``.
    :param x_test: test inputs ``(M, D)``.
    :param num_classes: the number of classes K.
    :param c: inverse penalty strength (scikit-learn's ``C``).
    :return: a :class:`LinearFit` whose prediction holds class probabilities ``(1, M, K)``.

    Example::

        >>> x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
        >>> fit = logistic_regression(x, torch.tensor([0, 0, 1, 1]), x, 2)
        >>> fit.prediction.mean.argmax(-1).tolist()
        [0, 0, 1, 1]
    """
    from ..uncertainty import Prediction

    xd, xt = x.double(), x_test.double()
    # two classes: one weight vector (class 0's logit is 0), as scikit-learn's binary model
    free = 1 if num_classes == 2 else num_classes
    w = torch.zeros(xd.shape[1], free, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(free, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=1000, tolerance_grad=1e-10, line_search_fn="strong_wolfe"
    )

    def logits(inputs: Tensor) -> Tensor:
        f = inputs @ w + b
        return torch.cat([torch.zeros_like(f), f], -1) if free == 1 else f

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits(xd), y, reduction="sum")
        loss = loss + w.square().sum() / (2 * c)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        probs = torch.softmax(logits(xt), -1)
    return LinearFit(
        Prediction("categorical", samples=probs.unsqueeze(0)),
        1 / c,
        f"logistic regression (L2 penalty ||W||²/(2C), C = {c:g}, as scikit-learn's default)",
    )
