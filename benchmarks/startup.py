"""Start-up of ``fervid predict`` on one photo: the whole process, timed from outside.

Each round runs, one after the other: ``python -c "import onnxruntime"`` and ``python -c
"import torch"`` (the floors of the two paths), ``fervid predict PHOTO`` with the torch model,
the same with its ONNX export (``fervid export --onnx``: predict then never imports torch) and,
with ``--baseline-src``, the torch model with another checkout's code. The model is the demo
architecture (the demo recipe's frame model, MobileNetV2, + Temporal Encoder, untrained weights:
start-up does not depend on them) or ``--model`` (e.g. ``fervid-demo/model.safetensors``).
Medians and min-max over the rounds are reported, with ratios to the floors measured in the same
run (this machine's speed moves). One more run of each lists what the predict process imported
(torch, timm, torchvision, torch._dynamo, matplotlib: the heavy ones) and the slowest imports
(``python -X importtime``). ``--video``: also the whole process of predicting that video with
each model (``--video-rounds`` rounds).

Targets (issue 28): one photo under 1.5 s with the ONNX model and under 3 s with the torch model,
whole process, median of 5, on the 2-core development machine.

Usage: python benchmarks/startup.py [--photo PATH] [--rounds 5] [--model FILE]
       [--video PATH] [--video-rounds 1] [--baseline-src /old/src]
       [--out benchmarks/out/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SRC = HERE.parents[1] / "src"
DEFAULT_PHOTO = HERE.parents[2] / "shared" / "data" / "single_face.jpg"
HEAVY = ("torch", "timm", "torchvision", "torch._dynamo", "matplotlib", "sklearn", "scipy")


def environment(src: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "0"}


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def predict_command(photo: Path, model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "fervid", "-q", "predict", str(photo), "--model", str(model)] + [
        "--out",
        str(out),
    ]


def imported_modules(photo: Path, model: Path, out: Path, src: Path) -> list[str]:
    """The heavy modules a predict process has imported when it finishes."""
    script = (
        "import json, sys\nfrom fervid.cli import main\n"
        f"main({predict_command(photo, model, out)[3:]!r})\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment(src), check=True, capture_output=True
    )
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def slowest_imports(photo: Path, model: Path, out: Path, src: Path, count: int = 12) -> list:
    """(module, cumulative seconds) of the slowest top-level imports of a predict process."""
    command = [sys.executable, "-X", "importtime", *predict_command(photo, model, out)[1:]]
    result = subprocess.run(command, env=environment(src), check=True, capture_output=True)
    rows = []
    for line in result.stderr.decode().splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and not name.startswith("  "):  # top level: one space
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda row: -row[1])[:count]


def spread(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def export_onnx_model(model: Path, folder: Path) -> Path:
    out = folder / "onnx_model.safetensors"
    command = [sys.executable, "-m", "fervid", "-q", "export", "--onnx", "--frame", str(model)]
    subprocess.run([*command, "--out", str(out)], env=environment(SRC), check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--model", type=Path, help="a fervid video model file (default: the demo architecture)"
    )
    parser.add_argument("--video", type=Path, help="also time predicting this video, whole process")
    parser.add_argument("--video-rounds", type=int, default=1)
    parser.add_argument("--baseline-src", type=Path, help="src folder of the code to compare with")
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / "startup.json")
    args = parser.parse_args()
    if not args.photo.is_file():
        sys.exit(f"no photo at {args.photo} (pass --photo)")

    sys.path.insert(0, str(HERE.parent))

    with tempfile.TemporaryDirectory(prefix="fervid-startup-") as scratch:
        scratch = Path(scratch)
        if args.model:
            model = args.model
        else:
            from predict import default_architecture_model

            model = default_architecture_model(scratch)
        runs = {"torch": (SRC, model), "onnx": (SRC, export_onnx_model(model, scratch))}
        if args.baseline_src:
            runs["baseline"] = (args.baseline_src, model)
        floors = {"onnxruntime": [], "torch": []}
        times = {name: [] for name in runs}
        for name, (src, path) in runs.items():  # warm the file caches
            timed(predict_command(args.photo, path, scratch / f"warm-{name}"), environment(src))
        for round_index in range(args.rounds):
            for module in floors:
                floors[module].append(
                    timed([sys.executable, "-c", f"import {module}"], environment(SRC))
                )
            for name, (src, path) in runs.items():
                out = scratch / f"{name}-{round_index}"
                times[name].append(timed(predict_command(args.photo, path, out), environment(src)))
        result = {
            "photo": str(args.photo),
            "model": str(args.model or "demo architecture, untrained"),
            "rounds": args.rounds,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "import_s": {module: spread(samples) for module, samples in floors.items()},
            "import_s_all": floors,
        }
        torch_floor = result["import_s"]["torch"]["median"]
        for name, (src, path) in runs.items():
            result[name] = {
                "src": str(src),
                "model": str(path),
                "predict_photo_s": spread(times[name]),
                "predict_photo_s_all": times[name],
                "ratio_to_import_torch": statistics.median(times[name]) / torch_floor,
                "heavy_modules_imported": imported_modules(args.photo, path, scratch / "m", src),
                "slowest_imports_s": slowest_imports(args.photo, path, scratch / "i", src),
            }
        if args.video:
            result["video"] = {"file": str(args.video)}
            for name in ("torch", "onnx"):
                src, path = runs[name]
                samples = [
                    timed(
                        predict_command(args.video, path, scratch / f"v-{name}-{k}"),
                        environment(src),
                    )
                    for k in range(args.video_rounds)
                ]
                result["video"][name] = {"predict_video_s": spread(samples), "all": samples}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for module, figures in result["import_s"].items():
        print(
            f"import {module}: {figures['median']:.2f} s ({figures['min']:.2f}-{figures['max']:.2f}, median of {args.rounds})"
        )
    for name in runs:
        entry = result[name]
        figures = entry["predict_photo_s"]
        print(
            f"{name}: fervid predict photo {figures['median']:.2f} s "
            f"({figures['min']:.2f}-{figures['max']:.2f}; {entry['ratio_to_import_torch']:.2f}x "
            f"import torch); heavy modules imported: "
            f"{', '.join(entry['heavy_modules_imported']) or 'none'}"
        )
        print(
            "  slowest imports: "
            + ", ".join(f"{m} {s:.2f}s" for m, s in entry["slowest_imports_s"][:6])
        )
    if args.video:
        for name in ("torch", "onnx"):
            figures = result["video"][name]["predict_video_s"]
            print(
                f"{name}: fervid predict {args.video.name} {figures['median']:.2f} s ({figures['min']:.2f}-{figures['max']:.2f})"
            )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
