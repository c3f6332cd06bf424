"""Fast unit tests of stage 1's training step and loop (src/fervid/stage1/train.py) with values
worked out by hand: the DDP wrapping and its no_sync, which EMA copy a config asks for (its
momentum, warm-up, eval mode, and its buffers broadcast from process 0 after every update),
the teacher, the gradient accumulation, the inputs the pseudo-label objective gets, and the
loop's clock (optimizer steps, learning rates, the epoch's log record). The model is a
three-number stand-in (mean colour -> BatchNorm -> linear head) and the loop runs over stand-in
data, step and run directory, so no test trains a network."""

from __future__ import annotations

import contextlib
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fervid.runtime.dist
from fervid.config import load_config, to_dict
from fervid.data.frames import FrameBatch, UnlabelledBatch
from fervid.data.transforms import weak_augment
from fervid.models.frame import FrameModel
from fervid.stage1 import train as stage1_train
from fervid.stage1.train import FrameValidation, Stage1Step, no_sync, train_stage1

CPU = torch.device("cpu")
BASE = ["model.backbone=test_resnet", "model.input_size=8", "train.device=cpu"]


class TinyFrameModel(nn.Module):
    """A stand-in for FrameModel: the mean colour of the normalised image -> BatchNorm ->
    linear head. Records whether it ran in training mode and under autocast."""

    memory_format = torch.contiguous_format

    def __init__(self, config=None):
        super().__init__()
        self.norm = nn.BatchNorm1d(3)
        self.head = nn.Linear(3, 8)
        with torch.no_grad():
            self.head.weight.copy_(torch.arange(24.0).view(8, 3).sin())
            self.head.bias.copy_(torch.arange(8.0).cos())
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.25))
        self.channels_last_calls = 0
        self.forwards: list[tuple[bool, bool]] = []

    def use_channels_last(self):
        self.channels_last_calls += 1
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255 - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.forwards.append((self.training, torch.is_autocast_enabled("cpu")))
        return self.head(self.norm(images.mean(dim=(2, 3))))


class FakeDDP(nn.parallel.DistributedDataParallel):
    """A DistributedDataParallel without a process group: forwards to its module and counts
    the batches run under ``no_sync``."""

    def __init__(self, module: nn.Module):
        nn.Module.__init__(self)
        self.module = module
        self.no_sync_calls = 0

    def forward(self, *args):
        return self.module(*args)

    @contextlib.contextmanager
    def no_sync(self):
        self.no_sync_calls += 1
        yield


@pytest.fixture(autouse=True)
def no_compiling(monkeypatch):
    """torch.compile takes seconds to minutes on its first forward: here it fails at once (the
    test of train.compile puts a stand-in in its place)."""

    def refuse(model):
        raise AssertionError("torch.compile without train.compile")

    monkeypatch.setattr(torch, "compile", refuse)


@pytest.fixture
def tiny(monkeypatch):
    """Stage1Step builds the stand-in model."""
    monkeypatch.setattr(stage1_train, "FrameModel", TinyFrameModel)


def config_of(*overrides: str):
    return load_config(None, [*BASE, *overrides])


def make_step(*overrides: str, num_unlabelled: int = 6, class_counts=None) -> Stage1Step:
    torch.manual_seed(0)
    return Stage1Step(config_of(*overrides), num_unlabelled, CPU, class_counts)


def images(seed: int, n: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=generator)


def labelled_batch(seed: int = 0, n: int = 4) -> FrameBatch:
    return FrameBatch(images(seed, n), torch.arange(n) % 8, torch.arange(n), [])


def unlabelled_batch(seed: int = 10, n: int = 4) -> UnlabelledBatch:
    truth = torch.tensor([3, -1, 5, 0])[:n]
    return UnlabelledBatch(images(seed, n), images(seed + 1, n), truth, torch.arange(n) + 2, [])


def parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


# ----------------------------------------------------------------------------------------------
# DDP, compile, channels_last


def test_no_sync_skips_the_all_reduce_only_for_a_ddp_model_whose_batch_only_accumulates():
    plain, wrapped = nn.Linear(1, 1), FakeDDP(nn.Linear(1, 1))
    for unless in (False, True):
        assert isinstance(no_sync(plain, unless), contextlib.nullcontext)
    assert isinstance(no_sync(wrapped, True), contextlib.nullcontext)
    with no_sync(wrapped, False):
        pass
    assert wrapped.no_sync_calls == 1


