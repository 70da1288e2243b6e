"""Out-of-distribution detection on scikit-learn's digits: which uncertainty flags the unknown?

A ``64 -> 100 -> K`` MLP with a Categorical likelihood is trained on the digits 0-7
(:func:`pyro_bdl.datasets.load_digits` with ``held_out_classes=(8, 9)``), as a BNN with a
mean-field Gaussian guide and as one with Bernoulli dropout (MC dropout as variational
inference). Two kinds of inputs it has never seen are then scored:

* the held-out digits 8 and 9 ("near" OOD: same pixels, new shapes);
* uniform noise images ("far" OOD).

Three scores, higher = more OOD (REFERENCES.md section 3), are compared by the AUROC of
separating in-distribution test images from each OOD set:

* epistemic: the mutual information :math:`H[\\bar p] - \\overline{H[p_s]}`;
* total: the predictive entropy :math:`H[\\bar p]`;
* max-prob: :math:`1 - \\max_c \\bar p_c`.

The script prints the test accuracy, NLL and ECE of each guide and the AUROC table, and saves
histograms of the epistemic score.

Run::

    python examples/ood_digits.py --out figures/
    python examples/ood_digits.py --quick --out /tmp  # seconds, for smoke tests
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_bdl import BNN, Categorical, Prediction
from pyro_bdl.datasets import load_digits
from pyro_bdl.guides import BernoulliDropout, MeanFieldNormal
from pyro_bdl.metrics import accuracy, ece, nll, ood_auroc
from pyro_bdl.plots import uncertainty_histogram

SCORES = ("epistemic", "total", "max-prob")
FIGURE = "ood_digits.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` shrinks every budget to a smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="split, initialisation and RNG seed")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the figure")
    parser.add_argument("--epochs", type=int, default=200, help="passes over the training set")
    parser.add_argument("--batch-size", type=int, default=128, help="SVI minibatch size")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    parser.add_argument("--hidden", type=int, default=100, help="hidden units of 64-H-K")
    parser.add_argument("--dropout-p", type=float, default=0.1, help="drop probability")
    parser.add_argument("--num-samples", type=int, default=100, help="predictive draws")
    parser.add_argument(
        "--held-out", type=int, nargs="+", default=[8, 9], help="digits held out as OOD"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; one is fastest for tensors this small (0: leave torch's)",
    )
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.hidden, args.num_samples = 2, 16, 10
    return args


def make_bnn(num_classes: int, hidden: int, guide: Any) -> BNN:
    """``64 -> hidden -> num_classes`` ReLU MLP, N(0, 1) prior on every weight."""
    net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    return BNN(net, dist.Normal(0.0, 1.0), Categorical(), guide=guide)


def scores(pred: Prediction) -> dict[str, torch.Tensor]:
    """The three OOD scores of every input (higher = more out-of-distribution)."""
    parts = pred.decompose()
    return {
        "epistemic": parts.epistemic,
        "total": parts.total,
        "max-prob": 1.0 - pred.mean.max(-1).values,
    }


def evaluate(
    bnn: BNN,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    ood: dict[str, torch.Tensor],
    num_samples: int,
    seed: int,
) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Test metrics and AUROCs of one fitted BNN, and the scores (for the figure)."""
    pred = bnn.predict(x_test, num_samples=num_samples, seed=seed)
    s_in = scores(pred)
    per_set = {"in": s_in}
    auroc: dict[str, dict[str, float]] = {}
    for name, x_ood in ood.items():
        s_out = scores(bnn.predict(x_ood, num_samples=num_samples, seed=seed))
        per_set[name] = s_out
        auroc[name] = {k: ood_auroc(s_in[k], s_out[k]) for k in SCORES}
    metrics = {
        "accuracy": accuracy(pred, y_test),
        "nll": float(nll(pred, y_test)),
        "ece": ece(pred, y_test).ece,
        "auroc": auroc,
    }
    return metrics, per_set


def markdown_tables(results: dict[str, dict[str, Any]]) -> str:
    """Test metrics and AUROCs as two markdown tables."""
    lines = [
        "| guide | accuracy | NLL | ECE | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for guide, r in results.items():
        lines.append(
            f"| {guide} | {r['accuracy']:.3f} | {r['nll']:.3f} | {r['ece']:.3f} "
            f"| {r['seconds']:.0f} |"
        )
    lines += [
        "",
        "| guide | OOD set | AUROC epistemic (MI) | AUROC total (entropy) | AUROC 1 - max p |",
        "|---|---|---:|---:|---:|",
    ]
    for guide, r in results.items():
        for ood_set, a in r["auroc"].items():
            lines.append(
                f"| {guide} | {ood_set} | {a['epistemic']:.3f} | {a['total']:.3f} "
                f"| {a['max-prob']:.3f} |"
            )
    return "\n".join(lines)


def plot(all_scores: dict[str, dict[str, dict[str, torch.Tensor]]], path: Path) -> None:
    """Histograms of the epistemic score: one row per guide, one column per OOD set."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    guides = list(all_scores)
    ood_sets = [k for k in all_scores[guides[0]] if k != "in"]
    fig = Figure(figsize=(5.5 * len(ood_sets), 3.8 * len(guides)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(guides), len(ood_sets), squeeze=False)
    for row, guide in enumerate(guides):
        s = all_scores[guide]
        for col, ood_set in enumerate(ood_sets):
            ax = axes[row, col]
            uncertainty_histogram(
                s["in"]["epistemic"], s[ood_set]["epistemic"], "mutual information", ax=ax
            )
            ax.set_title(f"{guide}, test vs {ood_set}: {ax.get_title()}", fontsize="medium")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fit both guides, print the tables, save the figure; return the numbers."""
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    dtype = torch.get_default_dtype()
    data = load_digits(held_out_classes=tuple(args.held_out), seed=args.seed, dtype=dtype)
    assert data.x_ood is not None
    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.rand(len(data.x_test), 64, generator=generator, dtype=dtype)
    ood = {"held-out digits": data.x_ood, "noise": noise}
    num_classes = len(data.class_names)

    guides = {
        "mean-field": MeanFieldNormal(init_scale=1e-3),
        "dropout": BernoulliDropout(args.dropout_p),
    }
    results: dict[str, dict[str, Any]] = {}
    all_scores = {}
    for name, guide in guides.items():
        torch.manual_seed(args.seed)  # same initial network for both guides
        bnn = make_bnn(num_classes, args.hidden, guide)
        start = time.perf_counter()
        bnn.fit(
            data.x_train,
            data.y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            progress=args.progress,
        )
        metrics, all_scores[name] = evaluate(
            bnn, data.x_test, data.y_test, ood, args.num_samples, args.seed
        )
        results[name] = {**metrics, "seconds": time.perf_counter() - start}

    held = ", ".join(map(str, data.held_out_classes))
    print(f"digits: train on {', '.join(data.class_names)}; OOD: held-out {held} and noise\n")
    print(markdown_tables(results))
    path = args.out / FIGURE
    plot(all_scores, path)
    print(f"\nfigure: {path}")
    return {"guides": results, "figure": str(path)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the example; ``argv`` as on the command line (``None``: ``sys.argv[1:]``)."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
