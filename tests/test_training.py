import pytest
import torch

from era_s7 import augmentation, device_step, machine, optimizers, recipes, results, training
from era_s7.model import Model_3, make_model


def small_net():
    return make_model("Model_3", seed=0)


def test_augment_shape_dtype_and_per_sample_randomness():
    x = torch.randn(1, 1, 28, 28).repeat(16, 1, 1, 1)
    out = augmentation.augment(x, 15.0, 0.1, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[0], flat[i]) for i in range(1, 16))  # each sample its own transform


def test_augment_is_identity_at_zero_strength():
    x = torch.randn(8, 1, 28, 28)
    assert augmentation.augment(x, 0.0, 0.0) is x
    # a tiny but non-zero strength goes through grid_sample and must stay close to the input
    assert torch.allclose(augmentation.augment(x, 1e-6, 1e-6, torch.Generator().manual_seed(0)), x, atol=1e-3)


def test_augment_fills_with_black_background():
    x = torch.full((4, 1, 28, 28), 2.0)  # an all-bright image
    out = augmentation.augment(x, 0.0, 0.3, torch.Generator().manual_seed(1))
    assert torch.isclose(out.min(), torch.tensor(augmentation.BACKGROUND), atol=1e-4)


def test_fit_learns_and_reports_every_epoch(tiny_data):
    lines = []
    history = training.fit(small_net(), tiny_data, dict(epochs=3, batch_size=32, lr=0.05, schedule="constant"),
                           seed=0, log=lines.append)
    assert [r["epoch"] for r in history] == [1, 2, 3] and len(lines) == 3
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"}
    assert history[-1]["test_acc"] > 70.0 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert lines[-1] == training.format_epoch(history[-1], 3)


def test_same_seed_same_history_bit_for_bit(tiny_data):
    hp = dict(epochs=2, batch_size=32, lr=0.05)
    runs = [training.fit(small_net(), tiny_data, hp, seed=3, log=lambda s: None) for _ in range(2)]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in h] for h in runs]
    assert strip[0] == strip[1]
    other = training.fit(small_net(), tiny_data, hp, seed=4, log=lambda s: None)
    assert [r["train_loss"] for r in other] != [r["train_loss"] for r in runs[0]]


def test_schedule_never_reads_test_metrics(tiny_data):
    """Same training data, very different test sets: the learning rates must be identical."""
    hp = dict(epochs=2, batch_size=32, lr=0.05)
    other = dict(tiny_data, x_test=torch.randn(100, 1, 28, 28), y_test=torch.randint(0, 10, (100,)))
    lrs = [[r["lr"] for r in training.fit(small_net(), d, hp, seed=0, log=lambda s: None)] for d in (tiny_data, other)]
    assert lrs[0] == lrs[1]


@pytest.mark.parametrize("bad, match", [
    (dict(epochs=0), "epochs"), (dict(batch_size=-1), "batch_size"), (dict(lr=0), "lr"),
    (dict(optimizer="rmsprop"), "optimizer"), (dict(schedule="plateau"), "schedule"), (dict(lrr=1), "unknown"),
])
def test_bad_hyperparameters_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        recipes.check_hyperparameters(bad)


def test_device_selection():
    assert machine.select_device("cpu").type == "cpu"
    assert machine.select_device("auto").type in ("cuda", "mps", "cpu")
    with pytest.raises(ValueError, match="not known"):
        machine.select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not present"):
            machine.select_device("cuda")


def test_evaluate_and_predict_agree(tiny_data):
    net = small_net()
    loss, acc = training.evaluate(net, tiny_data["x_test"], tiny_data["y_test"], batch_size=7)
    probs = training.predict(net, tiny_data["x_test"], batch_size=7)
    assert probs.shape == (500, 10) and torch.allclose(probs.sum(1), torch.ones(500))
    assert acc == pytest.approx(100.0 * (probs.argmax(1) == tiny_data["y_test"]).float().mean().item())


