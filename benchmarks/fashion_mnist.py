"""Bayesian LeNet-5 on Fashion-MNIST: MAP, mean-field VI, MC dropout, concrete dropout, a deep
ensemble and a last-layer Laplace, with the package's public API only (issue #18, part 1).

LeNet-5 (conv 6-16 with 5x5 kernels and 2x2 max pooling, fully connected 120-84-10, ReLU), the
60 000 training images minus a 5 000-image validation split (held out of every fit, used only
for temperature scaling when ``pyro_bdl.calibration`` is there), the 10 000 test images.
Metrics (``pyro_bdl.metrics``): accuracy, NLL, ECE (15 uniform bins), Brier and the OOD AUROC
of the predictive entropy (of the posterior predictive mean) against inverted test images
(``1 - x``) and uniform-noise images, plus the fit wall time.

    python benchmarks/fashion_mnist.py --output fmnist.md --json fmnist.json   # the full run
    python benchmarks/fashion_mnist.py --quick                                  # < 60 s (CI)
    python benchmarks/fashion_mnist.py --methods map dropout --epochs 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.infer.autoguide import AutoDelta
from torch import nn

from pyro_bdl import BNN, Categorical, MeanFieldNormal
from pyro_bdl.datasets import load_fashion_mnist
from pyro_bdl.guides import BernoulliDropout, ConcreteDropout
from pyro_bdl.metrics import accuracy, brier, ece, nll, ood_auroc
from pyro_bdl.posteriors import DeepEnsemble, Laplace, map_to_net
from pyro_bdl.priors import LayerwiseNormalPrior

try:  # recalibration (issue #18, part 4): on main once the calibration branch is merged
    from pyro_bdl.calibration import TemperatureScaling
except ImportError:  # pragma: no cover - a checkout without it
    TemperatureScaling = None

METHODS = ("meanfield", "dropout", "map", "laplace", "ensemble", "concrete")
#: uncertainty-baselines, LeNet-5 on Fashion-MNIST: (NLL, accuracy %, ECE or None)
PUBLISHED = {
    "map": (0.321, 91.0, None),
    "meanfield": (0.292, 89.5, 0.011),
    "ensemble": (0.200, 93.2, 0.010),
}
PUBLISHED_NOTE = {"ensemble": "10 members"}
LABELS = {
    "map": "deterministic (MAP)",
    "meanfield": "mean-field VI",
    "dropout": "MC dropout",
    "concrete": "concrete dropout",
    "ensemble": "deep ensemble",
    "laplace": "last-layer Laplace",
}
#: the drop probability of each weight matrix's input units for MC dropout: the fully
#: connected layers only (a mask on conv1's single input channel would drop whole images)
DROPOUT_SITES = ("7.weight", "9.weight", "11.weight")
N_BINS = 15
#: predictive-entropy histogram edges for the JSON file: [0, log 10] in 30 bins
ENTROPY_EDGES = torch.linspace(0.0, math.log(10.0), 31)
DTYPE = torch.float32


def make_lenet() -> nn.Sequential:
    """LeNet-5 for 1x28x28 inputs: conv(6, 5x5, pad 2)-pool-conv(16, 5x5)-pool-120-84-10.

    PyTorch's default initialisation (under torch's global seed). Parameter names: ``0.*``,
    ``3.*`` (convolutions), ``7.*``, ``9.*``, ``11.*`` (fully connected).
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    ).to(DTYPE)


def _net(seed: int) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_lenet()


