"""Run under torchrun: ``fervid <argv[2:]>`` (e.g. ``-q predict ...``) with this process's
standard output written to ``argv[1].rank<r>``, so a test can tell which process printed
(and so predicted) which input; exits with the command's code."""

import contextlib
import os
import sys

from fervid.cli import main

if __name__ == "__main__":
    with (
        open(f"{sys.argv[1]}.rank{os.environ.get('RANK', '0')}", "w") as out,
        contextlib.redirect_stdout(out),
    ):
        code = main(sys.argv[2:])
    sys.exit(code)
