"""The entry point of ``pyro-bdl``: dispatch a subcommand and turn failures into one line.

Every error a user can cause (bad CSV, bad target, an output folder that cannot be written,
a diverging fit) ends in one line ``pyro-bdl: error: ...`` on stderr, exit code
:data:`EXIT_ERROR`, and no half-written output: reports are staged and moved into place at the
end. Usage errors (a bad option value) are argparse's: the usage, one line, exit code 2.

Example::

    >>> main(["fit", "no-such-file.csv", "--target", "y"])  # prints the error on stderr
    1
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .common import CLIError, one_line
from .demo import quickstart, run_demo
from .fit_csv import run_fit
from .parser import build_parser

__all__ = ["EXIT_ERROR", "main"]

#: Exit code of a run that failed on the user's input or output folder.
EXIT_ERROR = 1


def _error(message: str) -> int:
    """Print ``pyro-bdl: error: MESSAGE`` as one line on stderr; return :data:`EXIT_ERROR`."""
    print(f"pyro-bdl: error: {one_line(message)}", file=sys.stderr)
    return EXIT_ERROR


def _silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush of a closed pipe
    prints nothing ("Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pyro-bdl``; returns the exit code.

    :param argv: the arguments after the program name (default: ``sys.argv[1:]``).
    :return: 0 on success (also when stdout is a pipe closed before the summary was printed,
        as in ``pyro-bdl fit ... | head -2``), :data:`EXIT_ERROR` after an error printed as one
        line on stderr, 130 when interrupted.
    :raises SystemExit: from argparse: code 0 after ``--help`` or ``--version``, 2 after a usage
        error.

    Example::

        >>> main(["quickstart", "--epochs", "5", "--no-progress"])  # doctest: +ELLIPSIS
        | x | true mean | predictive mean | total std | aleatoric std | epistemic std |
        ...
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)  # --help, --version and usage errors exit here
    from ..bnn import DivergenceError
    from .report import OutputError

    try:
        if args.command == "quickstart":
            print(quickstart(args.epochs, args.seed, progress=not args.no_progress))
        elif args.command == "demo":
            print(
                run_demo(args.out, seed=args.seed, quick=args.quick, progress=not args.no_progress)
            )
        elif args.command == "fit":
            print(run_fit(args))
        else:
            parser.print_help()
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's last flush
    except (CLIError, OutputError) as error:
        return _error(str(error))
    except DivergenceError as error:
        return _error(f"{error} (--lr sets the learning rate)")
    except BrokenPipeError:
        # The reader of stdout went away (`pyro-bdl fit ... | head -2`) while the summary was
        # printed, after the run was complete: that is not an error of the run.
        _silence_stdout()
        return 0
    except OSError as error:  # e.g. the disk filled up while writing the report
        where = f"{error.filename}: " if error.filename else ""
        return _error(f"{where}{error.strerror or error}")
    except KeyboardInterrupt:
        print("pyro-bdl: interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0