# ---------------------------------------------------------------------------------- data
def load_data(cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Train / validation / test images ``(N, 1, 28, 28)`` and the two OOD sets.

    The validation split is a fixed random 5 000 (``cfg["n_val"]``) of the training images.
    """
    x, y = load_fashion_mnist("train", dtype=DTYPE)
    xt, yt = load_fashion_mnist("test", dtype=DTYPE)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    val, train = perm[: cfg["n_val"]], perm[cfg["n_val"] :][: cfg["n_train"]]
    images = {
        "x_train": x[train],
        "y_train": y[train],
        "x_val": x[val],
        "y_val": y[val],
        "x_test": xt[: cfg["n_test"]],
        "y_test": yt[: cfg["n_test"]],
    }
    n_ood = cfg["n_ood"]
    images["x_inverted"] = 1.0 - xt[:n_ood]
    gen = torch.Generator().manual_seed(4321)
    images["x_noise"] = torch.rand(n_ood, 784, generator=gen, dtype=DTYPE)
    return {k: v.view(-1, 1, 28, 28) if k.startswith("x") else v for k, v in images.items()}


# ---------------------------------------------------------------------------------- fits
def _schedule(cfg: dict[str, Any], lr: float, epochs: int) -> pyro.optim.PyroOptim:
    """Adam with the learning rate decayed exponentially to ``lr / 10`` over the epochs."""
    gamma = 0.1 ** (1.0 / max(epochs - 1, 1))
    return pyro.optim.ExponentialLR(
        {"optimizer": torch.optim.Adam, "optim_args": {"lr": lr}, "gamma": gamma}
    )


def _fit(bnn: BNN, data: dict, cfg: dict, lr: float, epochs: int, seed: int) -> None:
    bnn.fit(
        data["x_train"],
        data["y_train"],
        epochs=epochs,
        batch_size=cfg["batch_size"],
        optim=_schedule(cfg, lr, epochs),
        progress=False,
        seed=seed,
    )


def fit_map(data: dict, cfg: dict, seed: int) -> tuple[BNN, Any]:
    """Deterministic net: a point mass (``AutoDelta``) under the N(0, 1) prior = MAP."""
    bnn = BNN(_net(seed), dist.Normal(0.0, 1.0), Categorical(), guide=AutoDelta)
    _fit(bnn, data, cfg, cfg["lr"], cfg["epochs_map"], seed)
    return bnn, None


def fit_meanfield(data: dict, cfg: dict, seed: int) -> tuple[BNN, Any]:
    """Mean-field Gaussian VI, plain ELBO (no KL annealing) under N(0, 1) or, with
    ``mf_prior="radford"``, N(0, 1 / fan_in) per layer (``LayerwiseNormalPrior``).

    Means start at the network's initialisation, standard deviations at ``mf_init_scale``.
    """
    prior: Any = dist.Normal(0.0, 1.0)
    if cfg["mf_prior"] != "normal":
        prior = LayerwiseNormalPrior(cfg["mf_prior"])
    bnn = BNN(
        _net(seed),
        prior,
        Categorical(),
        guide=MeanFieldNormal(init_scale=cfg["mf_init_scale"]),
    )
    _fit(bnn, data, cfg, cfg["lr_meanfield"], cfg["epochs_meanfield"], seed)
    return bnn, None


def fit_dropout(data: dict, cfg: dict, seed: int) -> tuple[BNN, Any]:
    """MC dropout (Bernoulli guide, per-example masks) on the fully connected layers' inputs."""
    p = {site: cfg["dropout_p"] for site in DROPOUT_SITES}
    bnn = BNN(_net(seed), dist.Normal(0.0, 1.0), Categorical(), guide=BernoulliDropout(p))
    _fit(bnn, data, cfg, cfg["lr"], cfg["epochs_dropout"], seed)
    return bnn, None


def fit_concrete(data: dict, cfg: dict, seed: int) -> tuple[BNN, Any]:
    """Concrete dropout (p learned per weight matrix, temperature 0.1).

    The first convolution is left out of the Bayesian part (a point estimate): its input has
    one channel, so a mask there would drop whole images.
    """
    bnn = BNN(
        _net(seed),
        dist.Normal(0.0, 1.0),
        Categorical(),
        guide=ConcreteDropout(init_p=cfg["dropout_p"]),
        include=lambda name, param: not name.startswith("0."),
    )
    _fit(bnn, data, cfg, cfg["lr"], cfg["epochs_dropout"], seed)
    return bnn, bnn.guide.drop_probabilities()


def fit_ensemble(data: dict, cfg: dict, seed: int) -> tuple[BNN, Any]:
    """``DeepEnsemble`` of K MAP members, each from its own initialisation and batch order."""
    bnn = BNN(_net(seed), dist.Normal(0.0, 1.0), Categorical())
    k, epochs = cfg["members"], cfg["epochs_ensemble"]
    ens = DeepEnsemble(bnn, k, seeds=[seed + i for i in range(k)], make_net=make_lenet)
    ens.fit(
        data["x_train"],
        data["y_train"],
        epochs=epochs,
        batch_size=cfg["batch_size"],
        optim=lambda: _schedule(cfg, cfg["lr"], epochs),
    )
    return bnn, ens


def fit_laplace(data: dict, cfg: dict, seed: int, map_bnn: BNN | None = None) -> tuple[BNN, Any]:
    """Last-layer Laplace at the MAP (its fit reused when given), prior precision tuned on the
    evidence."""
    bnn = fit_map(data, cfg, seed)[0] if map_bnn is None else map_bnn
    map_to_net(bnn, data["x_train"][:2])
    lap = Laplace(bnn, hessian=cfg["laplace_hessian"], subset="last_layer")
    lap.fit(data["x_train"], data["y_train"])
    lap.optimize_prior(steps=cfg["laplace_steps"])
    return bnn, lap


FITS: dict[str, Callable[..., tuple[BNN, Any]]] = {
    "map": fit_map,
    "meanfield": fit_meanfield,
    "dropout": fit_dropout,
    "concrete": fit_concrete,
    "ensemble": fit_ensemble,
    "laplace": fit_laplace,
}


# ---------------------------------------------------------------------------------- scoring
def predict_probs(method: str, bnn: BNN, extra: Any, x: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Per-draw class probabilities ``(S, N, 10)``."""
    with torch.no_grad():
        if method == "map":
            return bnn.predict(x, 1, seed=0).samples
        if method == "ensemble":
            return bnn.predict(x, extra.num_draws, posterior=extra).samples
        if method == "laplace":
            return extra.predict_glm(x, link="probit").samples
        return bnn.predict(x, cfg["samples"], seed=0).samples


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Predictive entropy ``(N,)`` of the posterior predictive mean of ``(S, N, C)`` draws."""
    p = probs.mean(0)
    return -(p * p.clamp_min(1e-30).log()).sum(-1)


def _calibration(probs: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    res = ece(probs, y, n_bins=N_BINS)
    return {
        "ece": res.ece,
        "bins": {
            "lower": res.bin_lower.tolist(),
            "upper": res.bin_upper.tolist(),
            "confidence": [None if math.isnan(v) else v for v in res.confidence.tolist()],
            "accuracy": [None if math.isnan(v) else v for v in res.accuracy.tolist()],
            "count": [int(c) for c in res.count.tolist()],
        },
    }


def _histogram(score: torch.Tensor) -> list[int]:
    clipped = score.double().clamp(0.0, float(ENTROPY_EDGES[-1]))
    return [int(c) for c in torch.histogram(clipped, ENTROPY_EDGES.double()).hist.tolist()]


def score(method: str, bnn: BNN, extra: Any, data: dict, cfg: dict) -> dict[str, Any]:
    """Test metrics, OOD AUROC of the predictive entropy and (if available) temperature
    scaling fitted on the validation split."""
    y = data["y_test"]
    probs = predict_probs(method, bnn, extra, data["x_test"], cfg)
    h_in = entropy(probs)
    out: dict[str, Any] = {
        "accuracy": accuracy(probs, y),
        "nll": nll(probs, y),
        "brier": brier(probs, y),
        **_calibration(probs, y),
        "num_draws": probs.shape[0],
    }
    hist = {"edges": ENTROPY_EDGES.tolist(), "test": _histogram(h_in)}
    for name in ("inverted", "noise"):
        h_out = entropy(predict_probs(method, bnn, extra, data[f"x_{name}"], cfg))
        out[f"auroc_{name}"] = ood_auroc(h_in, h_out)
        hist[name] = _histogram(h_out)
        out[f"entropy_{name}_mean"] = float(h_out.mean())
    out["entropy_test_mean"] = float(h_in.mean())
    out["entropy_hist"] = hist
    val = predict_probs(method, bnn, extra, data["x_val"], cfg).mean(0)
    if cfg.get("save_probs"):  # predictive means, to recalibrate later without refitting
        folder = Path(cfg["save_probs"])
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"val": val, "test": probs.mean(0)}, folder / f"{method}.pt")
    if TemperatureScaling is not None:
        out.update(temperature_scaled(val, data["y_val"], probs.mean(0), y))
    return out


def temperature_scaled(
    val: torch.Tensor, y_val: torch.Tensor, test: torch.Tensor, y_test: torch.Tensor
) -> dict[str, float]:
    """Temperature scaling of predictive means ``(N, C)``, fitted on the validation split."""
    ts = TemperatureScaling().fit(val, y_val)
    tempered = torch.as_tensor(ts(test)).unsqueeze(0)
    return {
        "temperature": float(ts.temperature),
        "ece_ts": ece(tempered, y_test, n_bins=N_BINS).ece,
        "nll_ts": nll(tempered, y_test),
    }


# ---------------------------------------------------------------------------------- the table
def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table: ours beside the published uncertainty-baselines numbers."""
    with_ts = any("ece_ts" in r for r in results.values())
    head = [
        "method",
        "epochs",
        "acc %",
        "NLL",
        "ECE",
        *(["ECE after TS (T)"] if with_ts else []),
        "Brier",
        "AUROC inverted",
        "AUROC noise",
        "fit s",
        "published NLL / acc % / ECE",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, r in results.items():
        pub = PUBLISHED.get(method)
        pub_text = "n/a"
        if pub is not None:
            pub_text = f"{pub[0]:.3f} / {pub[1]:.1f} / {_fmt(pub[2], 3)}"
            if method in PUBLISHED_NOTE:
                pub_text += f" ({PUBLISHED_NOTE[method]})"
        cells = [
            LABELS[method],
            str(r["epochs"]),
            f"{100 * r['accuracy']:.2f}",
            f"{r['nll']:.3f}",
            f"{r['ece']:.3f}",
            *(
                [f"{r['ece_ts']:.3f} ({r['temperature']:.2f})" if "ece_ts" in r else "n/a"]
                if with_ts
                else []
            ),
            f"{r['brier']:.3f}",
            f"{r['auroc_inverted']:.3f}",
            f"{r['auroc_noise']:.3f}",
            f"{r['fit_seconds']:.0f}",
            pub_text,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- the program
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--epochs", type=int, default=None, help="one epoch count for every fit")
    parser.add_argument("--epochs-map", type=int, default=12, help="MAP (and Laplace's MAP)")
    parser.add_argument("--epochs-meanfield", type=int, default=25)
    parser.add_argument("--epochs-dropout", type=int, default=12, help="MC / concrete dropout")
    parser.add_argument("--epochs-ensemble", type=int, default=5, help="per member")
    parser.add_argument("--members", type=int, default=5, help="deep ensemble size K")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam, point fits and dropout")
    parser.add_argument("--lr-meanfield", type=float, default=2e-3)
    parser.add_argument("--mf-init-scale", type=float, default=1e-3)
    parser.add_argument(
        "--mf-prior",
        choices=("normal", "radford", "kaiming"),
        default="normal",
        help="mean-field prior: N(0, 1) or LayerwiseNormalPrior(method)",
    )
    parser.add_argument("--dropout-p", type=float, default=0.1)
    parser.add_argument("--laplace-hessian", choices=("full", "kron", "diag"), default="full")
    parser.add_argument("--laplace-steps", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20, help="MC draws per prediction")
    parser.add_argument("--n-train", type=int, default=55_000)
    parser.add_argument("--n-val", type=int, default=5_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--n-ood", type=int, default=2_000, help="images per OOD set")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="also write the markdown table here")
    parser.add_argument("--json", default=None, help="write the results (with bins) here")
    parser.add_argument(
        "--save-probs", default=None, help="folder: save validation/test predictive means"
    )
    parser.add_argument(
        "--recalibrate",
        default=None,
        metavar="FOLDER",
        help="no fitting: add temperature scaling to --json's results from --save-probs FOLDER",
    )
    parser.add_argument(
        "--quick", action="store_true", help="512 images, 1 epoch, 2 members, 5 draws (CI)"
    )
    return parser


def _config(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.n_train, args.n_val, args.n_test, args.n_ood = 512, 256, 512, 128
        args.epochs, args.members, args.samples, args.laplace_steps = 1, 2, 5, 20
    cfg = {k: v for k, v in vars(args).items() if k not in ("output", "json", "methods", "argv")}
    for key in ("epochs_map", "epochs_meanfield", "epochs_dropout", "epochs_ensemble"):
        if args.epochs is not None:
            cfg[key] = args.epochs
    return cfg


def _epochs(method: str, cfg: dict) -> str:
    if method == "ensemble":
        return f"{cfg['members']} × {cfg['epochs_ensemble']}"
    key = {"concrete": "dropout", "laplace": "map"}.get(method, method)
    return str(cfg[f"epochs_{key}"])


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Fit and score every method; print (and optionally write) the table; return the results.

    :return: ``{method: {"accuracy", "nll", "ece", "brier", "auroc_inverted", "auroc_noise",
        "fit_seconds", "bins", "entropy_hist", ...}}``
    """
    args = _parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)
    if args.recalibrate:
        return recalibrate(args)
    cfg = _config(args)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = load_data(cfg)
    results: dict[str, dict[str, Any]] = {}
    map_fit: tuple[BNN, float] | None = None
    for method in args.methods:
        pyro.clear_param_store()
        t0 = time.perf_counter()
        if method == "laplace" and map_fit is not None:
            bnn, extra = fit_laplace(data, cfg, args.seed, map_fit[0])
            fit_s = time.perf_counter() - t0 + map_fit[1]
        else:
            bnn, extra = FITS[method](data, cfg, args.seed)
            fit_s = time.perf_counter() - t0
        if method == "map":
            map_fit = (bnn, fit_s)
        t1 = time.perf_counter()
        record = score(method, bnn, extra, data, cfg)
        record.update(
            epochs=_epochs(method, cfg),
            fit_seconds=fit_s,
            predict_seconds=time.perf_counter() - t1,
        )
        if method == "concrete":
            record["drop_probabilities"] = extra
        if method == "laplace":
            record["prior_precision"] = extra.prior_precision.tolist()
        results[method] = record
        print(
            f"[{time.perf_counter() - start:6.0f} s] {method}: acc {record['accuracy']:.4f} "
            f"NLL {record['nll']:.4f} ECE {record['ece']:.4f} AUROC "
            f"{record['auroc_inverted']:.3f}/{record['auroc_noise']:.3f} "
            f"(fit {fit_s:.0f} s, predict {record['predict_seconds']:.0f} s)",
            flush=True,
        )
        _write(results, cfg, args, time.perf_counter() - start)
    table = format_table(results)
    print(table)
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    return results