def test_elastic_moves_pixels_smoothly_by_at_most_its_strength():
    # a ramp whose value is the column index: a displacement of d pixels changes a value by d
    ramp = torch.arange(28.0).view(1, 1, 1, 28).expand(64, 1, 28, 28).contiguous() + augmentation.BACKGROUND
    out = augmentation.augment(ramp, 0.0, 0.0, torch.Generator().manual_seed(0), elastic=2.0)
    moved = (out - ramp)[..., 3:-3, 3:-3]  # the borders take in black background
    assert moved.abs().max() <= 2.0 + 1e-4
    assert moved.abs().mean() > 0.2  # it does move
    # smooth: neighbours move alike, never by a pixel or more (no strokes folded over or torn apart)
    assert (moved[..., :, 1:] - moved[..., :, :-1]).abs().max() < 1.0
    # elastic=0 draws nothing extra: rotation and shifts stay exactly as before
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(augmentation.augment(ramp, 8.0, 0.0, g1), augmentation.augment(ramp, 8.0, 0.0, g2, elastic=0.0))


def test_thread_count_works_where_there_is_no_affinity(monkeypatch):
    """macOS and Windows have no os.sched_getaffinity: every core counts there."""
    import os

    from era_s7 import utils
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    before = torch.get_num_threads()
    try:
        assert machine.usable_cores() == [0, 1, 2]
        assert machine.set_threads() == 3 == torch.get_num_threads()
        assert "3 cores" in utils.environment(torch.device("cpu"))
    finally:
        torch.set_num_threads(before)


def test_augmentation_figure_only_where_the_recipe_augments(capsys):
    from era_s7 import plots
    from era_s7.model import RECIPES
    x = torch.randn(10, 1, 28, 28)
    assert plots.plot_augmentations(x, recipes.check_hyperparameters(RECIPES["Model_1"])) is None
    assert "no augmentation" in capsys.readouterr().out
    assert plots.plot_augmentations(x, recipes.check_hyperparameters(RECIPES["Model_3"])) is not None


def _one_step_gradients(x, y, bf16: bool, channels_last: bool) -> tuple[float, torch.Tensor]:
    model = small_net().train()
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits.float(), y)
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])


def test_a_bf16_channels_last_step_agrees_with_fp32(mnist):
    """The stated tolerance of the fast precision: from the same weights and batch, channels_last alone gives
    fp32's loss to 1e-4 and its gradient to a cosine similarity of 0.999 (only the order of sums differs); bf16
    autocast (8 bits of mantissa) gives the loss within 2 % and the gradient at a cosine similarity of at
    least 0.98 (measured 0.994 on an AMD EPYC). A wrong memory format or a lost gradient fails this."""
    x, y = mnist["x_train"][:128], mnist["y_train"][:128]
    loss32, grad32 = _one_step_gradients(x, y, bf16=False, channels_last=False)
    loss_cl, grad_cl = _one_step_gradients(x, y, bf16=False, channels_last=True)
    loss16, grad16 = _one_step_gradients(x, y, bf16=True, channels_last=True)
    cosine = torch.nn.functional.cosine_similarity
    assert loss_cl == pytest.approx(loss32, rel=1e-4) and cosine(grad_cl, grad32, dim=0) >= 0.999
    assert loss16 == pytest.approx(loss32, rel=0.02) and cosine(grad16, grad32, dim=0) >= 0.98


def test_ema_warm_up_forgets_the_initial_weights():
    """With the warm-up the average holds a trained model within the first epoch; the decay reaches its set
    value after (1 + n) / (10 + n) passes it (n = 4,490 updates at 0.998) and stays there."""
    assert optimizers.ema_decay(0.998, 0) == pytest.approx(0.1)
    assert optimizers.ema_decay(0.998, 90) == pytest.approx(0.91)
    assert optimizers.ema_decay(0.998, 10_000) == 0.998
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = optimizers.make_ema(model, 0.998)
    with torch.no_grad():
        model.weight.fill_(1.0)  # training moved the weight from 0 to 1
    for _ in range(300):  # under one epoch (391 steps of batch 128)
        ema.update_parameters(model)
    # without the warm-up the average would still be 1 - 0.998**299 = 0.45 of the way there
    assert ema.module.weight.item() > 0.95


