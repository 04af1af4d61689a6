"""The training loop: a run's engine set up once (`setup`), then one step (`train_step`), one epoch
(`train_epoch`), evaluation, and `fit`, which runs the epochs.

The whole dataset sits as tensors on the device: no DataLoader, no PIL, no per-sample Python. A batch is an index
slice, its augmentation one `grid_sample` over the whole batch (augmentation.py), and the host reads the device once
per epoch. The optimizer, its schedule and the EMA are optimizers.py's; the device step and CUDA graphs
device_step.py's; the recipe, recipes.py's.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .augmentation import augment
from .device_step import DeviceSGD, GraphedSteps, schedule_table
from .optimizers import EMA, Scheduled, make_ema, make_optimizer
from .recipes import check_hyperparameters

MEMORY_FORMATS = {False: torch.contiguous_format, True: torch.channels_last}  # hp["channels_last"] -> format
STEPS = ("eager", "device", "graph")  # how a training step runs (`setup`'s `step`)


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Batches in an epoch of `images`: the last one may be shorter (60,000 at 64: 937 full and one of 32)."""
    return -(-images // batch_size)


@dataclass
class Engine:
    """What a run trains with, made by `setup`: the model, its checked recipe, the run's own generator (every
    augmentation draw and shuffle), the steps of an epoch, the step's optimizer (`Scheduled`: the torch optimizer and
    its schedule, stepped together; or a `DeviceSGD`), the weight EMAs and `averages` (what follows the weights after
    each step: the EMAs, in that order), the device step's schedule table (`lrs`, on the host; None when eager) and
    its CUDA graphs (`graphed`; None unless step="graph")."""
    model: torch.nn.Module
    hp: dict
    generator: torch.Generator
    steps_per_epoch: int
    opt: Scheduled | DeviceSGD
    ema: EMA | None = None
    ema_also: EMA | None = None
    averages: list = field(default_factory=list)
    lrs: torch.Tensor | None = None
    graphed: GraphedSteps | None = None

    def lr(self, epoch: int) -> float:
        """The first parameter group's learning rate after `epoch` epochs (what `fit` logs)."""
        if self.lrs is None:
            return self.opt.param_groups[0]["lr"]
        return self.lrs[epoch * self.steps_per_epoch, 0].item()  # the host's own table


def setup(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, hp: dict, seed: int = 0,
          step: str | None = None) -> Engine:
    """A run's engine, for training `model` on (x, y) with the recipe `hp` (checked here): the one place where an
    optimizer, its schedule, the EMAs and the generator (seeded with `seed`) are made. The model goes to x's device
    in the recipe's memory format.

    `step` (STEPS; None: the environment's ERA_S7_STEP, else "eager"): "eager" is the torch optimizer and its
    schedule, today's floats; "device" the step with the schedule on the device (`DeviceSGD`), which reads nothing
    from the host; "graph" that step captured as CUDA graphs and replayed (`GraphedSteps`, CUDA and fp32 only)."""
    hp = check_hyperparameters(hp)
    step = step or os.environ.get("ERA_S7_STEP", "eager")
    if step not in STEPS:
        raise ValueError(f"step={step!r}; allowed: {', '.join(map(repr, STEPS))} (or ERA_S7_STEP unset)")
    model.to(x.device, memory_format=MEMORY_FORMATS[hp["channels_last"]])
    generator = torch.Generator(device=x.device).manual_seed(seed)
    steps = steps_per_epoch(len(x), hp["batch_size"])
    opt, sched = make_optimizer(model, hp, steps)
    ema, ema_also = make_ema(model, hp["ema"]), make_ema(model, hp["ema_also"])
    engine = Engine(model, hp, generator, steps, Scheduled(opt, sched), ema, ema_also,
                    [a for a in (ema, ema_also) if a is not None])
    if step != "eager":
        engine.lrs, momenta = schedule_table(model, hp, steps)
        engine.opt = DeviceSGD(opt, engine.lrs, momenta)
    if step == "graph":
        engine.graphed = GraphedSteps(train_step, model, x, y, hp, generator, engine.opt, engine.averages)
    return engine


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the softened predictions, (n, 10) logits each, times temperature**2 so that its
    gradients keep their scale as the temperature changes (Hinton, Vinyals & Dean, "Distilling the Knowledge in a
    Neural Network", 2015); mean over the batch."""
    return F.kl_div(F.log_softmax(logits / temperature, 1), F.log_softmax(teacher_logits / temperature, 1),
                    reduction="batchmean", log_target=True) * temperature ** 2


def train_step(model, x, y, idx, hp, generator, opt, sums, averages=(), teacher=None) -> None:
    """One training step on the batch (x[idx], y[idx]): augmentation (draws from `generator`), forward, loss,
    `opt.zero_grad()`, backward, `opt.step()` (the optimizer and its schedule), then each of `averages` (weight
    EMAs) follows the weights. Adds the batch's summed loss and count of correct predictions into `sums` (a float
    and a long 0-dim tensor on x's device). Reads nothing back to the host, so CUDA can capture it whole
    (`GraphedSteps`). `teacher`: see `train_epoch`."""
    xb, yb = augment(x[idx], hp["rotate_deg"], hp["translate"], generator, hp["elastic"]), y[idx]
    if hp["channels_last"]:
        xb = xb.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=hp["bf16"]):
        logits = model(xb)
    loss = F.cross_entropy(logits.float(), yb, label_smoothing=hp["label_smoothing"])
    if teacher is not None:
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=hp["bf16"]):
            teacher_logits = teacher(xb)
        loss = (1 - hp["distill"]) * loss + hp["distill"] * distillation_loss(
            logits.float(), teacher_logits.float(), hp["distill_temperature"])
    opt.zero_grad()
    loss.backward()
    opt.step()
    for average in averages:
        average.update_parameters(model)
    sums[0].add_(loss.detach() * len(idx))  # stays on the device: no host sync per step
    sums[1].add_((logits.argmax(1) == yb).sum())


