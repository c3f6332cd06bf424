"""Start-up of ``fervid predict`` on one photo: the whole process, timed from outside.

Each round runs, one after the other: ``python -c "import torch"`` (the floor: no fervid can
start faster than torch imports), ``fervid predict PHOTO`` with the code under test and, with
``--baseline-src``, the same command with another checkout's code (e.g. the commit before the
start-up work), all with the same model file: the demo architecture (the demo recipe's frame model,
MobileNetV2 since 2026-12-03, + Temporal Encoder, untrained weights: start-up does not depend
on them). Medians over the rounds
are reported, with ratios to the floor measured in the same run (this machine's speed moves).
One more run lists what the predict process imported (timm, torchvision, torch._dynamo,
matplotlib: the heavy ones) and the slowest imports (``python -X importtime``).

Target (issue 14): under 3 s whole process for one photo on the 2-core development machine.

Usage: python benchmarks/startup.py [--photo PATH] [--rounds 5] [--baseline-src /old/src]
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
HEAVY = ("timm", "torchvision", "torch._dynamo", "matplotlib", "sklearn", "scipy")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, help="src folder of the code to compare with")
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / "startup.json")
    args = parser.parse_args()
    if not args.photo.is_file():
        sys.exit(f"no photo at {args.photo} (pass --photo)")

    sys.path.insert(0, str(HERE.parent))
    from predict import default_architecture_model

    with tempfile.TemporaryDirectory(prefix="fervid-startup-") as scratch:
        scratch = Path(scratch)
        model = default_architecture_model(scratch)
        codes = {"current": SRC}
        if args.baseline_src:
            codes["baseline"] = args.baseline_src
        floor, times = [], {name: [] for name in codes}
        timed(predict_command(args.photo, model, scratch / "warm"), environment(SRC))  # caches
        for round_index in range(args.rounds):
            floor.append(timed([sys.executable, "-c", "import torch"], environment(SRC)))
            for name, src in codes.items():
                out = scratch / f"{name}-{round_index}"
                times[name].append(timed(predict_command(args.photo, model, out), environment(src)))
        result = {
            "photo": str(args.photo),
            "rounds": args.rounds,
            "import_torch_s": statistics.median(floor),
            "import_torch_s_all": floor,
        }
        for name, src in codes.items():
            median = statistics.median(times[name])
            result[name] = {
                "src": str(src),
                "predict_photo_s": median,
                "predict_photo_s_all": times[name],
                "ratio_to_import_torch": median / result["import_torch_s"],
                "heavy_modules_imported": imported_modules(args.photo, model, scratch / "m", src),
                "slowest_imports_s": slowest_imports(args.photo, model, scratch / "i", src),
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"import torch: {result['import_torch_s']:.2f} s (median of {args.rounds})")
    for name in codes:
        entry = result[name]
        print(
            f"{name}: fervid predict photo {entry['predict_photo_s']:.2f} s "
            f"({entry['ratio_to_import_torch']:.2f}x import torch); heavy modules imported: "
            f"{', '.join(entry['heavy_modules_imported']) or 'none'}"
        )
        print(
            "  slowest imports: "
            + ", ".join(f"{m} {s:.2f}s" for m, s in entry["slowest_imports_s"][:6])
        )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
