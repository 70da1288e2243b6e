"""Time the ``pyro-bdl`` commands and collect their numbers: the README's *Timings* table.

Runs each command in a fresh interpreter (imports included, as a user sees it) with one torch
thread, and prints a Markdown table of CPU and wall times followed by each command's summary.
With one thread the CPU time is what the wall time is on an idle core; on a busy machine the
wall time grows with the load, the CPU time hardly. The fit
runs use scikit-learn's bundled data sets (diabetes, breast cancer, wine) written to CSV files
in a temporary folder, with ``RidgeCV`` / ``LogisticRegression`` on the same split for reference.

    python benchmarks/cli_runs.py                       # every command (a few minutes)
    python benchmarks/cli_runs.py --only fit-diabetes quickstart
    PYTHONPATH=/other/checkout python benchmarks/cli_runs.py --only demo   # another version

Needs scikit-learn (the demo and the data sets).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("diabetes", "breast_cancer", "wine")


def write_csvs(folder: Path) -> dict[str, Path]:
    """scikit-learn's bundled diabetes, breast cancer and wine data as CSV files."""
    from sklearn import datasets

    paths = {}
    for name in DATASETS:
        bunch = getattr(datasets, f"load_{name}")()
        header = [*bunch.feature_names, "target"]
        lines = [",".join(header)]
        for x, t in zip(bunch.data.tolist(), bunch.target.tolist(), strict=True):
            lines.append(",".join([*map(repr, x), repr(t)]))
        paths[name] = folder / f"{name}.csv"
        paths[name].write_text("\n".join(lines) + "\n")
    return paths


def linear_reference(name: str, csv: Path, report: Path) -> str:
    """scikit-learn's RidgeCV or LogisticRegression on the split the command used."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, RidgeCV

    data = np.loadtxt(csv, delimiter=",", skiprows=1)
    x, y = data[:, :-1], data[:, -1]
    meta_file = report / "model.json"
    if not meta_file.is_file():  # an older version without the split in model.json
        return ""
    test = np.array(json.loads(meta_file.read_text())["test_rows"], dtype=int)
    if len(test) == 0:
        return ""
    train = np.setdiff1d(np.arange(len(y)), test)
    mean, std = x[train].mean(0), x[train].std(0)
    a, b = (x[train] - mean) / std, (x[test] - mean) / std
    if name == "diabetes":
        pred = RidgeCV().fit(a, y[train]).predict(b)
        return f"RidgeCV RMSE {np.sqrt(np.mean((pred - y[test]) ** 2)):.2f}"
    acc = (LogisticRegression(max_iter=5000).fit(a, y[train]).predict(b) == y[test]).mean()
    return f"LogisticRegression accuracy {acc:.3f}"


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``pyro-bdl ARGV``; ``(wall seconds, CPU seconds, output)``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pyro_bdl.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = proc.stdout + "".join(
        f"\n{line}" for line in proc.stderr.splitlines() if "pyro-bdl:" in line
    )
    return seconds, cpu, text.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ["demo", "demo-quick", "quickstart", *(f"fit-{d}" for d in DATASETS)]
    parser.add_argument("--only", nargs="+", choices=names, default=names)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.setdefault("PYTHONPATH", str(ROOT))
    rows, details = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csvs = write_csvs(folder) if any(n.startswith("fit-") for n in args.only) else {}
        for name in args.only:
            out = folder / name
            if name == "demo":
                argv = ["demo", "--out", str(out), "--no-progress"]
            elif name == "demo-quick":
                argv = ["demo", "--quick", "--out", str(out), "--no-progress"]
            elif name == "quickstart":
                argv = ["quickstart", "--no-progress"]
            else:
                data = name.removeprefix("fit-")
                argv = ["fit", str(csvs[data]), "--target", "target", "--out", str(out)]
                argv.append("--no-progress")
            seconds, cpu, text = run(argv, env)
            reference = (
                linear_reference(name[4:], csvs[name[4:]], out) if name[:4] == "fit-" else ""
            )
            command = "pyro-bdl " + " ".join(a if "/" not in a else Path(a).name for a in argv)
            rows.append(f"| `{command}` | {cpu:.0f} s | {seconds:.0f} s |")
            details.append(
                f"### {command}\n\n```\n{text}\n```\n" + (f"\n{reference}\n" if reference else "")
            )
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, OMP_NUM_THREADS=1\n")
    print(f"load average before the runs: {os.getloadavg()[0]:.1f}\n")
    print("| command | CPU time | wall time |\n|:--|--:|--:|")
    print("\n".join(rows))
    print()
    print("\n".join(details))


if __name__ == "__main__":
    main()