@pytest.mark.parametrize(("processes", "wrapped"), [(1, False), (2, True)])
@pytest.mark.parametrize("compile_", [False, True])
def test_the_model_is_ddp_wrapped_under_several_processes_and_compiled_when_asked(
    tiny, monkeypatch, processes, wrapped, compile_
):
    compiled = []
    monkeypatch.setattr(stage1_train, "world_size", lambda: processes)
    monkeypatch.setattr(stage1_train, "DistributedDataParallel", FakeDDP)
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or ("compiled",))
    step = make_step(f"train.compile={str(compile_).lower()}")
    inner = compiled[0] if compile_ else step.trained
    if compile_:
        assert step.trained == ("compiled",) and compiled == [inner]
    if wrapped:
        assert isinstance(inner, FakeDDP) and inner.module is step.model
    else:
        assert inner is step.model


def test_the_frame_model_is_the_configs_and_channels_last_only_when_asked(tiny):
    assert make_step("train.channels_last=true").model.channels_last_calls == 1
    assert make_step("train.channels_last=false").model.channels_last_calls == 0


def test_the_real_frame_model_is_built_from_the_model_config_on_the_device(monkeypatch):
    step = make_step("train.channels_last=false")
    assert isinstance(step.model, FrameModel)
    assert step.model.input_size == 8 and step.model.memory_format == torch.contiguous_format
    assert step.config.model.backbone == "test_resnet" and step.device == CPU
    assert step.trained is step.model
    # the optimizer steps the model's parameters, with and without weight decay
    optimised = {id(p) for group in step.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in step.model.parameters()}


# ----------------------------------------------------------------------------------------------
# The EMA copy and the teacher

EMA_CASES = [
    # (overrides, has an EMA, its momentum, the EMA is what is validated and saved)
    (["train.ema=true", "train.ema_momentum=0.9"], True, 0.9, True),
    (["train.ema=false", "ssl.enabled=false", "ssl.teacher=ema"], False, None, False),
    (["ssl.enabled=true", "ssl.teacher=ema", "ssl.teacher_momentum=0.8"], True, 0.8, False),
    (["ssl.enabled=true", "ssl.teacher=model", "train.ema_momentum=0.9"], False, None, False),
    (
        ["train.ema=true", "ssl.enabled=true", "ssl.teacher=model", "ssl.teacher_momentum=0.8"],
        True,
        0.8,
        True,
    ),
]


@pytest.mark.parametrize(("overrides", "has_ema", "momentum", "validated"), EMA_CASES)
def test_an_ema_copy_exists_when_train_ema_or_the_ssl_teacher_asks_with_its_momentum(
    tiny, overrides, has_ema, momentum, validated
):
    """train.ema keeps an EMA copy, and so does SSL with the EMA teacher; its momentum is the
    teacher's when SSL is on, else train.ema_momentum. The copy is in eval mode (BatchNorm
    running statistics, no dropout) and is what is validated and saved with train.ema only."""
    step = make_step(*overrides)
    assert step.trained is step.model  # one process, not compiled
    assert (step.ema is not None) == has_ema
    if has_ema:
        assert step.ema.decay == momentum
        assert step.ema.module.training is False
        assert step.model.training is True
    assert step.eval_model is (step.ema.module if validated else step.model)


@pytest.mark.parametrize("warmup", [False, True])
def test_the_ema_warm_up_is_the_configs(tiny, warmup):
    step = make_step("train.ema=true", f"train.ema_warmup={str(warmup).lower()}")
    assert step.ema.use_warmup is warmup


@pytest.mark.parametrize(
    ("overrides", "teacher"),
    [
        (["ssl.enabled=true", "ssl.teacher=ema"], "ema"),
        (["ssl.enabled=true", "ssl.teacher=model"], None),
        (["ssl.enabled=false", "train.ema=true"], "none built"),
    ],
)
def test_the_ssl_teacher_is_built_from_the_ssl_config_the_ema_copy_and_the_student(
    tiny, monkeypatch, overrides, teacher
):
    calls = []
    original = stage1_train.build_teacher

    def spy(config, ema, student, device):
        calls.append((config, ema, student, device))
        return original(config, ema, student, device)

    monkeypatch.setattr(stage1_train, "build_teacher", spy)
    step = make_step(*overrides)
    if teacher == "none built":
        assert calls == [] and step.teacher is None and step.objective is None
        return
    [(config, ema, student, device)] = calls
    assert config is step.config.ssl and student is step.model and device == CPU
    assert ema is (step.ema.module if step.ema is not None else None)
    if teacher == "ema":
        assert step.teacher is step.ema.module and step.teacher.training is False
    else:
        assert step.teacher is None


