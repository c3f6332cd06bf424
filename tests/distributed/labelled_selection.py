"""Run under torchrun: every process works out the labelled train frames of
``data.labels_per_class=2`` on the dataset ``argv[2]`` and writes them as JSON to
``argv[1].rank<r>`` (each process has its own hash seed, so no set order can leak in)."""

import json
import sys

from fervid.config import load_config
from fervid.data.sources import hidden_label_frames, labelled_split
from fervid.runtime.dist import init_from_environment, rank


def main(out: str, root: str) -> None:
    init_from_environment()
    config = load_config(None, [f"data.root={root}", "data.labels_per_class=2"])
    kept = labelled_split(config.data, "train")
    chosen = sorted((kept.video_name(i), int(kept.frame[i])) for i in range(len(kept)))
    hidden = len(hidden_label_frames(config.data))
    with open(f"{out}.rank{rank()}", "w") as handle:
        json.dump({"labelled": chosen, "hidden": hidden}, handle)


if __name__ == "__main__":
    main(*sys.argv[1:3])
