"""Synthetic expression videos in the Aff-Wild2 layout: the project's built-in dataset.

``generate(out_dir, config)`` writes aligned face crops, EXPR annotations, an unlabelled pool
and raw scene videos; ``render_scene_frame`` and ``render_aligned_face`` draw single frames with
known landmarks. See docs/synthetic.md.
"""

import importlib

_HOMES = {
    "SynthConfig": "config",
    "tiny_config": "config",
    "AU_NAMES": "expressions",
    "PROTOTYPES": "expressions",
    "ARCFACE_TEMPLATE": "identity",
    "Identity": "identity",
    "make_identity": "identity",
    "DrawnFace": "render",
    "FacePlacement": "render",
    "placement_matrix": "render",
    "render_aligned_face": "render",
    "render_scene_frame": "render",
    "generate": "writer",
    "load_summary": "writer",
}
"""Where each public name lives. They are imported on first use (PEP 562), so that reading the
config (``fervid.config`` imports ``synth.config``) does not import the renderer and the writer:
start-up time of ``fervid predict``."""

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