def test_the_losses_are_the_configs_with_the_labelled_class_counts(tiny):
    counts = np.array([9, 0, 1, 3, 0, 2, 0, 0])
    step = make_step(
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "train.class_balanced=false",
        "train.loss=logit_adjusted",
        "train.logit_adjust_tau=2",
        num_unlabelled=6,
        class_counts=counts,
    )
    prior = (counts + 1) / (counts + 1).sum()  # add-one smoothed
    torch.testing.assert_close(
        step.labelled_loss.adjustment, torch.tensor(2 * np.log(prior)).float()
    )
    assert step.objective.labelled_loss is step.labelled_loss
    assert len(step.objective.threshold.selected_label) == 6  # one slot per unlabelled face
    assert step.accumulate == 1
    assert make_step("train.accumulate=3").accumulate == 3


# ----------------------------------------------------------------------------------------------
# State


def test_the_state_holds_the_model_optimizer_ema_and_objective_and_empty_parts_it_lacks(tiny):
    plain = make_step().state_dict()
    assert plain.keys() == {"model", "optimizer", "ema", "objective"}
    assert plain["ema"] == {} and plain["objective"] == {}
    assert plain["model"].keys() == TinyFrameModel().state_dict().keys()
    assert "param_groups" in plain["optimizer"]
    ssl = make_step("ssl.enabled=true", "ssl.teacher=ema").state_dict()
    assert ssl["ema"].keys() == plain["model"].keys()
    assert ssl["objective"].keys() == {"threshold", "debias"}


def test_a_resumed_step_continues_from_the_state_of_every_part(tiny):
    overrides = ("ssl.enabled=true", "ssl.teacher=ema", "ssl.threshold=flex")
    trained = make_step(*overrides)
    trained(labelled_batch(), unlabelled_batch(), torch.Generator().manual_seed(0), True, 3)
    with torch.no_grad():
        trained.ema.module.head.bias.add_(5.0)  # the EMA differs from the model
    trained.objective.threshold.selected_label[:] = torch.tensor([1, 2, 3, 4, 5, 6])
    trained.objective.debias.p_hat[:] = torch.arange(8.0) / 28
    state = trained.state_dict()
    fresh = make_step(*overrides)
    fresh.load_state_dict(state)
    for part in ("model", "ema", "objective"):
        got, want = fresh.state_dict()[part], state[part]
        for name in ("threshold", "debias") if part == "objective" else [None]:
            a, b = (got[name], want[name]) if name else (got, want)
            assert a.keys() == b.keys()
            for key in a:
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert fresh.optimizer.state_dict()["state"].keys() == state["optimizer"]["state"].keys()
    assert len(fresh.optimizer.state_dict()["state"]) > 0
    # a step without EMA or objective loads the parts it has
    plain = make_step()
    plain.load_state_dict({**make_step().state_dict(), "ema": None, "objective": None})


# ----------------------------------------------------------------------------------------------
# One step


