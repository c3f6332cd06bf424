"""Every config value and every numeric CLI option is checked before anything runs: a bad one
ends in one line naming it and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import typing

import pytest

from fervid.cli import main
from fervid.cli.parser import build_parser
from fervid.config import Config, load_config
from fervid.errors import ConfigError
from fervid.runtime.typed import Bounds
from fervid.video.detect import MIN_MAX_SIDE as DETECTOR_MIN_MAX_SIDE
from tests.helpers import FIXTURES


def numeric_keys(cls=Config, prefix="") -> list[tuple[str, type]]:
    """(dotted key, int or float) of every numeric config value."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, key = hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            keys += numeric_keys(hint, key + ".")
        elif hint in (int, float):
            keys.append((key, hint))
    return keys


NUMERIC = numeric_keys()


SECTIONS = ("data", "model", "optim", "train", "ssl", "eval", "temporal", "synth")


def test_the_sweep_sees_every_section():
    sections = {key.split(".")[0] for key, _ in NUMERIC}
    assert sections == set(SECTIONS)
    assert len(NUMERIC) > 80


@pytest.mark.parametrize(("key", "kind"), NUMERIC, ids=[k for k, _ in NUMERIC])
def test_every_numeric_config_value_refuses_a_non_number_and_a_negative(key, kind):
    with pytest.raises(ConfigError, match=f"^{key}: expected"):
        load_config(None, [f"{key}=x"])
    with pytest.raises(ConfigError, match=f"^{key}: must be"):
        load_config(None, [f"{key}=-1"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
        ("optim.name=adam", "optim.name: must be one of adamw, sgd, got 'adam'"),
        ("ssl.tau=0", "ssl.tau: must be > 0 and < 1, got 0.0"),
        ("ssl.tau=1", "ssl.tau: must be > 0 and < 1, got 1.0"),
        ("ssl.threshold=bogus", "ssl.threshold: must be one of fixed, flex, free, got 'bogus'"),
        ("temporal.positional=rotary", "temporal.positional: must be one of sinusoidal, learned"),
        ("ssl.threshold_floor=0.99", r"ssl.threshold_floor: must not exceed ssl.tau \(0.95\)"),
        ("ssl.teacher_momentum=1", "ssl.teacher_momentum: must be >= 0 and < 1, got 1.0"),
        ("synth.frames_min=5", "synth.frames_min: must be >= 10, got 5"),
        ("model.drop_rate=1", "model.drop_rate: must be >= 0 and < 1"),
        ("temporal.smoothing_windows=[5,0]", r"temporal.smoothing_windows\[1\]: must be >= 1"),
        ("temporal.eval_stride=65", "temporal.eval_stride: must not exceed temporal.window"),
        ("temporal.stride=65", "temporal.stride: must not exceed temporal.window"),
        ("temporal.width=30", "temporal.width: must be a multiple of temporal.heads"),
        ("synth.frames_min=700", "synth.frames_min: must not exceed synth.frames_max"),
        ("eval.split=test", "eval.split: must be one of train, validation"),
        ("train.device=gpu", "train.device: must be auto, cpu, cuda, mps or xpu, with :N"),
    ],
)
def test_bounds_choices_and_cross_checks(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def violations(cls=Config, prefix="") -> list[tuple[str, object]]:
    """(dotted key, a value its annotation refuses) for every config value with a bound or a
    choice: one below and one above each bound, a name not among the choices; a list gets a
    list holding one such item."""
    found = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        hint, key = hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            found += violations(hint, key + ".")
            continue
        wrap = False
        if typing.get_origin(hint) is list:
            hint, wrap = typing.get_args(hint)[0], True
        bad = []
        if typing.get_origin(hint) is typing.Literal:
            bad.append("bogus")
        elif typing.get_origin(hint) is typing.Annotated:
            base, *constraints = typing.get_args(hint)
            step = 1 if base is int else 0.5
            for bounds in (c for c in constraints if isinstance(c, Bounds)):
                if bounds.low is not None:
                    bad.append(bounds.low if bounds.low_open else bounds.low - step)
                if bounds.high is not None:
                    bad.append(bounds.high if bounds.high_open else bounds.high + step)
        found += [(key, [value] if wrap else value) for value in bad]
    return found


VIOLATIONS = violations()


def test_the_bound_sweep_sees_every_section_and_the_choices():
    keys = {key for key, _ in VIOLATIONS}
    assert {key.split(".")[0] for key in keys} == set(SECTIONS)
    assert {"ssl.threshold", "ssl.teacher", "temporal.positional", "optim.name"} <= keys
    assert {"ssl.tau", "ssl.teacher_blend", "temporal.window", "synth.frames_min"} <= keys


@pytest.mark.parametrize(("key", "value"), VIOLATIONS, ids=[f"{k}={v}" for k, v in VIOLATIONS])
def test_every_bounded_or_chosen_value_is_refused_when_the_config_is_built(key, value):
    """Refused by load_config, in one line naming the key, whether or not its section is on
    (ssl and the label-scarce setting are off by default, stage 2 is not running)."""
    text = f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)
    with pytest.raises(ConfigError) as error:
        load_config(None, [f"{key}={text}"])
    message = str(error.value)
    assert message.startswith(f"{key}") and len(message.splitlines()) == 1, message
    if not isinstance(value, list):
        assert message.startswith(f"{key}: must be"), message


