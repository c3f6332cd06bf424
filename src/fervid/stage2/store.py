"""The feature store: one feature vector (and the frame model's logits) per frame of a table.

A store is a folder::

    store.json     encoder identity (sha256 of the frame model file, backbone), feature width,
                   frame count, the videos done so far, whether it is complete
    index.npz      the FrameTable (video, frame, label, has_image = the frame has a feature)
    features.npy   float16 (frames, width), read by memory mapping; zeros where has_image is false
    logits.npy     float32 (frames, 8): the frame model's own head, for the frame-only and
                   moving-average baselines (no need to rerun the encoder)
    present.npy    bool (frames,): which frames got a feature so far

Writers (:func:`fervid.stage2.extract.extract_features`, :func:`write_store`) record each finished
video in ``store.json`` atomically, after its rows are flushed, so a killed extraction resumes
where it stopped; :class:`FeatureStore` opens a complete store by memory mapping.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from fervid import __version__
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.labels import NUM_CLASSES
from fervid.models.frame import FrameModel
from fervid.runtime.io import atomic_write_text

STORE_FORMAT = 2
"""2: every video on its frame axis (consecutive frames; frames with neither a label nor a face
crop are rows without a face). Format-1 stores skipped such frames; they open only when none of
their videos skips a frame (then they are format-2 stores already)."""
STORE_FILES = ("store.json", "index.npz", "features.npy", "logits.npy", "present.npy")


# ----------------------------------------------------------------------------------------------
# What a store records about its encoder


def frame_model_path(path: str | Path) -> Path:
    """A frame model file, given the file or the stage-1 run folder holding ``model.safetensors``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    return path.with_suffix(".safetensors")


def encoder_identity(model: str | Path | FrameModel) -> dict:
    """What a store records about its encoder: the sha256 of the model file (for an in-memory
    model, of its state dict), the backbone name and the input size."""
    if isinstance(model, FrameModel):
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        backbone = getattr(model.backbone, "pretrained_cfg", {}).get("architecture")
        return {
            "sha256": digest.hexdigest(),
            "backbone": backbone or type(model.backbone).__name__,
            "input_size": model.input_size,
            "source": "in-memory model",
        }
    path = frame_model_path(model)
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise DataError(
            sidecar, "model file not found (expected a stage-1 run folder or model file)"
        )
    meta = json.loads(sidecar.read_text())
    return {
        "sha256": meta["sha256"],
        "backbone": meta["config"]["model"]["backbone"],
        "input_size": meta["config"]["model"]["input_size"],
        "source": str(path),
    }


def describe_encoder(encoder: dict) -> str:
    return f"{encoder['backbone']} {encoder['sha256'][:12]} ({encoder['source']})"


# ----------------------------------------------------------------------------------------------
# Writing


