"""The ``fervid`` command: parses arguments, calls :mod:`fervid.api`, prints results."""

from __future__ import annotations

import logging
import sys

from fervid.cli import commands
from fervid.cli.parser import build_parser
from fervid.errors import FervidError

COMMANDS = {
    "demo": commands.cmd_demo,
    "data": commands.cmd_data,
    "train": commands.cmd_train,
    "evaluate": commands.cmd_evaluate,
    "submit": commands.cmd_submit,
    "features": commands.cmd_features,
    "plot": commands.cmd_plot,
    "ablate": commands.cmd_ablate,
    "import": commands.cmd_import,
    "models": commands.cmd_models,
    "export": commands.cmd_export,
    "predict": commands.cmd_predict,
    "config": commands.cmd_config,
}


TORCH_PACKAGES = ("torch", "torchvision", "timm")
"""Not needed by ``fervid predict`` with ONNX models; every command that trains needs them."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(message)s" if args.quiet else "%(message)s",
    )
    try:
        return COMMANDS[args.command](args, not args.quiet)
    except (FervidError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        if error.name not in TORCH_PACKAGES:
            raise
        print(
            f"error: `fervid {args.command}` needs PyTorch ({error.name} is not installed; a "
            "predict-only install has none): pip install torch==2.14.1 torchvision==0.29.1 "
            "timm (docs/models.md)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