def test_a_bad_choice_in_a_section_that_is_off_stops_train_before_anything_runs(capsys, tmp_path):
    """SSL is off in the default recipe; its threshold is still checked before training."""
    run_dir = tmp_path / "run"
    argv = ["train", "--run-dir", str(run_dir), f"data.root={tmp_path}", "ssl.threshold=bogus"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: ssl.threshold: must be one of fixed, flex, free, got 'bogus'"
    assert not run_dir.exists()


@pytest.mark.parametrize("stage", ["1", "2"])
def test_a_run_folder_that_holds_a_run_is_refused_naming_the_real_flags(stage, capsys, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    assert main(["train", "--stage", stage, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err, err
    assert err.endswith("pick another --run-dir"), err


def test_the_positional_choices_are_the_registered_encodings():
    from fervid.config import TemporalConfig
    from fervid.models.temporal import POSITIONAL_ENCODINGS

    hint = typing.get_type_hints(TemporalConfig)["positional"]
    assert sorted(typing.get_args(hint)) == POSITIONAL_ENCODINGS.names()


def numeric_options() -> list[tuple[list[str], str]]:
    """(subcommand path, option) of every option whose value argparse converts (type=...)."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.type is not None and action.option_strings:
                found.append((path, action.option_strings[-1]))

    walk(build_parser(), [])
    return found


OPTIONS = numeric_options()
REQUIRED = {  # the other arguments each command needs to reach its option checks
    ("data", "crop"): ["video.mp4", "--out", "out"],
    ("predict",): ["video.mp4"],
    ("ablate",): ["--out", "out"],
    ("train",): ["--run-dir", "run"],
}


def test_the_option_sweep_finds_the_numeric_options():
    names = {(tuple(path), option) for path, option in OPTIONS}
    assert {
        (("predict",), "--every"),
        (("predict",), "--max-side"),
        (("data", "crop"), "--every"),
    } <= names
    assert (("ablate",), "--seeds") in names and (("train",), "--stage") in names


@pytest.mark.parametrize("value", ["0", "-1", "x"])
@pytest.mark.parametrize(("path", "option"), OPTIONS, ids=[" ".join([*p, o]) for p, o in OPTIONS])
def test_a_bad_option_value_is_one_line_and_exit_code_2(
    path, option, value, capsys, tmp_path, monkeypatch
):
    if path == ["ablate"] and option in ("--seeds", "--data-seeds") and value == "0":
        parsed = build_parser().parse_args(["ablate", "--out", "o", option, "0"])
        assert getattr(parsed, option[2:].replace("-", "_")) == [0]
        return  # seed 0 is a valid seed list: nothing to refuse
    if path == ["import"] and option == "--margin" and value == "0":
        assert build_parser().parse_args(["import", "onnx", "m.onnx", "--margin", "0"]).margin == 0
        return  # a margin of 0 (the box as it is) is valid: nothing to refuse
    monkeypatch.chdir(tmp_path)
    argv = [*path, *REQUIRED.get(tuple(path), []), option, value]
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and option in lines[0], err


def test_full_size_is_a_max_side_and_the_parser_takes_the_detector_minimum():
    parse = build_parser().parse_args
    assert parse(["predict", "v.mp4", "--max-side", "full"]).max_side is None
    lowest = str(DETECTOR_MIN_MAX_SIDE)
    assert parse(["predict", "v.mp4", "--max-side", lowest]).max_side == DETECTOR_MIN_MAX_SIDE
    with pytest.raises(SystemExit):
        parse(["predict", "v.mp4", "--max-side", str(DETECTOR_MIN_MAX_SIDE - 1)])


def test_the_predict_flags_are_made_from_predict_options(capsys):
    """Each PredictOptions field but the Python-only ones is a flag: its help is the field's
    docstring, its default the field's, and a value the flag refuses the field refuses too."""
    from fervid.cli.dataclass_flags import field_docs, help_text
    from fervid.cli.predict_options import PYTHON_ONLY, predict_options
    from fervid.predict import PredictOptions

    assert predict_options(build_parser().parse_args(["predict", "v.mp4"])) == PredictOptions()
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for name, doc in field_docs(PredictOptions).items():
        flag = "--" + name.replace("_", "-")
        assert (flag in shown) == (name not in PYTHON_ONLY), flag
        assert (help_text(doc) in shown) == (name not in PYTHON_ONLY), flag
    with pytest.raises(SystemExit) as exit:
        main(["predict", "v.mp4", "--every", "0"])
    assert exit.value.code == 2
    assert "argument --every: must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"^PredictOptions.every: must be >= 1, got 0"):
        PredictOptions(every=0)


def test_a_bad_config_override_on_the_command_line_is_one_line(capsys):
    assert main(["train", "--run-dir", "run", "train.batch_size=-3"]) == 2
    assert capsys.readouterr().err.strip() == "error: train.batch_size: must be >= 1, got -3"


def test_a_sidecar_without_a_format_version_is_not_a_fervid_model_file(tmp_path):
    import json

    import torch

    from fervid.errors import DataError
    from fervid.runtime.checkpoint import load_weights, save_weights

    path = save_weights(tmp_path / "m", {"w": torch.ones(2)}, {"kind": "frame"})
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    del meta["format_version"]
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="not a fervid model file") as error:
        load_weights(path)
    assert "newer" not in str(error.value)


def test_a_stage2_model_given_to_predict_says_how_to_package_it(capsys, tmp_path):

    stage2 = FIXTURES / "legacy-4c18e36" / "stage2" / "model.safetensors"
    code = main(["-q", "predict", str(tmp_path / "clip.mp4"), "--model", str(stage2)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "fervid export --temporal" in err and "Traceback" not in err