def test_a_run_read_without_its_ema_is_the_run_trained_without_it(tiny_data):
    """The ablation's "- EMA" variant costs no training: the raw weights of an EMA run, evaluated beside the EMA,
    must be exactly what a run without the EMA measures (the EMA never feeds back)."""
    hp = dict(epochs=2, batch_size=32, lr=0.05, ema=0.99, label_smoothing=0.1)
    with_ema = training.fit(small_net(), tiny_data, hp, seed=5, log=lambda s: None)
    plain = training.fit(small_net(), tiny_data, {**hp, "ema": 0.0}, seed=5, log=lambda s: None)
    assert "raw_test_acc" not in plain[0]
    # the EMA differs from its weights
    assert [r["test_acc"] for r in with_ema] != [r["raw_test_acc"] for r in with_ema]
    run = dict(name="full", hyperparameters=hp, history=with_ema, total_seconds=9.0, seed=5)
    derived = results.without_ema(run, "- EMA")
    keep = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert keep(derived["history"]) == keep(plain)
    assert derived["name"] == "- EMA" and derived["derived_from"] == "full" and derived["total_seconds"] == 0.0
    assert derived["hyperparameters"] == {**hp, "ema": 0.0} and run["hyperparameters"]["ema"] == 0.99  # a copy
    with pytest.raises(ValueError, match="without a weight EMA"):
        results.without_ema(derived)
    with pytest.raises(ValueError, match="did not record its raw weights"):
        results.without_ema(dict(run, history=[{k: v for k, v in r.items() if not k.startswith("raw_")}
                                               for r in with_ema]))


def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_units(tmp_path, monkeypatch):
    """"auto" follows the measurements (research log): bf16 where the CPU has bf16 units (AVX512-BF16 or AMX),
    fp32 on other CPUs (bf16 was 2.5x slower on an AVX2 AMD EPYC) and on GPUs; a named precision is kept."""
    cpuinfo = tmp_path / "cpuinfo"
    for flags, native in [("fpu sse2 avx2 avx512f", False), ("fpu avx512f avx512_bf16", True),
                          ("fpu amx_bf16 amx_tile", True)]:
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        assert machine.native_bf16(cpuinfo) is native
    assert machine.native_bf16(tmp_path / "missing") is False  # no /proc (macOS, Windows): fp32
    monkeypatch.setattr(recipes, "native_bf16", lambda: True)
    assert recipes.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert recipes.resolve_precision("auto", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(recipes, "native_bf16", lambda: False)
    assert recipes.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert recipes.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="precision='fp16'.*'auto'"):
        recipes.resolve_precision("fp16", torch.device("cpu"))


def test_a_second_ema_changes_nothing_the_first_measures_and_reads_as_its_own_run(tiny_data):
    """`ema_also` follows a second average beside `ema`: the history is, bit for bit, the one without it, and
    `with_ema_also` reads from it exactly the run that trains with ema=ema_also."""
    hp = dict(epochs=2, batch_size=20, lr=0.05, ema=0.99, rotate_deg=5.0, translate=0.0)  # 200 steps: past the warm-up
    keep = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    fits = {}
    for name, extra in [("one", {}), ("both", dict(ema_also=0.9)), ("other", dict(ema=0.9))]:
        torch.manual_seed(3)
        fits[name] = training.fit(Model_3(), tiny_data, {**hp, **extra}, seed=3, log=lambda line: None)
    both = fits["both"]
    assert keep([{k: v for k, v in r.items() if not k.startswith("ema_also_")} for r in both]) == keep(fits["one"])
    assert [r["ema_also_test_loss"] for r in both] != [r["test_loss"] for r in both]  # the two averages differ
    run = dict(name="r", hyperparameters=recipes.check_hyperparameters({**hp, "ema_also": 0.9}), history=both,
               total_seconds=1.0, seed=3)
    derived = results.with_ema_also(run)
    assert keep(derived["history"]) == keep(fits["other"]) and derived["hyperparameters"]["ema"] == 0.9
    with pytest.raises(ValueError, match="no second EMA"):
        results.with_ema_also(derived)
    with pytest.raises(ValueError, match="set ema too"):
        recipes.check_hyperparameters(dict(ema=0.0, ema_also=0.9))