def test_the_input_is_weakly_augmented_with_the_generator_then_normalised(tiny):
    step = make_step()
    batch = images(0)
    expected = (weak_augment(batch, torch.Generator().manual_seed(4)).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(step.to_input(batch, torch.Generator().manual_seed(4)), expected)
    torch.testing.assert_close(step.to_input(batch), (batch.float() / 255 - 0.5) / 0.25)


def expected_loss(model: nn.Module, batch: FrameBatch, seed: int) -> torch.Tensor:
    inputs = (
        weak_augment(batch.images, torch.Generator().manual_seed(seed)).float() / 255 - 0.5
    ) / 0.25
    return F.cross_entropy(model(inputs), batch.labels)


def test_accumulated_batches_add_their_loss_over_accumulate_and_only_the_last_steps(tiny):
    """With accumulate=2 every batch adds the gradient of loss / 2; only a batch with update
    steps the optimizer, clears the gradients and updates the EMA."""
    step = make_step("train.accumulate=2", "train.ema=true", "train.precision=fp32")
    reference = TinyFrameModel()
    reference.load_state_dict(step.model.state_dict())
    batch = labelled_batch()
    want = expected_loss(reference, batch, seed=7)
    want.backward()
    before, ema_before = parameters(step.model), parameters(step.ema.module)

    loss = step(batch, None, torch.Generator().manual_seed(7), update=False, global_step=5)
    torch.testing.assert_close(loss, want.detach())
    assert not loss.requires_grad
    for name, parameter in step.model.named_parameters():
        torch.testing.assert_close(
            parameter.grad, dict(reference.named_parameters())[name].grad / 2
        )
        torch.testing.assert_close(parameter.detach(), before[name], rtol=0, atol=0)
    for name, value in parameters(step.ema.module).items():
        torch.testing.assert_close(value, ema_before[name], rtol=0, atol=0)

    step(batch, None, torch.Generator().manual_seed(7), update=True, global_step=5)
    assert all(p.grad is None for p in step.model.parameters())
    moved = [
        name
        for name, value in parameters(step.model).items()
        if not torch.equal(value, before[name])
    ]
    assert moved == list(before)


def test_the_ema_update_counts_optimizer_steps_with_the_warm_up_decay(tiny):
    """At optimizer step 8 the warm-up decay is 1 - 8^(-2/3) = 0.75 (below the momentum 0.9):
    ema = 0.75 * ema + 0.25 * model, with the model after its optimizer step."""
    step = make_step("train.ema=true", "train.ema_momentum=0.9", "train.ema_warmup=true")
    with torch.no_grad():
        step.ema.module.head.weight.add_(1.0)
    ema_before = parameters(step.ema.module)
    step(labelled_batch(), None, torch.Generator().manual_seed(0), update=True, global_step=8)
    model = parameters(step.model)
    for name, value in parameters(step.ema.module).items():
        torch.testing.assert_close(value, 0.75 * ema_before[name] + 0.25 * model[name])


class FakeProcessGroup:
    """torch.distributed as process 1 of 2 sees it: ``broadcast`` from process 0 writes process
    0's values (``main``, by tensor) into the tensor."""

    def __init__(self, main: dict[int, torch.Tensor]):
        self.main, self.sources = main, []

    def get_backend(self):
        return "gloo"

    def get_world_size(self):
        return 2

    def get_rank(self):
        return 1

    def broadcast(self, tensor, src):
        self.sources.append(src)
        tensor.copy_(self.main[tensor.data_ptr()])


def test_the_ema_buffers_are_process_0s_after_every_update_under_torchrun(tiny, monkeypatch):
    """Each process's BatchNorm statistics are its own batch's; after the EMA update every
    process overwrites its EMA copy's buffers (not its weights) with process 0's, so all
    pseudo-label alike and a resume (which restores process 0's) continues exactly."""
    step = make_step("train.ema=true", "train.ema_momentum=0.9", "train.ema_warmup=false")
    buffers = dict(step.ema.module.named_buffers())
    main = {tensor.data_ptr(): torch.full_like(tensor, 7) for tensor in buffers.values()}
    group = FakeProcessGroup(main)
    monkeypatch.setattr(fervid.runtime.dist, "dist", group)
    monkeypatch.setattr(fervid.runtime.dist, "is_distributed", lambda: True)
    model_buffers = {k: v.clone() for k, v in step.model.named_buffers()}
    ema_before = parameters(step.ema.module)

    step(labelled_batch(), None, torch.Generator().manual_seed(0), update=False, global_step=3)
    assert group.sources == []  # no update, no broadcast
    step(labelled_batch(), None, torch.Generator().manual_seed(0), update=True, global_step=3)
    assert group.sources == [0] * len(buffers)
    for name, tensor in step.ema.module.named_buffers():
        assert torch.equal(tensor, torch.full_like(tensor, 7)), name
    for name, tensor in step.model.named_buffers():  # the trained model keeps its own
        assert not torch.equal(tensor, torch.full_like(tensor, 7)), name
    assert not torch.equal(model_buffers["norm.running_mean"], step.model.norm.running_mean)
    model = parameters(step.model)
    for name, value in parameters(step.ema.module).items():  # weights: the EMA update alone
        torch.testing.assert_close(value, 0.9 * ema_before[name] + 0.1 * model[name])


def test_a_step_without_ema_broadcasts_nothing(tiny, monkeypatch):
    group = FakeProcessGroup({})
    step = make_step("train.ema=false")
    monkeypatch.setattr(fervid.runtime.dist, "dist", group)
    monkeypatch.setattr(fervid.runtime.dist, "is_distributed", lambda: True)
    step(labelled_batch(), None, torch.Generator().manual_seed(0), update=True, global_step=3)
    assert group.sources == []


@pytest.mark.parametrize(("precision", "autocast"), [("bf16", True), ("fp32", False)])
def test_the_forward_runs_under_the_precisions_autocast(tiny, precision, autocast):
    step = make_step(f"train.precision={precision}")
    step(labelled_batch(), None, torch.Generator().manual_seed(0), update=True, global_step=0)
    assert step.model.forwards == [(True, autocast)]


@pytest.mark.parametrize(("update", "synced"), [(False, 1), (True, 0)])
def test_a_ddp_batch_that_only_accumulates_skips_the_gradient_all_reduce(
    tiny, monkeypatch, update, synced
):
    monkeypatch.setattr(stage1_train, "world_size", lambda: 2)
    monkeypatch.setattr(stage1_train, "DistributedDataParallel", FakeDDP)
    step = make_step("train.accumulate=2")
    step(labelled_batch(), None, torch.Generator().manual_seed(0), update, global_step=0)
    assert step.trained.no_sync_calls == synced
    assert len(step.model.forwards) == 1  # through the wrapper


class SpyObjective:
    """Records what the step hands the pseudo-label objective; the loss is the student's mean
    logit on the labelled batch."""

    def __init__(self):
        self.progress, self.calls = [], []

    def set_progress(self, epochs_done):
        self.progress.append(epochs_done)

    def __call__(self, *args):
        self.calls.append(args)
        return args[0](args[2]).mean()


def test_the_objective_gets_the_weak_view_augmented_after_the_labelled_batch_and_the_strong_one_as_is(
    tiny,
):
    step = make_step(
        "ssl.enabled=true", "ssl.teacher=ema", "train.steps_per_epoch=5", "train.accumulate=2"
    )
    spy = step.objective = SpyObjective()
    batch, unlabelled = labelled_batch(), unlabelled_batch()
    loss = step(batch, unlabelled, torch.Generator().manual_seed(3), update=False, global_step=2)
    assert spy.progress == [pytest.approx(2 / 5)]  # optimizer steps / steps per epoch
    [(trained, teacher, inputs, labels, weak, strong, indices, truth)] = spy.calls
    assert trained is step.trained and teacher is step.teacher is step.ema.module
    generator = torch.Generator().manual_seed(3)  # one stream: labelled batch, then weak view
    torch.testing.assert_close(inputs, step.model.normalize(weak_augment(batch.images, generator)))
    torch.testing.assert_close(
        weak, step.model.normalize(weak_augment(unlabelled.images, generator))
    )
    torch.testing.assert_close(strong, step.model.normalize(unlabelled.strong))
    assert torch.equal(labels, batch.labels)
    assert torch.equal(indices, unlabelled.indices) and torch.equal(truth, unlabelled.truth)
    with torch.no_grad():  # BatchNorm in training mode: the batch's statistics, as in the step
        torch.testing.assert_close(loss, step.model(inputs).mean())
    assert not loss.requires_grad
    assert all(p.grad is not None for p in step.model.parameters())  # backward ran


def test_the_unlabelled_weight_ramps_up_with_the_optimizer_steps_done(tiny):
    """ssl.rampup_epochs=4, 5 steps per epoch: at optimizer step 2, 0.4 epochs are done and the
    weight is lambda_u * 0.4 / 4 = 2 * 0.1."""
    step = make_step(
        "ssl.enabled=true",
        "ssl.lambda_u=2",
        "ssl.rampup_epochs=4",
        "train.steps_per_epoch=5",
    )
    step(labelled_batch(), unlabelled_batch(), torch.Generator().manual_seed(3), True, 2)
    assert step.objective.weight == pytest.approx(0.2)


def test_the_ema_teacher_pseudo_labels_in_eval_mode_and_the_student_learns_in_train_mode(tiny):
    step = make_step("ssl.enabled=true", "ssl.teacher=ema", "ssl.threshold=fixed")
    step.model.train()
    step(labelled_batch(), unlabelled_batch(), torch.Generator().manual_seed(3), True, 1)
    assert step.teacher.forwards == [(False, False)]
    assert step.model.forwards == [(True, False)]
    assert step.teacher.training is False and step.ema.module.training is False


def test_a_call_without_update_and_step_is_a_whole_optimizer_step_at_step_0(tiny):
    step = make_step("ssl.enabled=true", "ssl.teacher=ema", "train.accumulate=2")
    spy = step.objective = SpyObjective()
    before = parameters(step.model)
    step(labelled_batch(), unlabelled_batch(), torch.Generator().manual_seed(3))
    assert spy.progress == [0.0]
    assert all(p.grad is None for p in step.model.parameters())  # stepped and cleared
    assert all(not torch.equal(v, before[k]) for k, v in parameters(step.model).items())


META = torch.device("meta")


def test_the_step_moves_its_model_and_every_batch_to_its_device(tiny):
    """On the meta device (shapes without data, standing in for a GPU): the model, the inputs,
    labels and unlabelled indices go there; the truth stays on the CPU, where the pseudo-label
    statistics count."""
    torch.manual_seed(0)
    config = config_of("train.precision=fp32", "ssl.enabled=true", "ssl.teacher=model")
    step = Stage1Step(config, 6, META)
    assert all(p.device == META for p in step.model.parameters())
    assert step.to_input(images(0)).device == META
    spy = step.objective = SpyObjective()
    loss = step(labelled_batch(), unlabelled_batch(), torch.Generator().manual_seed(0), False)
    [(_, _, inputs, labels, weak, strong, indices, truth)] = spy.calls
    assert [t.device for t in (inputs, labels, weak, strong, indices, loss)] == [META] * 6
    assert truth.device == CPU
    supervised = Stage1Step(config_of("train.precision=fp32"), 0, META)
    loss = supervised(labelled_batch(), None, torch.Generator().manual_seed(0), False)
    assert loss.device == META  # the cross-entropy's labels are there too


# ----------------------------------------------------------------------------------------------
# Validation


def test_frame_validation_predicts_with_its_model_and_scores_and_writes_with_fervid_evaluate(
    monkeypatch, tmp_path
):
    calls = []
    data = SimpleNamespace(
        predict_validation=lambda *args: calls.append(("predict", *args)) or "predictions"
    )
    monkeypatch.setattr(stage1_train, "score", lambda p: calls.append(("score", p)) or {"f1": 1})
    monkeypatch.setattr(
        stage1_train, "write_evaluation", lambda d, p: calls.append(("write", d, p)) or {"f1": 2}
    )
    model = nn.Linear(1, 1)
    validation = FrameValidation(data, model, CPU, progress=True)
    assert validation.predict() == "predictions"
    assert validation.score("p") == {"f1": 1}
    assert validation.write(tmp_path, "p") == {"f1": 2}
    assert calls == [("predict", model, CPU, True), ("score", "p"), ("write", tmp_path, "p")]


# ----------------------------------------------------------------------------------------------
# The loop, over stand-in data, step and run directory


class FakeRun:
    """TrainingRun's stand-in: records what the loop hands it."""

    instances: list[FakeRun] = []
    first_epoch = 0

    def __init__(self, run_dir, resume, epochs, eval_every):
        self.args = (run_dir, resume, epochs, eval_every)
        self.calls, self.logs, self.records = [], [], []
        self.run = SimpleNamespace(log=lambda report, name: self.logs.append((name, report)))
        FakeRun.instances.append(self)

    def start(self, config, kind):
        self.calls.append(("start", config, kind))

    def epochs_left(self, step, shared_by):
        self.calls.append(("epochs_left", step, shared_by))
        return range(self.first_epoch, self.args[2])

    def end_epoch(self, epoch, record, step, validation):
        self.records.append(record)
        self.calls.append(("end_epoch", epoch, step, validation))
        step.model.eval()  # as validating would

    def finish(self, weights, meta, validation, split):
        self.calls.append(("finish", weights, meta, validation, split))
        return {"macro_f1": 0.25}


class FakeData:
    """Stage1Data's stand-in: one epoch's labelled batches (sizes and corrupt items given) and
    unlabelled batches."""

    sizes: list[int] = []
    corrupt: list[list[str]] = []
    unlabelled_corrupt: list[list[str]] = []

    def __init__(self, config, progress):
        self.args = (config, progress)
        self.labelled = [
            FrameBatch(torch.zeros(n, 3, 2, 2), torch.zeros(n, dtype=torch.long), None, c)
            for n, c in zip(self.sizes, self.corrupt, strict=True)
        ]
        self.unlabelled = [
            UnlabelledBatch(None, None, None, None, c) for c in self.unlabelled_corrupt
        ]
        self.num_unlabelled, self.class_counts = 17, np.arange(8)
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


class FakeObjective:
    def __init__(self):
        self.reports = 0

    def report(self):
        self.reports += 1
        return {"mask_rate": self.reports / 10}


class FakeStep:
    """Stage1Step's stand-in: the losses of its calls are 1, 2, 3, ... per epoch."""

    instances: list[FakeStep] = []

    def __init__(self, config, num_unlabelled, device, class_counts):
        self.args = (config, num_unlabelled, device, class_counts)
        self.model = nn.Linear(1, 1).eval()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=123.0)
        self.objective = FakeObjective() if config.ssl.enabled else None
        self.eval_model = nn.Linear(2, 1)
        self.calls = []
        FakeStep.instances.append(self)

    def state_dict(self):
        return {}

    def __call__(self, batch, unlabelled, rng, update, global_step):
        self.calls.append(
            {
                "n": len(batch.labels),
                "unlabelled": unlabelled,
                "rng": rng,
                "update": update,
                "step": global_step,
                "lr": self.optimizer.param_groups[0]["lr"],
                "training": self.model.training,
            }
        )
        index = sum(1 for c in self.calls if c["rng"] is rng)
        return torch.tensor(float(index))