def train_epoch(engine: Engine, x: torch.Tensor, y: torch.Tensor, teacher=None) -> tuple[float, float]:
    """One pass over (x, y) in shuffled batches; (mean loss, accuracy %) over the augmented batches, read from the
    device once, at the end. Each step steps `engine.opt` and then `engine.averages`. With a `teacher` (a model in
    eval mode: the EMA, for self-distillation as in Tarvainen & Valpola's "Mean teachers", NeurIPS 2017), the loss is
    (1 - distill) x the labels' + distill x `distillation_loss` towards its predictions. With `engine.graphed`, its
    captured steps replay instead."""
    engine.model.train()
    order = torch.randperm(len(x), generator=engine.generator, device=x.device)
    if engine.graphed is not None:
        sums = engine.graphed.run_epoch(order, teacher)
    else:
        bs = engine.hp["batch_size"]
        sums = (torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long))
        for i in range(0, len(x), bs):
            train_step(engine.model, x, y, order[i:i + bs], engine.hp, engine.generator, engine.opt, sums,
                       engine.averages, teacher)
    return sums[0].item() / len(x), 100.0 * sums[1].item() / len(x)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256, bf16: bool = False):
    """(mean loss, accuracy in percent) over (x, y)."""
    model.eval()
    loss, correct = torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x[i:i + batch_size])
        loss += F.cross_entropy(logits.float(), y[i:i + batch_size], reduction="sum")
        correct += (logits.argmax(1) == y[i:i + batch_size]).sum()
    return loss.item() / len(x), 100.0 * correct.item() / len(x)


@torch.inference_mode()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Class probabilities (n, 10) of the model as it is now."""
    model.eval()
    return torch.cat([F.softmax(model(x[i:i + batch_size]).float(), 1) for i in range(0, len(x), batch_size)])


def test_metrics(engine: Engine, x: torch.Tensor, y: torch.Tensor) -> dict:
    """test_loss/test_acc of what the run hands back (its EMA where it has one); beside an EMA, raw_test_loss/
    raw_test_acc of the trained weights themselves; with `ema_also`, ema_also_test_loss/ema_also_test_acc."""
    hp = engine.hp
    metrics = lambda m, prefix: dict(zip((f"{prefix}test_loss", f"{prefix}test_acc"),  # noqa: E731
                                         evaluate(m, x, y, hp["eval_batch_size"], hp["bf16"])))
    row = metrics(engine.model if engine.ema is None else engine.ema, "")
    if engine.ema is not None:
        row.update(metrics(engine.model, "raw_"))
    if engine.ema_also is not None:
        row.update(metrics(engine.ema_also, "ema_also_"))
    return row


def fit(model: torch.nn.Module, data: dict, hp: dict | None = None, seed: int = 0, log=print,
        step: str | None = None) -> list[dict]:
    """Train `model` on data['x_train'] for hp['epochs'], evaluating on the test set after every epoch.

    Returns the per-epoch history; prints one line per epoch. The schedule is fixed in advance and
    never sees test metrics. Same seed, machine and thread count on the CPU: the same history, bit for bit.
    With a weight EMA, test_loss/test_acc are the EMA's, and raw_test_loss/raw_test_acc those of the trained
    weights themselves: the EMA never feeds back into training, so these are, bit for bit, what the same run
    without the EMA would measure (`results.without_ema`); with `ema_also`, ema_also_test_loss/ema_also_test_acc
    those of the second EMA (`results.with_ema_also`). `step`: see `setup`."""
    hp = check_hyperparameters(hp or {})
    x_train, y_train = data["x_train"][:hp["train_subset"]], data["y_train"][:hp["train_subset"]]
    x_test, y_test = data["x_test"][:hp["test_subset"]], data["y_test"][:hp["test_subset"]]
    engine = setup(model, x_train, y_train, hp, seed, step)
    history = []
    for epoch in range(1, hp["epochs"] + 1):
        start = time.perf_counter()
        teacher = engine.ema.module.eval() if hp["distill"] and epoch > hp["distill_after"] else None
        train_loss, train_acc = train_epoch(engine, x_train, y_train, teacher)
        row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, **test_metrics(engine, x_test, y_test))
        history.append(dict(row, lr=engine.lr(epoch), seconds=time.perf_counter() - start))
        log(format_epoch(history[-1], hp["epochs"]))
    if engine.ema is not None:  # the model handed back is the one that was evaluated
        model.load_state_dict(engine.ema.module.state_dict())
    return history


def format_epoch(row: dict, epochs: int) -> str:
    """The one line per epoch that the notebooks print (and the tests parse)."""
    return (f"epoch {row['epoch']:>2}/{epochs}  lr {row['lr']:.5f}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2f}%  "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:6.2f}%  {row['seconds']:5.1f}s")
