"""The training step reads nothing from the host (issue 37): host reads of an epoch do not grow with its steps; the
EMA on the device is torch's, bit for bit; DeviceSGD is torch's SGD to rounding, on the schedule's own floats."""
import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from era_s7 import device_step, optimizers, recipes, training
from era_s7.model import RECIPES, make_model

CONVERSIONS = ("item", "tolist", "numpy", "__int__", "__float__", "__bool__", "__index__")


def host_reads(monkeypatch, fn) -> collections.Counter:
    """Tensor -> Python conversions (CONVERSIONS) while fn() runs; conversions inside C++ (a Tensor passed where a
    number is expected) are not seen here: the GPU check (scripts/graph_check.py) catches those as syncs."""
    counts = collections.Counter()

    def counted(name, method):
        def wrapper(self, *args, **kwargs):
            counts[name] += 1
            return method(self, *args, **kwargs)
        return wrapper

    with monkeypatch.context() as m:
        for name in CONVERSIONS:
            m.setattr(torch.Tensor, name, counted(name, getattr(torch.Tensor, name)))
        fn()
    return counts


@pytest.mark.parametrize("step", ["eager", "device"])
def test_host_reads_of_an_epoch_do_not_grow_with_its_steps(step, mnist, monkeypatch):
    """Model_3's recipe, EMA on: the reads of one train_epoch are the same at 20 steps as at 40 (main's engine:
    80 and 160, 4 a step: the EMA's int(updates) and n_averaged tests), and only the epoch's loss and accuracy."""
    hp = recipes.check_hyperparameters(RECIPES["Model_3"])
    reads = {}
    for steps in (20, 40):
        x, y = mnist["x_train"][:64 * steps], mnist["y_train"][:64 * steps]
        engine = training.setup(make_model("Model_3"), x, y, hp, seed=0, step=step)
        assert engine.steps_per_epoch == steps and len(engine.averages) == 1
        reads[steps] = host_reads(monkeypatch, lambda: training.train_epoch(engine, x, y))
    assert reads[20] == reads[40] == {"item": 2}


class ScalarReads(TorchDispatchMode):
    """Counts aten::_local_scalar_dense, where every tensor-to-number conversion lands, those inside C++ too (a
    0-dim tensor passed as a Scalar: `add_(alpha=t)`, `_foreach_lerp_(..., t)`): each one a sync on a GPU."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func is torch.ops.aten._local_scalar_dense.default
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("step", ["eager", "device"])
def test_a_training_step_converts_no_tensor_to_a_number_not_even_inside_cpp(step, mnist):
    """What CUDA would have to wait for: none in a step of Model_3's recipe with both EMAs and the teacher."""
    hp = recipes.check_hyperparameters({**RECIPES["Model_3"], "ema_also": 0.99, "distill": 0.3})
    model = make_model("Model_3")
    opt, sched = optimizers.make_optimizer(model, hp, 10)
    opt = optimizers.Scheduled(opt, sched) if step == "eager" else device_step.DeviceSGD(
        opt, *device_step.schedule_table(model, hp, 10))
    averages = [optimizers.make_ema(model, hp["ema"]), optimizers.make_ema(model, hp["ema_also"])]
    sums = (torch.zeros(()), torch.zeros((), dtype=torch.long))
    g = torch.Generator().manual_seed(0)
    with ScalarReads() as reads:
        for k in range(3):
            training.train_step(model, mnist["x_train"], mnist["y_train"], torch.arange(64 * k, 64 * k + 64), hp, g,
                                opt, sums, averages, teacher=averages[0].module.eval())
    assert reads.count == 0 and sums[0] > 0


def _main_s_ema(model, decay):
    """make_ema as main had it (b8e2348), verbatim: torch's AveragedModel with the warm-up read on the host."""
    def update(averaged, current, updates):
        decayed = optimizers.ema_decay(decay, int(updates))
        torch.optim.swa_utils.get_ema_multi_avg_fn(decayed)(averaged, current, updates)
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def test_the_ema_on_the_device_is_torch_s_bit_for_bit():
    """Weights, BatchNorm statistics and num_batches_tracked, through the warm-up and past it (n > 4,490 at
    0.998 would take long; 0.95 reaches its set decay after 170 updates)."""
    for decay in (0.998, 0.95):
        model = make_model("Model_3").train()
        ours, main_s = optimizers.make_ema(model, decay), _main_s_ema(model, decay)
        gen = torch.Generator().manual_seed(0)
        for _ in range(200):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn(p.shape, generator=gen) * 0.1)
            model(torch.randn(8, 1, 28, 28, generator=gen))  # moves BN's statistics and num_batches_tracked
            ours.update_parameters(model)
            main_s.update_parameters(model)
        a, b = ours.state_dict(), main_s.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_schedule_table_holds_the_schedule_s_floats():
    model = make_model("Model_3")
    hp = recipes.check_hyperparameters({**RECIPES["Model_3"], "epochs": 2})
    lrs, momenta = device_step.schedule_table(model, hp, 5)
    opt, sched = optimizers.make_optimizer(model, hp, 5)
    for k in range(11):
        assert lrs[k].tolist() == [g["lr"] for g in opt.param_groups]
        assert momenta[k].tolist() == [g["momentum"] for g in opt.param_groups]
        if k < 10:
            opt.step()
            sched.step()
    assert momenta[:, 0].min() == 0.85 and momenta[:, 0].max() == 0.95  # one-cycle cycles it
    with pytest.raises(ValueError, match="'sgd' only"):
        device_step.schedule_table(model, recipes.check_hyperparameters(dict(optimizer="adam")), 5)