class FakeBar:
    instances: list[FakeBar] = []

    def __init__(self, iterable, total, desc, disable):
        self.iterable, self.args, self.postfix = iterable, (total, desc, disable), []
        FakeBar.instances.append(self)

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, **kwargs):
        self.postfix.append(kwargs)


@pytest.fixture
def fake_loop(monkeypatch):
    """train_stage1 over the stand-ins; the clock reads 10 s at an epoch's start, 12.5 s at its
    end."""
    for fake in (FakeRun, FakeStep, FakeBar):
        fake.instances = []
    FakeRun.first_epoch = 0
    FakeData.sizes = [3, 1, 2, 2, 1, 3]
    FakeData.corrupt = [["a"], [], ["b", "c"], [], [], ["d"]]
    FakeData.unlabelled_corrupt = [[], ["u"], [], [], ["v", "w"], []]
    monkeypatch.setattr(stage1_train, "TrainingRun", FakeRun)
    monkeypatch.setattr(stage1_train, "Stage1Data", FakeData)
    monkeypatch.setattr(stage1_train, "Stage1Step", FakeStep)
    monkeypatch.setattr(stage1_train, "tqdm", FakeBar)
    clock = itertools.cycle([10.0, 12.5])
    monkeypatch.setattr(stage1_train, "time", SimpleNamespace(perf_counter=lambda: next(clock)))


