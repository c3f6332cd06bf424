"""Synthetic expression videos in the Aff-Wild2 layout: the project's built-in dataset.

``generate(out_dir, config)`` writes aligned face crops, EXPR annotations, an unlabelled pool
and raw scene videos; ``render_scene_frame`` and ``render_aligned_face`` draw single frames with
known landmarks. See docs/synthetic.md.
"""

from fervid.data.synth.config import SynthConfig, tiny_config
from fervid.data.synth.expressions import AU_NAMES, PROTOTYPES
from fervid.data.synth.identity import ARCFACE_TEMPLATE, Identity, make_identity
from fervid.data.synth.render import (
    DrawnFace,
    FacePlacement,
    placement_matrix,
    render_aligned_face,
    render_scene_frame,
)
from fervid.data.synth.writer import generate, load_summary

__all__ = [
    "ARCFACE_TEMPLATE",
    "AU_NAMES",
    "PROTOTYPES",
    "DrawnFace",
    "FacePlacement",
    "Identity",
    "SynthConfig",
    "generate",
    "load_summary",
    "make_identity",
    "placement_matrix",
    "render_aligned_face",
    "render_scene_frame",
    "tiny_config",
]