def test_no_decay_exempts_exactly_the_named_parameters():
    model = Model_3()
    groups = optimizers.decay_groups(model, "depthwise+batchnorm", 1e-4)
    exempt = {id(p) for p in groups[1]["params"]}
    depthwise = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1]
    norms = [p for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()]
    assert exempt == {id(p) for p in depthwise + norms} and len(depthwise) == 4
    assert groups[0]["weight_decay"] == 1e-4 and groups[1]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    only_bn = optimizers.decay_groups(model, "batchnorm", 1e-4)
    assert {id(p) for p in only_bn[1]["params"]} == {id(p) for p in norms}
    assert len(optimizers.decay_groups(model, "", 1e-4)) == 1  # none named: the plain optimizer
    with pytest.raises(ValueError, match="'pointwise'.*unknown"):
        recipes.check_hyperparameters(dict(no_decay="pointwise"))


def test_import_makes_openmp_threads_wait_passively_unless_told_otherwise():
    """Two notebooks at once: OpenMP's spinning threads took each other's cores (scripts/omp_wait_check.py)."""
    import os
    import subprocess
    import sys
    code = "import era_s7, os; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if not k.endswith("OMP_WAIT_POLICY")}
    read = lambda **extra: subprocess.run([sys.executable, "-c", code], env={**env, **extra}, text=True,  # noqa: E731
                                          capture_output=True, check=True).stdout.strip()
    assert read() == "PASSIVE"
    assert read(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"  # the user's own setting is kept
    assert read(ERA_S7_OMP_WAIT_POLICY="keep") == "None"


def test_self_distillation_starts_when_told_and_pulls_towards_the_teacher(tiny_data):
    """distill=0 or before distill_after: the plain run, bit for bit; after it, the run changes; the KL term is 0
    exactly when student and teacher agree."""
    hp = dict(epochs=2, batch_size=50, lr=0.05, ema=0.9, rotate_deg=0.0, translate=0.0)
    runs = {}
    for name, extra in [("plain", {}), ("late", dict(distill=0.5, distill_after=2)),
                        ("on", dict(distill=0.5, distill_after=1))]:
        torch.manual_seed(1)
        runs[name] = [r["test_loss"] for r in training.fit(Model_3(), tiny_data, {**hp, **extra}, seed=1,
                                                           log=lambda s: None)]
    assert runs["late"] == runs["plain"]  # distillation never started
    assert runs["on"][0] == runs["plain"][0] and runs["on"][1] != runs["plain"][1]  # it starts after epoch 1
    logits = torch.randn(4, 10)
    assert training.distillation_loss(logits, logits, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert training.distillation_loss(logits, -logits, 2.0).item() > 0
    with pytest.raises(ValueError, match="needs a weight EMA"):
        recipes.check_hyperparameters(dict(distill=0.5))


def test_muon_trains_the_channel_mixing_convs_with_orthogonal_updates_and_sgd_the_rest():
    """optimizer="muon": the stem and pointwise weights (not the classifier) go to Muon, every other parameter to
    SGD, each exactly once; Muon's first update of a matrix is orthogonalised (its singular values near 1 x lr)."""
    torch.manual_seed(0)
    model = Model_3()
    matrices = optimizers.muon_matrices(model)
    assert [tuple(p.shape) for p in matrices] == [(16, 1, 3, 3), (41, 16, 1, 1)] + [(41, 41, 1, 1)] * 3
    hp = recipes.check_hyperparameters(dict(optimizer="muon", schedule="constant", muon_lr=0.01, momentum=0.9))
    opt, sched = optimizers.make_optimizer(model, hp, steps_per_epoch=10)
    sgd, muon = opt
    in_sgd = [id(p) for g in sgd.param_groups for p in g["params"]]
    in_muon = [id(p) for g in muon.param_groups for p in g["params"]]
    assert sorted(in_muon) == sorted(map(id, matrices)) and not set(in_sgd) & set(in_muon)
    assert sorted(in_sgd + in_muon) == sorted(map(id, model.parameters()))
    before = [p.detach().clone() for p in matrices]
    model(torch.randn(64, 1, 28, 28)).logsumexp(1).mean().backward()
    opt.step()
    sched.step()
    step = (matrices[2].detach() - before[2]).reshape(41, 41) / 0.01
    singular = torch.linalg.svdvals(step)
    # Newton-Schulz pulls every singular value of the momentum towards 1; the raw gradient's spread over decades
    assert singular.max() < 1.5 and (singular > 0.5).float().mean() > 0.9
    assert torch.linalg.svdvals(matrices[2].grad.reshape(41, 41)).log10().std() > 0.3
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert opt.param_groups[0] is sgd.param_groups[0]  # what fit logs as the lr: SGD's


def test_muon_without_pytorch_optimizer_names_the_extra(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pytorch_optimizer", None)
    with pytest.raises(ImportError, match=r"pip install -e \".\[search\]\""):
        optimizers.make_optimizer(Model_3(), recipes.check_hyperparameters(dict(optimizer="muon")), 10)
    optimizers.make_optimizer(Model_3(), recipes.check_hyperparameters({}), 10)  # SGD needs none of it


def test_the_one_cycle_can_end_early_at_a_floor_and_hold_it():
    """anneal_end/lr_floor: the anneal reaches lr_floor x peak after that fraction of the steps and stays there; the
    warm-up keeps its length in steps; the defaults are torch's OneCycleLR itself (the same floats)."""
    torch.manual_seed(0)
    model = Model_3()
    hp = recipes.check_hyperparameters(dict(epochs=15, anneal_end=13 / 15, lr_floor=0.02))
    lrs, momenta = device_step.schedule_table(model, hp, 10)
    plain, _ = device_step.schedule_table(model, recipes.check_hyperparameters(dict(epochs=15)), 10)
    assert lrs[:, 0].argmax() == plain[:, 0].argmax() == 29  # the peak at 20 % of 150 steps (OneCycleLR: 30 - 1)
    assert torch.allclose(lrs[130:, 0], torch.full((21,), 0.1 * 0.02, dtype=torch.float64))
    assert (lrs[31:130, 0].diff() < 0).all() and momenta[-1, 0] == momenta[129, 0]
    opt, sched = optimizers.make_optimizer(model, recipes.check_hyperparameters({}), 10)
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
    for bad in (dict(anneal_end=0.0), dict(lr_floor=1.0), dict(schedule="step", anneal_end=0.5)):
        with pytest.raises(ValueError, match="anneal_end"):
            recipes.check_hyperparameters(bad)


def test_bn_bias_lr_gives_batchnorm_s_shifts_their_own_groups_at_a_multiple_of_the_lr():
    torch.manual_seed(0)
    model = Model_3()
    hp = recipes.check_hyperparameters(dict(bn_bias_lr=4.0, no_decay="depthwise+batchnorm"))
    opt, _ = optimizers.make_optimizer(model, hp, 10)
    shifts = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    scaled = [g for g in opt.param_groups if g.get("lr_scale") == 4.0]
    assert {id(p) for g in scaled for p in g["params"]} == shifts and all(g["weight_decay"] == 0 for g in scaled)
    assert sorted(id(p) for g in opt.param_groups for p in g["params"]) == sorted(map(id, model.parameters()))
    lrs, _ = device_step.schedule_table(model, hp, 10)
    peaks = lrs.max(0).values.tolist()
    assert [peaks[i] for i, g in enumerate(opt.param_groups) if g.get("lr_scale")] == [pytest.approx(0.4)]
    assert len(optimizers.make_optimizer(model, recipes.check_hyperparameters({}), 10)[0].param_groups) == 1


def test_lookahead_pulls_the_weights_back_towards_a_slow_copy_every_k_steps():
    """lookahead=k: pytorch-optimizer's Lookahead (alpha 0.5) around the SGD; after k steps each weight is halfway
    between where k SGD steps took it and where it started; the schedule still steps the SGD."""
    torch.manual_seed(0)
    models = [Model_3(), Model_3()]
    models[1].load_state_dict(models[0].state_dict())
    x = torch.randn(16, 1, 28, 28)
    hp = recipes.check_hyperparameters(dict(schedule="constant", lr=0.05, lookahead=2))
    start = [p.detach().clone() for p in models[0].parameters()]
    opts = [optimizers.make_optimizer(models[0], hp, 10)[0],
            optimizers.make_optimizer(models[1], dict(hp, lookahead=0), 10)[0]]
    for _ in range(2):
        for model, opt in zip(models, opts):
            opt.zero_grad()
            model(x).logsumexp(1).mean().backward()
            opt.step()
    head = list(models[0].parameters())[-1]
    plain = list(models[1].parameters())[-1]
    assert torch.allclose(head, (start[-1] + plain) / 2, atol=1e-6)