LOOP = [
    "train.epochs=2",
    "train.steps_per_epoch=3",
    "train.accumulate=2",
    "train.eval_every=3",
    "train.seed=7",
    "train.log_every=4",
    "optim.lr=1.0",
    "optim.min_lr_ratio=0",
    "optim.warmup_epochs=1",
    "eval.split=validation",
]


def test_the_loop_counts_optimizer_steps_and_follows_the_warm_up_and_cosine_schedule(fake_loop):
    """2 epochs of 3 optimizer steps of 2 batches: warm-up over 1 epoch (3 steps: lr/3, 2lr/3,
    lr), then cosine over the other 3: lr, 0.75 lr, 0.25 lr."""
    config = config_of(*LOOP, "ssl.log_every=1")
    torch.manual_seed(123)
    metrics = train_stage1(config, "run-dir", resume=True, progress=False)
    assert torch.initial_seed() == 7
    [step], [run] = FakeStep.instances, FakeRun.instances
    assert [c["step"] for c in step.calls] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [c["update"] for c in step.calls] == [False, True] * 6
    lrs = [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1, 0.75, 0.75, 0.25, 0.25]
    assert [c["lr"] for c in step.calls] == pytest.approx(lrs)
    assert all(c["training"] for c in step.calls)
    assert all(c["unlabelled"] is None for c in step.calls)
    assert [c["n"] for c in step.calls] == FakeData.sizes * 2
    # the augmentation stream of each epoch: its own seed per (seed, epoch, process)
    rngs = [c["rng"] for c in step.calls]
    assert all(r is rngs[0] for r in rngs[:6]) and all(r is rngs[6] for r in rngs[6:])
    assert [rngs[0].initial_seed(), rngs[6].initial_seed()] == [7 * 100_003, 7 * 100_003 + 101]

    assert run.args == ("run-dir", True, 2, 3)
    data = run.calls[-1][3].data
    assert step.args[0] is config and step.args[1] == 17 and step.args[2] == CPU
    assert step.args[3] is data.class_counts
    assert run.logs == []  # no SSL, no pseudo-label report
    # per epoch: loss = (1*3 + 2*1 + 3*2 + 4*2 + 5*1 + 6*3) / 12 = 42 / 12; 12 frames in 2.5 s;
    # corrupt items: 4 labelled (no unlabelled batches)
    # the learning rate of the epoch's last step
    for epoch, (record, lr) in enumerate(zip(run.records, [1.0, 0.25], strict=True)):
        assert record == {
            "epoch": epoch + 1,
            "step": 3 * (epoch + 1),
            "loss": pytest.approx(42 / 12),
            "lr": pytest.approx(lr),
            "labelled_images_per_s": pytest.approx(12 / 2.5),
            "corrupt_skipped": 4,
        }
    assert [bar.args for bar in FakeBar.instances] == [
        (6, "epoch 1/2", True),
        (6, "epoch 2/2", True),
    ]
    # the loss is shown every 4th batch: batches 0 and 4 of each epoch
    assert FakeBar.instances[0].postfix == [{"loss": "1.000"}, {"loss": "5.000"}]
    validation = run.calls[-1][3]
    assert isinstance(validation, FrameValidation)
    assert validation.model is step.eval_model and validation.device == CPU
    assert validation.progress is False and isinstance(validation.data, FakeData)
    assert validation.data.args == (config, False) and validation.data.epochs == [0, 1]
    assert run.calls[:2] == [("start", config, "stage1"), ("epochs_left", step, "samplers shard")]
    assert run.calls[2] == ("end_epoch", 0, step, validation)
    assert run.calls[3] == ("end_epoch", 1, step, validation)
    name, weights, meta, final_validation, split = run.calls[4]
    assert name == "finish" and final_validation is validation and split == "validation"
    assert weights.keys() == step.eval_model.state_dict().keys()
    assert meta == {"kind": "frame", "config": to_dict(config)}
    assert metrics == {"macro_f1": 0.25}