def recalibrate(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``--recalibrate FOLDER --json FILE``: temperature scaling of the saved predictive means
    (fitted on the validation split), added to the results in FILE; the table is rewritten."""
    if TemperatureScaling is None or not args.json:
        raise ValueError(
            "Expected pyro_bdl.calibration and --json FILE (the results to update) with "
            f"--recalibrate, but got calibration={TemperatureScaling is not None}, "
            f"--json={args.json!r}."
        )
    payload = json.loads(Path(args.json).read_text())
    data = load_data(payload["config"])
    for method, record in payload["results"].items():
        saved = torch.load(Path(args.recalibrate) / f"{method}.pt")
        record.update(
            temperature_scaled(saved["val"], data["y_val"], saved["test"], data["y_test"])
        )
    Path(args.json).write_text(json.dumps(payload, indent=1))
    table = format_table(payload["results"])
    if args.output:
        Path(args.output).write_text(table)
    print(table)
    return payload["results"]


def _write(results: dict, cfg: dict, args: argparse.Namespace, wall: float) -> None:
    """Rewritten after every method, so a run stopped early leaves what it has."""
    if args.output:
        Path(args.output).write_text(format_table(results))
    if args.json:
        argv = sys.argv[1:] if args.argv is None else args.argv
        payload = {
            "command": " ".join(["python benchmarks/fashion_mnist.py", *argv]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"{cfg['threads']} torch thread(s)",
            "labels": LABELS,
            "config": cfg,
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "wall_seconds": wall,
            "published": {k: list(v) for k, v in PUBLISHED.items()},
            "results": results,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
