"""Concrete-dropout sanity anchor (REFERENCES §4): y = 2x + 8 + N(0, 1).

As N grows from 10 to 10^4 the learned hidden-layer drop probability should fall and the
aleatoric standard deviation reach 1 (epistemic -> 0, RMSE -> 1).

    python benchmarks/concrete_anchor.py            # N = 10, 100, 1000, 10000
    python benchmarks/concrete_anchor.py --quick    # N = 10, 100 at a tiny budget (CI)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import pyro.distributions as dist
import torch
from torch import nn

from pyro_bdl import BNN, HeteroskedasticGaussian
from pyro_bdl.datasets import linear_toy
from pyro_bdl.guides import ConcreteDropout


def run(n: int, steps: int, seed: int, lr: float) -> dict[str, float]:
    """Fit one concrete-dropout BNN on ``n`` points; return p, aleatoric/epistemic std, RMSE."""
    x, y = linear_toy(n, seed=seed, dtype=torch.get_default_dtype())
    x_test, y_test = linear_toy(2000, seed=seed + 1000, dtype=torch.get_default_dtype())
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    # prior length-scale l = 1e-2 on the weights, as in the concrete-dropout notebook
    bnn = BNN(net, dist.Normal(0.0, 100.0), HeteroskedasticGaussian(), guide=ConcreteDropout(0.3))
    batch = min(n, 128)
    epochs = max(1, steps * batch // n)
    start = time.perf_counter()
    bnn.fit(x, y, epochs=epochs, batch_size=batch, lr=lr, progress=False, seed=seed)
    pred = bnn.predict(x_test, num_samples=200, seed=seed)
    parts = pred.decompose()
    ps = bnn.guide.drop_probabilities()
    return {
        "n": n,
        "p_hidden": ps["2.weight"],
        "p_input": ps["0.weight"],
        "aleatoric_std": parts.aleatoric.mean().sqrt().item(),
        "epistemic_std": parts.epistemic.mean().sqrt().item(),
        "rmse": (pred.mean - y_test).pow(2).mean().sqrt().item(),
        "seconds": time.perf_counter() - start,
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, float]]:
    """Run the anchor and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--steps", type=int, default=5000, help="optimisation steps per fit")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="N = 10, 100 and 200 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.steps = [10, 100], 200
    rows = [run(n, args.steps, args.seed, args.lr) for n in args.sizes]
    print("| N | p (hidden) | p (input) | aleatoric std | epistemic std | RMSE | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['p_hidden']:.3f} | {r['p_input']:.3f} | {r['aleatoric_std']:.3f} | "
            f"{r['epistemic_std']:.3f} | {r['rmse']:.3f} | {r['seconds']:.1f} |"
        )
    return rows


if __name__ == "__main__":
    main()