def test_with_ssl_the_loop_reads_unlabelled_batches_and_reports_pseudo_labels_every_n_steps(
    fake_loop,
):
    """ssl.log_every=3: a report after optimizer steps 3 and 6 (the batches that update at
    steps 2 and 5), with the epoch and the step counted from 1. Progress bars are on unless
    turned off."""
    config = config_of(*LOOP, "ssl.enabled=true", "ssl.log_every=3")
    train_stage1(config, "run-dir")
    [step], [run] = FakeStep.instances, FakeRun.instances
    data = run.calls[-1][3].data
    assert [c["unlabelled"] for c in step.calls] == data.unlabelled * 2
    assert run.args == ("run-dir", False, 2, 3)
    assert run.logs == [
        ("steps", {"epoch": 1, "step": 3, "mask_rate": 0.1}),
        ("steps", {"epoch": 2, "step": 6, "mask_rate": 0.2}),
    ]
    # corrupt items: 4 labelled and 3 unlabelled per epoch
    assert [record["corrupt_skipped"] for record in run.records] == [7, 7]
    assert [bar.args[2] for bar in FakeBar.instances] == [False, False]
    assert run.calls[-1][3].progress is True and data.args[1] is True


def test_a_resumed_loop_trains_the_epochs_left_on_their_own_clock(fake_loop):
    """Resumed after epoch 0 of 2, 3 batches per optimizer step: epoch 1 alone, its
    optimizer steps 3 to 5, each taken after its third batch."""
    FakeRun.first_epoch = 1
    FakeData.sizes, FakeData.corrupt = [1] * 9, [[]] * 9
    train_stage1(config_of(*LOOP, "train.accumulate=3"), "run-dir", resume=True, progress=False)
    [step], [run] = FakeStep.instances, FakeRun.instances
    assert [c["step"] for c in step.calls] == [3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert [c["update"] for c in step.calls] == [False, False, True] * 3
    assert run.calls[-1][3].data.epochs == [1]
    # one frame per batch: the loss is the plain mean (1 + ... + 9) / 9
    assert [r["epoch"] for r in run.records] == [2]
    assert run.records[0]["loss"] == pytest.approx(5)
    assert run.records[0]["labelled_images_per_s"] == pytest.approx(9 / 2.5)


@pytest.mark.parametrize(("sizes", "loss"), [([], 0.0), ([1], 1.0)])
def test_the_epoch_loss_is_the_mean_over_its_frames_and_zero_without_any(fake_loop, sizes, loss):
    FakeData.sizes, FakeData.corrupt = sizes, [[]] * len(sizes)
    train_stage1(config_of(*LOOP, "train.epochs=1"), "run-dir", progress=False)
    [run] = FakeRun.instances
    assert run.records[0]["loss"] == loss
    assert run.records[0]["labelled_images_per_s"] == len(sizes) / 2.5