def open_or_create(out: Path, table: FrameTable, encoder: dict, dim: int) -> dict:
    """The metadata of the store in ``out``: checked against this run when resuming, else new."""
    meta_path = out / "store.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["encoder"]["sha256"] != encoder["sha256"]:
            raise DataError(
                meta_path,
                f"this store holds features of frame model {describe_encoder(meta['encoder'])}, "
                f"not of {describe_encoder(encoder)}; write to another --out or delete {out}",
            )
        if meta["encoder"].get("flip_tta", False) != encoder.get("flip_tta", False):
            made = "with" if meta["encoder"].get("flip_tta") else "without"
            raise DataError(
                meta_path,
                f"this store holds features made {made} flip test-time augmentation "
                f"(eval.flip); use the same setting, another --out, or delete {out}",
            )
        check_frame_axis(out, meta, FrameTable.load(out / "index.npz"))
        if not same_frames(FrameTable.load(out / "index.npz"), table):
            raise DataError(
                out / "index.npz",
                "this store was started for other videos or frames; write to another --out "
                f"or delete {out}",
            )
        return gather_progress(out)
    gap = frame_gap(table)
    if gap is not None:
        video, before, after = gap
        raise DataError(
            out,
            f"the rows of video {video} jump from frame {before} to frame {after}: a store holds "
            "every frame of a video, frames without a face crop as rows without one (build the "
            "table with split_frames, or frame_axis for a frame list)",
        )
    if out.exists() and any(
        not p.name.startswith(".") and p.name not in STORE_FILES for p in out.iterdir()
    ):
        raise DataError(out, "folder exists and is not a feature store; pick another --out")
    out.mkdir(parents=True, exist_ok=True)
    frames = len(table)
    for name, dtype, shape in (
        ("features.npy", np.float16, (frames, dim)),
        ("logits.npy", np.float32, (frames, NUM_CLASSES)),
        ("present.npy", np.bool_, (frames,)),
    ):
        np.lib.format.open_memmap(out / name, mode="w+", dtype=dtype, shape=shape).flush()
    table.save(out / "index.npz")
    meta = {
        "format_version": STORE_FORMAT,
        "fervid_version": __version__,
        "encoder": encoder,
        "feature_dim": int(dim),
        "feature_dtype": "float16",
        "frames": frames,
        "videos": len(video_names(table)),
        "complete": False,
        "done": [],
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    return meta


def frame_gap(table: FrameTable) -> tuple[str, int, int] | None:
    """The first video whose rows are not consecutive frames: (name, the frame before the jump,
    the frame after it); None when every video's rows are consecutive frames."""
    step = np.diff(table.frame) != 1
    same_video = np.diff(table.video) == 0
    jumps = np.flatnonzero(step & same_video)
    if len(jumps) == 0:
        return None
    row = int(jumps[0])
    return table.videos[table.video[row]], int(table.frame[row]), int(table.frame[row + 1])


def video_names(table: FrameTable) -> set[str]:
    """Names of the videos that have rows in ``table``."""
    return {table.videos[video] for video, _ in table.video_slices()}


def same_frames(a: FrameTable, b: FrameTable) -> bool:
    return (
        a.videos == b.videos
        and np.array_equal(a.video, b.video)
        and np.array_equal(a.frame, b.frame)
        and np.array_equal(a.label, b.label)
    )


def check_frame_axis(path: Path, meta: dict, table: FrameTable) -> None:
    """DataError, saying how to rebuild it, for a store written before stores kept every frame
    (format 1) whose videos skip frames: windows and moving averages would take the frames on
    both sides of the gap for neighbours. A format-1 store without such gaps reads as before."""
    gap = frame_gap(table)
    if gap is None or meta.get("format_version", 0) >= STORE_FORMAT:
        return
    video, before, after = gap
    raise DataError(
        path,
        f"this store was written by an older fervid (store format {meta.get('format_version', 0)})"
        f" that skipped frames with neither a label nor a face crop (video {video} jumps from "
        f"frame {before} to {after}), so its rows are not frames apart; rebuild it: delete {path} "
        "and rerun `fervid features` with the same --model, --split and --out",
    )


def save_progress(path: Path, meta: dict, *arrays: np.memmap) -> None:
    """Flush the rows written so far, then record the done videos (in that order) in ``path``:
    store.json, or a process's own progress file in a multi-process extraction."""
    for array in arrays:
        array.flush()
    atomic_write_text(path, json.dumps(meta, indent=1))


def gather_progress(out: Path) -> dict:
    """Move the videos recorded in the progress files of processes into store.json (atomically,
    then delete the files); returns the store's metadata."""
    meta = json.loads((out / "store.json").read_text())
    parts = sorted(out.glob("progress-*.json"))
    if parts:
        meta["done"] = sorted(set(meta_done(out)))
        atomic_write_text(out / "store.json", json.dumps(meta, indent=1))
        for path in parts:
            path.unlink()
    return meta


def finish_store(out: Path, table: FrameTable) -> None:
    """Mark the store complete once every video is done (a no-op before)."""
    meta = gather_progress(out)
    if meta["complete"] or len(set(meta["done"])) < meta["videos"]:
        return
    present = np.load(out / "present.npy", mmap_mode="r")
    final = table.select(np.arange(len(table)))
    final.has_image = present.copy()
    final.save(out / "index.npz")
    meta["complete"] = True
    meta["frames_with_image"] = int(present.sum())
    meta["unreadable_images"] = int((table.has_image & ~present).sum())
    atomic_write_text(out / "store.json", json.dumps(meta, indent=1))


def meta_done(out: Path) -> list[str]:
    """Videos recorded as extracted in ``out``: in store.json and in the progress files of the
    processes of a multi-process extraction."""
    done = list(json.loads((out / "store.json").read_text())["done"])
    for path in sorted(out.glob("progress-*.json")):
        done += json.loads(path.read_text())["done"]
    return done


def write_store(
    out_dir: str | Path, table: FrameTable, encoder: dict, features, logits, chunk: int = 65_536
) -> FeatureStore:
    """A complete store from features computed elsewhere (synthetic data, benchmarks, another
    tool): ``features`` (rows x width) and ``logits`` (rows x 8) follow ``table`` row for row and
    are copied ``chunk`` rows at a time (anything sliceable works, e.g. a memmap). Rows whose
    ``has_image`` is false are stored as zeros."""
    out = Path(out_dir)
    meta = open_or_create(out, table, encoder, features.shape[1])
    arrays = [np.load(out / name, mmap_mode="r+") for name in STORE_FILES[2:]]
    stored_features, stored_logits, present = arrays
    for start in range(0, len(table), chunk):
        rows = slice(start, min(start + chunk, len(table)))
        absent = ~table.has_image[rows]
        stored_features[rows] = features[rows]
        stored_features[rows][absent] = 0
        stored_logits[rows] = logits[rows]
        present[rows] = table.has_image[rows]
    meta["done"] = sorted(video_names(table))
    save_progress(out / "store.json", meta, *arrays)
    finish_store(out, table)
    return FeatureStore.open(out)


# ----------------------------------------------------------------------------------------------
# Reading


class FeatureStore:
    """A complete store, opened by memory mapping: nothing is read until it is sliced."""

    def __init__(
        self, path: Path, meta: dict, table: FrameTable, features: np.ndarray, logits: np.ndarray
    ):
        self.path = path
        self.meta = meta
        self.table = table
        self.features = features
        """float16 (frames, width), memory-mapped; zeros where ``table.has_image`` is false."""
        self.logits = logits
        """float32 (frames, 8), memory-mapped: the frame model's head."""

    @classmethod
    def open(cls, path: str | Path) -> FeatureStore:
        path = Path(path)
        meta_path = path / "store.json"
        if not meta_path.is_file():
            raise DataError(
                path, "not a feature store (no store.json); write one with `fervid features`"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version", 0) > STORE_FORMAT:
            raise DataError(
                meta_path, f"store format {meta['format_version']} is newer than this fervid reads"
            )
        if not meta["complete"]:
            raise DataError(
                path,
                f"incomplete feature store ({len(meta['done'])} of {meta['videos']} videos done); "
                "rerun `fervid features` with the same --out to finish it",
            )
        table = FrameTable.load(path / "index.npz")
        check_frame_axis(path, meta, table)
        features = np.load(path / "features.npy", mmap_mode="r")
        logits = np.load(path / "logits.npy", mmap_mode="r")
        if features.shape != (len(table), meta["feature_dim"]) or len(logits) != len(table):
            raise DataError(path, "features.npy / logits.npy do not match index.npz; re-extract")
        return cls(path, meta, table, features, logits)

    @property
    def encoder(self) -> dict:
        return self.meta["encoder"]

    @property
    def feature_dim(self) -> int:
        return int(self.meta["feature_dim"])

    def video_rows(self, name: str) -> slice:
        """The rows of one video (its frames, in order)."""
        for video, rows in self.table.video_slices():
            if self.table.videos[video] == name:
                return rows
        raise KeyError(f"video {name!r} is not in the store {self.path}")

    def video_features(self, name: str) -> np.ndarray:
        """float16 (frames of the video, width), still memory-mapped."""
        return self.features[self.video_rows(name)]

    def frame_probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """The frame model's softmax per row, and which rows have one (a face)."""
        logits = np.asarray(self.logits, dtype=np.float32)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        known = self.table.has_image.copy()
        probs[~known] = 0.0
        return probs, known

    def check_encoder(self, expected: dict, what: str) -> None:
        """DataError unless this store was made by the encoder ``expected`` (what names it)."""
        if self.encoder["sha256"] != expected["sha256"]:
            raise DataError(
                self.path,
                f"features were made by frame model {describe_encoder(self.encoder)}, but {what} "
                f"is {describe_encoder(expected)}; re-extract with that model "
                "(`fervid features --model ...`) or point the config at the model that made it",
            )

    def check_videos(self, videos: list[str], split: str) -> None:
        """DataError naming the videos of ``split`` that the store lacks."""
        missing = sorted(set(videos) - video_names(self.table))
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataError(
                self.path,
                f"{len(missing)} of the {len(set(videos))} videos of the {split} split are not in "
                f"this store ({shown}); re-extract it from the current {split} split",
            )
