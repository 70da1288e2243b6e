"""Fetch MathJax from the npm registry so that the docs render math offline.

Sphinx's default MathJax comes from a CDN, which the machines building and reading these docs may
not reach. This script runs ``npm pack mathjax@VERSION`` (the ordinary npm client, so the
registry and any proxy configured for npm are used), checks the tarball against the pinned
integrity hash, and unpacks the ES5 build (the TeX input, the CommonHTML output with its fonts
and the components they load on demand) into ``docs/_vendor/mathjax``. Nothing is committed:
``docs/conf.py`` calls :func:`ensure_mathjax` at build time.

Run it by hand with ``python docs/fetch_mathjax.py`` (``--force`` to fetch again).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "3.2.2"
#: ``dist.integrity`` of mathjax@3.2.2 on the npm registry.
INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/"
    "O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
#: The entry point the docs load (relative to the unpacked folder).
ENTRY = "tex-mml-chtml.js"
#: Other single-file bundles of the package that the docs never load (about 13 MB).
_SKIP = {
    "mml-chtml.js",
    "mml-svg.js",
    "node-main.js",
    "tex-chtml-full-speech.js",
    "tex-chtml-full.js",
    "tex-chtml.js",
    "tex-mml-svg.js",
    "tex-svg-full.js",
    "tex-svg.js",
}
DEFAULT_DEST = Path(__file__).resolve().parent / "_vendor" / "mathjax"


def _check_integrity(tarball: Path) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise RuntimeError(
            f"Expected mathjax-{VERSION}.tgz with integrity {INTEGRITY}, but got "
            f"{algorithm}-{digest}; refusing to use it."
        )


def _unpack(tarball: Path, dest: Path, force: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))  # same file system
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if name == "package/LICENSE":
                target = "LICENSE"
            elif name.startswith("package/es5/") and member.isfile():
                target = name[len("package/es5/") :]
                if target in _SKIP:
                    continue
            else:
                continue
            path = (tmp / target).resolve()
            if not path.is_relative_to(tmp.resolve()):  # no path escapes the folder
                raise RuntimeError(f"Unsafe path in the MathJax tarball: {name!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            with source, open(path, "wb") as out:
                shutil.copyfileobj(source, out)
    (tmp / "VERSION").write_text(VERSION + "\n")
    if installed(dest) and not force:  # another build got there first
        shutil.rmtree(tmp)
        return
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def installed(dest: Path = DEFAULT_DEST) -> bool:
    """Whether ``dest`` holds this script's MathJax version."""
    version = dest / "VERSION"
    return (dest / ENTRY).is_file() and version.is_file() and version.read_text().strip() == VERSION


def ensure_mathjax(dest: Path = DEFAULT_DEST, *, force: bool = False) -> tuple[bool, str]:
    """Make sure MathJax is unpacked in ``dest``; fetch it with npm if not.

    :return: ``(available, message)``; never raises when npm is missing or offline, so a docs
        build can go on without math rendering.
    """
    if installed(dest) and not force:
        return True, f"MathJax {VERSION} found in {dest}"
    npm = shutil.which("npm")
    if npm is None:
        return False, "npm not found (install Node.js/npm, e.g. `apt-get install -y npm`)"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [npm, "pack", f"mathjax@{VERSION}", "--silent", "--pack-destination", tmp]
        try:
            subprocess.run(
                cmd,
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
                cwd=tmp,
                env={**os.environ, "npm_config_update_notifier": "false"},
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            return False, f"`{' '.join(cmd[:3])}` failed: {detail.strip()[-500:]}"
        tarball = Path(tmp) / f"mathjax-{VERSION}.tgz"
        if not tarball.is_file():
            return False, f"`npm pack` wrote no {tarball.name}"
        _check_integrity(tarball)
        _unpack(tarball, dest, force)
    return True, f"MathJax {VERSION} fetched from the npm registry into {dest}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="target folder")
    parser.add_argument("--force", action="store_true", help="fetch even if present")
    args = parser.parse_args(argv)
    ok, message = ensure_mathjax(args.dest, force=args.force)
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