def test_device_sgd_is_torch_s_sgd_to_rounding():
    """Same weights, same gradients, 60 steps of Model_3's one-cycle schedule (lr and momentum cycled, two groups
    of weight decay): within float32 rounding of torch's update (the gradients do not depend on the weights
    here, so the rounding does not grow the way training's feedback grows it)."""
    hp = recipes.check_hyperparameters({**RECIPES["Model_3"], "epochs": 2})
    models = [make_model("Model_3"), make_model("Model_3")]
    opt, sched = optimizers.make_optimizer(models[0], hp, 30)
    ours = device_step.DeviceSGD(optimizers.make_optimizer(models[1], hp, 30)[0],
                              *device_step.schedule_table(models[1], hp, 30))
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        for a, b in zip(*(m.parameters() for m in models)):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        opt.step()
        sched.step()
        ours.step()
    moved = 0.0
    for a, b, start in zip(models[0].parameters(), models[1].parameters(), make_model("Model_3").parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        moved = max(moved, (a - start).abs().max().item())
    assert moved > 0.1 and ours.count.item() == 60  # they did train, on the table's rows


def test_the_device_step_trains_like_the_eager_one(tiny_data):
    """fit(step="device"): the same schedule and the same first step; after that, rounding grows as training feeds
    it back (docs/research-log.md), so the run is judged as a run: it learns as the eager one does."""
    hp = dict(epochs=2, batch_size=64, lr=0.05, ema=0.99, label_smoothing=0.05)
    runs = {step: training.fit(make_model("Model_3"), tiny_data, hp, seed=2, log=lambda s: None, step=step)
            for step in ("eager", "device")}
    assert [r["lr"] for r in runs["device"]] == [r["lr"] for r in runs["eager"]]
    assert set(runs["device"][0]) == set(runs["eager"][0])
    accs = [runs[step][-1]["test_acc"] for step in ("eager", "device")]
    assert min(accs) > 70 and abs(accs[0] - accs[1]) < 5, accs
    one = dict(hp, epochs=1, train_subset=64)  # one step: the update differs in its last bits at most
    first = [training.fit(make_model("Model_3"), tiny_data, one, seed=2, log=lambda s: None, step=step)[0]
             for step in ("eager", "device")]
    assert first[0]["train_loss"] == first[1]["train_loss"]


def test_the_step_is_named_and_the_graph_needs_cuda(tiny_data, monkeypatch):
    hp = dict(epochs=1, train_subset=64)
    with pytest.raises(ValueError, match="step='fast'; allowed"):
        training.fit(make_model("Model_3"), tiny_data, hp, step="fast")
    monkeypatch.setenv("ERA_S7_STEP", "graph")  # the environment chooses when fit is not told
    with pytest.raises(ValueError, match="captures CUDA graphs"):
        training.fit(make_model("Model_3"), tiny_data, hp, log=lambda s: None)
    with pytest.raises(ValueError, match="'sgd' only"):
        training.fit(make_model("Model_3"), tiny_data, dict(hp, optimizer="adam"), log=lambda s: None)


def test_the_gpu_check_runs_on_the_cpu_and_passes_there(tmp_path, capsys):
    """scripts/graph_check.py, all but the capture (its graphed side is the eager DeviceSGD step on the CPU): the
    same seed gives the same losses and weights, and its record names what it compared."""
    import importlib.util
    import json
    from pathlib import Path
    script = Path(__file__).parent.parent / "scripts" / "graph_check.py"
    spec = importlib.util.spec_from_file_location("graph_check", script)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        out = str(tmp_path / "c.json")
        assert check.main(["--device", "cpu", "--steps", "4", "--time-steps", "0", "--out", out]) == 0
    finally:
        torch.set_num_threads(threads)
    record = json.loads((tmp_path / "c.json").read_text())
    assert record["steps"] == 5 and record["graphed"] == "device" and record["first_step_differing"] is None
    assert record["max_abs_weight_diff"] == 0.0 and "graph check passed" in capsys.readouterr().out


class EagerReplay(device_step.GraphedSteps):
    """GraphedSteps with the capture replaced by the step itself: on the CPU, everything but torch.cuda.graph."""
    device_type = "cpu"

    def record(self, run, scratch):
        for _ in range(device_step.WARMUP_STEPS):  # the warm-up, as on CUDA: its changes must all be undone
            run(scratch)
        return lambda: run(self.generator)


def test_graphed_steps_replay_the_device_step_exactly_short_batches_and_teacher_included(tiny_data):
    """Two epochs of 1,000 images (15 x 64 + 40: two recorded steps, the second for the short batch) and a teacher
    from epoch 2 (two more): the same losses and weights, bit for bit, as the device step, so the warm-up before
    each capture restores every tensor it changed and the static index takes each batch."""
    hp = recipes.check_hyperparameters({**RECIPES["Model_3"], "epochs": 2, "ema_also": 0.99, "distill": 0.3,
                                         "distill_after": 1})
    x, y = tiny_data["x_train"][:1000], tiny_data["y_train"][:1000]
    runs = {}
    for replayed in (False, True):
        engine = training.setup(make_model("Model_3"), x, y, hp, seed=4, step="device")
        model, ema = engine.model, engine.ema
        if replayed:
            engine.graphed = EagerReplay(training.train_step, model, x, y, engine.hp, engine.generator, engine.opt,
                                         engine.averages)
        epochs = [training.train_epoch(engine, x, y, ema.module.eval() if epoch > 1 else None) for epoch in (1, 2)]
        runs[replayed] = (epochs, [t.clone() for t in (*model.state_dict().values(), *ema.state_dict().values())])
        if replayed:
            assert sorted(engine.graphed.graphs) == [(40, False), (40, True), (64, False), (64, True)]
    assert runs[True][0] == runs[False][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[True][1], runs[False][1]))
