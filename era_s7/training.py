"""The training engine: the whole dataset as tensors on the device, batched augmentation, one `fit` call.

No DataLoader, no PIL, no per-sample Python: a batch is an index slice, its augmentation one
`affine_grid`/`grid_sample` over the whole batch, and the host reads the device once per epoch.
"""
from __future__ import annotations

import math
import os
import time

import torch
import torch.nn.functional as F

from .data import MNIST_MEAN, MNIST_STD
from .machine import native_bf16

# One explicit dict: every run records the values it used (results/<name>.json).
HYPERPARAMETERS = dict(
    epochs=15,
    batch_size=128,
    optimizer="sgd",        # "sgd" (Nesterov momentum), "adam", or "muon" (Muon on the conv matrices, SGD on the rest)
    lr=0.1,                 # peak learning rate of the schedule
    momentum=0.9,
    bn_bias_lr=1.0,         # learning-rate multiplier of BatchNorm's shifts (biases), on the same schedule (1: off)
    lookahead=0,            # Lookahead (Zhang et al., 2019): every k steps the weights move halfway to a slow copy
                            # (k; 0: off; pytorch-optimizer's `Lookahead`, alpha 0.5)
    muon_lr=0.02,           # muon: peak learning rate of the Muon part, on the same schedule (Jordan et al.'s 0.02)
    weight_decay=5e-4,
    schedule="onecycle",    # "onecycle", "step" or "constant"; never reads test metrics
    pct_start=0.2,          # onecycle: fraction of steps spent warming up
    anneal_end=1.0,         # onecycle: fraction of the run at whose end the anneal reaches its floor, then held
                            # (1.0: the run's end, torch's OneCycleLR as it is)
    lr_floor=0.0,           # onecycle: the anneal's final lr as a fraction of the peak (0: OneCycleLR's own, 1.6e-6)
    step_size=6, gamma=0.1,  # step schedule: multiply lr by gamma every step_size epochs
    rotate_deg=10.0,        # augmentation: uniform rotation in [-rotate_deg, rotate_deg]
    translate=0.1,          # augmentation: uniform shift in [-translate, translate] of the image size
    elastic=0.0,            # augmentation: smooth random displacement of up to `elastic` pixels (0: off)
    label_smoothing=0.0,
    ema=0.0,                # decay of an exponential moving average of the weights (0: off); the EMA is evaluated
    ema_also=0.0,           # a second EMA decay followed beside `ema` and evaluated each epoch (0: off); it never
                            # feeds back, so one run also yields the run with ema=ema_also (`with_ema_also`)
    distill=0.0,            # self-distillation from the weight EMA: weight of the KL term towards the EMA's softened
                            # predictions (0: off; needs `ema`); the labels' loss gets 1 - distill
    distill_after=3,        # epochs trained before the EMA teaches (it must first have forgotten the initial weights)
    distill_temperature=2.0,  # the softmax temperature of both sides of the KL term (Hinton et al., 2015)
    no_decay="",            # parameters without weight decay: "" (none), "batchnorm", "depthwise" or both,
                            # "depthwise+batchnorm" (MobileNet's practice for filters of 9 weights, and BN's)
    bf16=False,             # bf16 autocast; pays where the hardware has bf16 units (research log: measure)
    channels_last=False,    # NHWC memory format for the model and its inputs; pays with bf16 on such CPUs
    eval_batch_size=256,    # evaluation's batch: 3x faster than 2000 on one CPU thread, whose cache 2000 images' maps
                            # overflow (10k test images, Model_3 in bf16: 0.58 s against 1.88 s, AMD EPYC)
    train_subset=None,      # int: train on the first n images (smoke tests)
    test_subset=None,
)
# A run's precision -> its hyperparameter overrides. bf16 (autocast + channels_last) trained Model_3 1.5x and the
# depthwise-separable plan 3.4x faster on a 2-core AMD EPYC with avx512_bf16, 2.2x on an Intel Xeon with AMX,
# and 2.5x slower on an AMD EPYC without bf16 units: `make bench` measures it on the machine at hand.
PRECISIONS = {"fp32": {}, "bf16": {"bf16": True, "channels_last": True}}


def resolve_precision(precision: str, device: torch.device) -> str:
    """A run's precision (a key of PRECISIONS) from a notebook's `precision` parameter: "auto" is bf16 on a CPU
    with native bf16 units (native_bf16), fp32 elsewhere (GPUs included); "fp32" and "bf16" are taken as given.
    ValueError for anything else."""
    if precision == "auto":
        return "bf16" if torch.device(device).type == "cpu" and native_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; allowed: 'auto', {', '.join(map(repr, PRECISIONS))}")
    return precision


MEMORY_FORMATS = {False: torch.contiguous_format, True: torch.channels_last}  # hp["channels_last"] -> format
OPTIMIZERS = ("sgd", "adam", "muon")
SCHEDULES = ("onecycle", "step", "constant")
BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # the normalised value of a black pixel


def check_hyperparameters(hp: dict) -> dict:
    """The full dict (defaults filled in), or ValueError naming the bad parameter and what is allowed."""
    unknown = set(hp) - set(HYPERPARAMETERS)
    if unknown:
        raise ValueError(f"unknown hyperparameters {sorted(unknown)}; allowed: {sorted(HYPERPARAMETERS)}")
    hp = {**HYPERPARAMETERS, **hp}
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if not isinstance(hp[key], int) or hp[key] <= 0:
            raise ValueError(f"{key}={hp[key]!r} must be a positive integer")
    if not hp["lr"] > 0 or not hp["muon_lr"] > 0:
        raise ValueError(f"lr={hp['lr']!r} and muon_lr={hp['muon_lr']!r} must be > 0")
    if hp["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"optimizer={hp['optimizer']!r}; allowed: {OPTIMIZERS}")
    if hp["schedule"] not in SCHEDULES:
        raise ValueError(f"schedule={hp['schedule']!r}; allowed: {SCHEDULES}")
    if hp["rotate_deg"] < 0 or not 0 <= hp["translate"] < 1 or hp["elastic"] < 0:
        raise ValueError("rotate_deg and elastic must be >= 0 and translate in [0, 1)")
    if not 0 <= hp["ema"] < 1 or not 0 <= hp["ema_also"] < 1:
        raise ValueError(f"ema={hp['ema']!r} and ema_also={hp['ema_also']!r} must be in [0, 1) (0 turns it off)")
    if not 0 < hp["anneal_end"] <= 1 or not 0 <= hp["lr_floor"] < 1:
        raise ValueError(f"anneal_end={hp['anneal_end']!r} must be in (0, 1] and lr_floor={hp['lr_floor']!r} in [0, 1)")
    if (hp["anneal_end"] < 1 or hp["lr_floor"]) and hp["schedule"] != "onecycle":
        raise ValueError("anneal_end and lr_floor shape the one-cycle schedule: set schedule='onecycle'")
    if not hp["bn_bias_lr"] > 0 or not isinstance(hp["lookahead"], int) or hp["lookahead"] < 0:
        raise ValueError(f"bn_bias_lr={hp['bn_bias_lr']!r} must be > 0 and lookahead={hp['lookahead']!r} a whole "
                         "number of steps >= 0 (0: off)")
    if hp["ema_also"] and not hp["ema"]:
        raise ValueError("ema_also is a second EMA beside `ema`: set ema too")
    if not 0 <= hp["distill"] < 1 or (hp["distill"] and not hp["ema"]):
        raise ValueError(f"distill={hp['distill']!r} must be in [0, 1), and needs a weight EMA (ema > 0) to learn from")
    if not hp["distill_temperature"] > 0 or not isinstance(hp["distill_after"], int) or hp["distill_after"] < 0:
        raise ValueError("distill_temperature must be > 0 and distill_after a whole number of epochs >= 0")
    bad = set(filter(None, hp["no_decay"].split("+"))) - set(NO_DECAY)
    if bad:
        raise ValueError(f"no_decay={hp['no_decay']!r}: {sorted(bad)} unknown; allowed: '', {', '.join(NO_DECAY)} "
                         "joined by '+' (e.g. 'depthwise+batchnorm')")
    return hp


def augment(x: torch.Tensor, rotate_deg: float, translate: float, generator: torch.Generator | None = None,
            elastic: float = 0.0) -> torch.Tensor:
    """Random rotation and translation, and optionally an elastic distortion, drawn per sample and applied
    to the whole batch in one `grid_sample`.

    The elastic field (Simard et al., 2003) is uniform noise on a coarse 4x4 grid of control points, upsampled
    to the image: smooth displacements of up to `elastic` pixels that bend strokes the way pens do.
    Areas moved in from outside the image are black (the normalised background), as in torchvision."""
    if rotate_deg == 0 and translate == 0 and elastic == 0:
        return x
    n, _, h, w = x.shape
    draw = torch.rand(n, 3, generator=generator, device=x.device, dtype=torch.float32) * 2 - 1
    angle = draw[:, 0] * math.radians(rotate_deg)
    shift = draw[:, 1:] * (2 * translate)  # affine_grid coordinates span [-1, 1]: 2 units per image
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if elastic:
        coarse = torch.rand(n, 2, 4, 4, generator=generator, device=x.device, dtype=torch.float32) * 2 - 1
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).clamp_(-1, 1)
        grid = grid + (field * (2 * elastic / torch.tensor([w, h], device=x.device).view(1, 2, 1, 1))
                       ).permute(0, 2, 3, 1).to(x.dtype)
    return F.grid_sample(x - BACKGROUND, grid, align_corners=False) + BACKGROUND


NO_DECAY = ("batchnorm", "depthwise")


def decay_groups(model: torch.nn.Module, no_decay: str, weight_decay: float) -> list[dict]:
    """The optimizer's parameter groups: the parameters `no_decay` names ("batchnorm": BatchNorm's scale and
    shift; "depthwise": the weights of convs with one filter per channel, groups == in_channels > 1; joined by
    '+') with weight decay 0, the rest with `weight_decay`. One group, in the model's order, when none is named:
    then the optimizer is the plain one, bit for bit."""
    kinds = set(filter(None, no_decay.split("+")))
    if not kinds:
        return [dict(params=list(model.parameters()), weight_decay=weight_decay)]
    exempt = set()
    for module in model.modules():
        if "batchnorm" in kinds and isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            exempt.update(map(id, module.parameters(recurse=False)))
        if ("depthwise" in kinds and isinstance(module, torch.nn.Conv2d) and module.groups > 1
                and module.groups == module.in_channels):
            exempt.add(id(module.weight))
    params = list(model.parameters())
    return [dict(params=[p for p in params if id(p) not in exempt], weight_decay=weight_decay),
            dict(params=[p for p in params if id(p) in exempt], weight_decay=0.0)]


def muon_matrices(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The weights Muon trains in `optimizer="muon"`: those of every conv that mixes channels (groups == 1: the
    full 3x3 stem and the pointwise 1x1s), each viewed as a (out, in x k x k) matrix, but the last conv's (the
    classifier, which Muon's authors leave to the other optimizer, as they do the depthwise filters and BN)."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return [m.weight for m in convs[:-1] if m.groups == 1]


class Stepped(list):
    """Optimizers, or their schedulers, stepped as one: `step` and `zero_grad` call each in turn, and
    `param_groups` lists all of theirs in order (the first optimizer's first group is the one `fit` logs)."""

    def step(self) -> None:
        for item in self:
            item.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for item in self:
            item.zero_grad(set_to_none=set_to_none)

    @property
    def param_groups(self) -> list[dict]:
        return [group for item in self for group in item.param_groups]


class Held:
    """A schedule stepped for its first `steps` steps, then held where it ended (learning rate and momentum):
    the one-cycle anneal that ends before the run does (hp["anneal_end"] < 1)."""

    def __init__(self, sched, steps: int):
        self.sched, self.steps = sched, steps

    def step(self) -> None:
        if self.sched.last_epoch < self.steps - 1:
            self.sched.step()


def make_schedule(opt: torch.optim.Optimizer, hp: dict, steps_per_epoch: int, max_lr: float,
                  cycle_momentum: bool = True):
    """The schedule of hp["schedule"], stepped once per batch. Each of `opt`'s groups peaks at `max_lr` times its
    "lr_scale" (1 where it has none). "onecycle" is torch's OneCycleLR; with hp["anneal_end"] < 1 or hp["lr_floor"]
    its cycle ends after that fraction of the run's steps, at lr_floor x peak (the warm-up keeps its length in steps),
    and holds there (`Held`)."""
    scales = [g.get("lr_scale", 1.0) for g in opt.param_groups]
    peak = max_lr if all(s == 1.0 for s in scales) else [max_lr * s for s in scales]
    if hp["schedule"] == "onecycle":
        total = hp["epochs"] * steps_per_epoch
        if hp["anneal_end"] == 1.0 and not hp["lr_floor"]:
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, epochs=hp["epochs"],
                                                       steps_per_epoch=steps_per_epoch, pct_start=hp["pct_start"],
                                                       cycle_momentum=cycle_momentum)
        cycle = max(2, round(hp["anneal_end"] * total))
        div = 25.0  # OneCycleLR's div_factor: the warm-up starts at peak / 25
        final_div = 1 / (div * hp["lr_floor"]) if hp["lr_floor"] else 1e4
        return Held(torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=cycle, div_factor=div,
                                                        final_div_factor=final_div,
                                                        pct_start=min(hp["pct_start"] * total / cycle, 1.0),
                                                        cycle_momentum=cycle_momentum), cycle)
    for group, scale in zip(opt.param_groups, scales):
        group["lr"] = max_lr * scale
    if hp["schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=hp["step_size"] * steps_per_epoch, gamma=hp["gamma"])
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def bn_bias_groups(model: torch.nn.Module, groups: list[dict], scale: float) -> list[dict]:
    """`groups` with BatchNorm's shifts (biases) moved into groups of their own, each beside the group it came from
    and with its weight decay, at `scale` x the learning rate ("lr_scale", which `make_schedule` reads); unchanged
    when scale is 1."""
    if scale == 1.0:
        return groups
    shifts = {id(m.bias) for m in model.modules()
              if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.bias is not None}
    out = []
    for group in groups:
        out.append(dict(group, params=[p for p in group["params"] if id(p) not in shifts]))
        moved = [p for p in group["params"] if id(p) in shifts]
        if moved:
            out.append(dict(group, params=moved, lr_scale=scale))
    return out


def search_optimizer(name: str, asked_by: str):
    """pytorch-optimizer's class `name` (the search's optimizers beyond torch's; the `search` extra), or ImportError
    naming the install."""
    try:
        import pytorch_optimizer
    except ImportError:
        raise ImportError(f'{asked_by} needs pytorch-optimizer: pip install -e ".[search]"') from None
    return getattr(pytorch_optimizer, name)


def make_optimizer(model: torch.nn.Module, hp: dict, steps_per_epoch: int):
    """(optimizer, scheduler) of hp["optimizer"] and hp["schedule"], both stepped once per batch. BatchNorm's shifts
    train at hp["bn_bias_lr"] x the learning rate (`bn_bias_groups`); hp["lookahead"] wraps the SGD in Lookahead.

    "muon": Muon (Jordan et al., "Muon: an optimizer for hidden layers in neural networks", 2024;
    pytorch-optimizer's `Muon`: Nesterov momentum 0.95, 5 Newton-Schulz steps orthogonalising each update, decoupled
    weight decay) on `muon_matrices` at peak `muon_lr`, and Nesterov SGD on the rest at peak `lr`, each on its own
    copy of the schedule (Muon's momentum is not cycled); `Stepped` holds the pair."""
    groups = bn_bias_groups(model, decay_groups(model, hp["no_decay"], hp["weight_decay"]), hp["bn_bias_lr"])
    if hp["optimizer"] == "adam":
        opt = torch.optim.Adam(groups, lr=hp["lr"])
        return opt, make_schedule(opt, hp, steps_per_epoch, hp["lr"])
    matrices = muon_matrices(model) if hp["optimizer"] == "muon" else []
    chosen = set(map(id, matrices))
    groups = [dict(group, params=[p for p in group["params"] if id(p) not in chosen]) for group in groups]
    opt = torch.optim.SGD(groups, lr=hp["lr"], momentum=hp["momentum"], nesterov=True)
    sched = make_schedule(opt, hp, steps_per_epoch, hp["lr"])
    if hp["lookahead"]:
        if matrices:
            raise ValueError("lookahead wraps the SGD optimizer: it is not combined with optimizer='muon'")
        # the schedule steps the SGD inside, whose step Lookahead's calls
        return search_optimizer("Lookahead", "lookahead")(opt, k=hp["lookahead"], alpha=0.5), sched
    if not matrices:
        return opt, sched
    muon = search_optimizer("Muon", 'optimizer="muon"')([dict(params=matrices, use_muon=True)], lr=hp["muon_lr"],
                                                         weight_decay=hp["weight_decay"])
    return (Stepped([opt, muon]),
            Stepped([sched, make_schedule(muon, hp, steps_per_epoch, hp["muon_lr"], cycle_momentum=False)]))


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


class Scheduled:
    """A torch optimizer and its schedule as the one `opt` that `train_step` steps: `step` steps both (the
    schedule's learning rate is a Python float, so the step reads nothing from the device), `zero_grad` sets the
    gradients to None. The eager step's optimizer: today's arithmetic, bit for bit."""

    def __init__(self, opt, sched):
        self.opt, self.sched = opt, sched

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.opt.step()
        self.sched.step()


def train_epoch(model, x, y, opt, sched, hp, generator, ema=None, ema_also=None, teacher=None, graphed=None):
    """One pass over (x, y) in shuffled batches; (mean loss, accuracy %) over the augmented batches, read from the
    device once, at the end. `opt`, `sched`: a torch optimizer and its schedule (the eager step), or a
    `DeviceSGD` and None (its schedule is on the device). `ema` (an `EMA`) follows the weights after every step,
    and so does `ema_also` (a second one). With a `teacher` (a model in eval mode: the EMA, for self-distillation as
    in Tarvainen & Valpola's "Mean teachers", NeurIPS 2017), the loss is (1 - distill) x the labels' + distill x
    `distillation_loss` towards its predictions. `graphed` (a `GraphedSteps`): its captured steps replay instead."""
    model.train()
    order = torch.randperm(len(x), generator=generator, device=x.device)
    step_opt = opt if sched is None else Scheduled(opt, sched)
    averages = [a for a in (ema, ema_also) if a is not None]
    if graphed is not None:
        sums = graphed.run_epoch(order, teacher)
    else:
        sums = (torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long))
        for i in range(0, len(x), hp["batch_size"]):
            train_step(model, x, y, order[i:i + hp["batch_size"]], hp, generator, step_opt, sums, averages, teacher)
    return sums[0].item() / len(x), 100.0 * sums[1].item() / len(x)


STEPS = ("eager", "device", "graph")  # how fit runs a training step (`fit`'s `step`)


def schedule_table(model: torch.nn.Module, hp: dict, steps_per_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, momentum), each (epochs x steps_per_epoch + 1, param groups) float64: the values the schedule gives each
    of the optimizer's groups at every step, computed on the host by the torch schedule itself (make_optimizer's,
    on a copy of the model, so these are its Python floats exactly); row k is what step k reads."""
    import copy
    import warnings

    opt, sched = make_optimizer(copy.deepcopy(model).cpu(), hp, steps_per_epoch)
    if not isinstance(opt, torch.optim.SGD):
        raise ValueError(f"optimizer={hp['optimizer']!r}, lookahead={hp['lookahead']!r}: the step with its schedule on "
                         "the device supports plain 'sgd' only; train with step='eager'")
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": nothing is trained here
        for k in range(hp["epochs"] * steps_per_epoch + 1):
            rows.append([(g["lr"], g["momentum"]) for g in opt.param_groups])
            if k < hp["epochs"] * steps_per_epoch:
                sched.step()
    table = torch.tensor(rows, dtype=torch.float64)
    return table[..., 0].contiguous(), table[..., 1].contiguous()


WARMUP_STEPS = 3  # steps run (and undone) before each capture of GraphedSteps


class DeviceSGD:
    """Nesterov SGD (torch.optim.SGD's update: weight decay, momentum without dampening, Nesterov) whose learning
    rate and momentum are device tensors: rows of `schedule_table`, indexed by a step counter on the device, so
    that a step reads nothing from the host and a captured CUDA graph replays the schedule. Momentum buffers start
    at zero, which gives torch's first step (buffer = gradient) exactly; `zero_grad` zeroes the gradients in place
    (a graph keeps their memory). The same update as torch's to rounding: torch multiplies-adds with a Python
    float in one rounding where this multiplies by a tensor and then adds (1 ulp per op; measured in
    docs/research-log.md), so its runs are a condition of their own, not today's floats."""

    def __init__(self, opt: torch.optim.SGD, lr: torch.Tensor, momentum: torch.Tensor):
        device = opt.param_groups[0]["params"][0].device
        self.groups = [dict(params=list(g["params"]), weight_decay=g["weight_decay"]) for g in opt.param_groups]
        if any(g["dampening"] or not g["nesterov"] or g["maximize"] for g in opt.param_groups):
            raise ValueError("DeviceSGD implements Nesterov SGD without dampening (make_optimizer's)")
        pad = lambda t: torch.cat([t, t[-1:].expand(WARMUP_STEPS, -1)]).to(device)  # noqa: E731
        self.lr, self.momentum = pad(lr), pad(momentum)  # a capture's warm-up may step past the end (undone)
        self.count = torch.zeros(1, dtype=torch.long, device=device)  # steps taken: the row of the tables
        self.buffers = [[torch.zeros_like(p) for p in g["params"]] for g in self.groups]

    @property
    def param_groups(self) -> list[dict]:
        return self.groups

    def zero_grad(self) -> None:
        grads = [p.grad for g in self.groups for p in g["params"] if p.grad is not None]
        if grads:
            torch._foreach_zero_(grads)

    @torch.no_grad()
    def step(self) -> None:
        lrs = self.lr.index_select(0, self.count)[0].float()
        momenta = self.momentum.index_select(0, self.count)[0].float()
        for k, (group, bufs) in enumerate(zip(self.groups, self.buffers)):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            bufs = [b for p, b in zip(group["params"], bufs) if p.grad is not None]
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            torch._foreach_mul_(bufs, momenta[k])
            torch._foreach_add_(bufs, grads)
            grads = torch._foreach_add(grads, torch._foreach_mul(bufs, momenta[k]))  # Nesterov
            torch._foreach_add_(params, torch._foreach_mul(grads, -lrs[k]))
        self.count.add_(1)

    def state(self) -> list[torch.Tensor]:
        """The tensors a step changes (besides the parameters): momentum buffers and the step counter."""
        return [b for bufs in self.buffers for b in bufs] + [self.count]


class GraphedSteps:
    """`train_step` captured once per batch size (an epoch's last batch may be shorter: 60,000 = 937 x 64 + 32)
    and teacher, as CUDA graphs (torch.cuda.graphs), then replayed: a step launches one graph instead of hundreds
    of kernels. The augmentation draws from the run's own generator, registered with each graph, so the seed still
    fixes the run. Warm-up steps run on a side stream with a scratch generator, and every tensor they change is
    restored afterwards, so capturing changes no weight and no draw. `opt` must be a `DeviceSGD`."""

    device_type = "cuda"  # where graphs are captured (a test's subclass replays eagerly on the CPU)

    def __init__(self, model, x, y, hp, generator, opt: DeviceSGD, averages=()):
        if x.device.type != self.device_type:
            raise ValueError(f"step='graph' captures CUDA graphs; the data are on {x.device}: use step='eager'")
        if hp["bf16"]:
            raise ValueError("step='graph' is fp32 only (bf16 autocast caches casts, which a graph cannot; on the "
                             "GPU measured, bf16 was slower anyway): use precision fp32, or step='eager'")
        if hp["elastic"]:
            raise ValueError("step='graph' does not capture the elastic augmentation (it builds a tensor from host "
                             "values each step): use step='eager' or 'device'")
        self.model, self.x, self.y, self.hp, self.generator, self.opt = model, x, y, hp, generator, opt
        self.averages = list(averages)
        self.sums = (torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long))
        self.graphs, self.idx, self.pool = {}, {}, None

    def state(self) -> list[torch.Tensor]:
        """Every tensor a step writes that outlives it."""
        modules = [self.model, *self.averages]
        return ([t for m in modules for t in (*m.parameters(), *m.buffers())] + self.opt.state() + list(self.sums))

    def capture(self, n: int, teacher) -> None:
        """The step of batch size n (and `teacher`) recorded for replay; every tensor the warm-up changed, and the
        run's generator, restored."""
        idx = self.idx[n] = self.idx.get(n, torch.arange(n, device=self.x.device))
        saved = [t.detach().clone() for t in self.state()]
        draws = self.generator.get_state()
        scratch = torch.Generator(device=self.x.device).manual_seed(0)
        run = lambda g: train_step(self.model, self.x, self.y, idx, self.hp, g, self.opt, self.sums,  # noqa: E731
                                   self.averages, teacher)
        self.graphs[(n, teacher is not None)] = self.record(run, scratch)
        with torch.no_grad():
            for t, value in zip(self.state(), saved):
                t.copy_(value)
        if not torch.equal(self.generator.get_state(), draws):
            self.generator.set_state(draws)

    def record(self, run, scratch):
        """Warm-up steps on a side stream (`run(scratch)`: cuDNN's choices, the gradients' memory, lazy
        initialisation), then `run(self.generator)` captured as a CUDA graph sharing one memory pool with the
        others; returns its replay."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                run(scratch)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(self.generator)  # each replay advances the run's own generator
        with torch.cuda.graph(graph, pool=self.pool):
            run(self.generator)
        self.pool = self.pool or graph.pool()
        return graph.replay

    def run_epoch(self, order: torch.Tensor, teacher=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Replays one step per batch of `order` (shuffled indices, on the device); the epoch's (loss sum, correct)."""
        bs = self.hp["batch_size"]
        for t in self.sums:
            t.zero_()
        for i in range(0, len(order), bs):
            n = min(bs, len(order) - i)
            if (n, teacher is not None) not in self.graphs:
                self.capture(n, teacher)
            self.idx[n].copy_(order[i:i + n])
            self.graphs[(n, teacher is not None)]()
        return tuple(t.clone() for t in self.sums)


def fit(model: torch.nn.Module, data: dict, hp: dict | None = None, seed: int = 0, log=print,
        step: str | None = None) -> list[dict]:
    """Train `model` on data['x_train'] for hp['epochs'], evaluating on the test set after every epoch.

    Returns the per-epoch history; prints one line per epoch. The schedule is fixed in advance and
    never sees test metrics. Same seed, machine and thread count on the CPU: the same history, bit for bit.
    With a weight EMA, test_loss/test_acc are the EMA's, and raw_test_loss/raw_test_acc those of the trained
    weights themselves: the EMA never feeds back into training, so these are, bit for bit, what the same run
    without the EMA would measure (`without_ema`); with `ema_also`, ema_also_test_loss/ema_also_test_acc those of the
    second EMA (`with_ema_also`).

    `step` (STEPS; None: the environment's ERA_S7_STEP, else "eager"): "eager" is the torch optimizer and its
    schedule, today's floats; "device" the step with the schedule on the device (`DeviceSGD`), which reads nothing
    from the host; "graph" that step captured as CUDA graphs and replayed (`GraphedSteps`, CUDA and fp32 only)."""
    hp = check_hyperparameters(hp or {})
    step = step or os.environ.get("ERA_S7_STEP", "eager")
    if step not in STEPS:
        raise ValueError(f"step={step!r}; allowed: {', '.join(map(repr, STEPS))} (or ERA_S7_STEP unset)")
    x_train, y_train = data["x_train"][:hp["train_subset"]], data["y_train"][:hp["train_subset"]]
    x_test, y_test = data["x_test"][:hp["test_subset"]], data["y_test"][:hp["test_subset"]]
    model.to(x_train.device, memory_format=MEMORY_FORMATS[hp["channels_last"]])
    generator = torch.Generator(device=x_train.device).manual_seed(seed)
    steps = math.ceil(len(x_train) / hp["batch_size"])
    opt, sched = make_optimizer(model, hp, steps)
    ema, ema_also = make_ema(model, hp["ema"]), make_ema(model, hp["ema_also"])
    graphed, lrs = None, None
    if step != "eager":
        lrs, momenta = schedule_table(model, hp, steps)
        opt, sched = DeviceSGD(opt, lrs, momenta), None
        if step == "graph":
            graphed = GraphedSteps(model, x_train, y_train, hp, generator, opt, [a for a in (ema, ema_also) if a])
    history = []
    for epoch in range(1, hp["epochs"] + 1):
        start = time.perf_counter()
        teacher = ema.module.eval() if hp["distill"] and epoch > hp["distill_after"] else None  # the EMA teaches
        train_loss, train_acc = train_epoch(model, x_train, y_train, opt, sched, hp, generator, ema, ema_also, teacher,
                                            graphed)
        test_loss, test_acc = evaluate(model if ema is None else ema, x_test, y_test, hp["eval_batch_size"], hp["bf16"])
        row = dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc)
        if ema is not None:
            row["raw_test_loss"], row["raw_test_acc"] = evaluate(model, x_test, y_test, hp["eval_batch_size"], hp["bf16"])
        if ema_also is not None:
            row["ema_also_test_loss"], row["ema_also_test_acc"] = evaluate(ema_also, x_test, y_test,
                                                                           hp["eval_batch_size"], hp["bf16"])
        lr = opt.param_groups[0]["lr"] if lrs is None else lrs[epoch * steps, 0].item()  # the host's own table
        row.update(lr=lr, seconds=time.perf_counter() - start)
        history.append(row)
        log(format_epoch(row, hp["epochs"]))
    if ema is not None:  # the model handed back is the one that was evaluated
        model.load_state_dict(ema.module.state_dict())
    return history


def without_ema(run: dict, name: str | None = None) -> dict:
    """The run record of the same training without its weight EMA, read from the run itself: its history's test
    metrics become the trained weights' own (raw_test_loss/raw_test_acc, which `fit` records beside the EMA's),
    its hyperparameters get ema=0, and `derived_from` names the run. Since the EMA never changes the trajectory,
    this is the run an ema=0 training with the same seed would make, at no training cost (total_seconds 0).
    ValueError if the run has no EMA or did not record its raw weights' accuracy (records made before fit did)."""
    if not run["hyperparameters"].get("ema"):
        raise ValueError(f"run {run['name']!r} trained without a weight EMA: there is nothing to remove")
    if not all("raw_test_acc" in row for row in run["history"]):
        raise ValueError(f"run {run['name']!r} did not record its raw weights' test accuracy (made before fit did); "
                         "train it again, or train the variant without the EMA itself")
    history = [{k: v for k, v in dict(row, test_loss=row["raw_test_loss"], test_acc=row["raw_test_acc"]).items()
                if not k.startswith("raw_")} for row in run["history"]]
    return dict(run, name=name or f"{run['name']} without EMA", history=history, total_seconds=0.0,
                hyperparameters={**run["hyperparameters"], "ema": 0.0}, derived_from=run["name"])


def with_ema_also(run: dict, name: str | None = None) -> dict:
    """The run record of the same training with its weight EMA's decay set to the run's `ema_also`, read from the
    run itself (like `without_ema`: the EMAs never change the trajectory, so this is, bit for bit, what an
    ema=ema_also training with the same seed would measure, at no training cost). ValueError if the run followed no
    second EMA."""
    decay = run["hyperparameters"].get("ema_also")
    if not decay:
        raise ValueError(f"run {run['name']!r} followed no second EMA (ema_also): there is nothing to read")
    history = [{k: v for k, v in dict(row, test_loss=row["ema_also_test_loss"], test_acc=row["ema_also_test_acc"]
                                      ).items() if not k.startswith("ema_also_")} for row in run["history"]]
    return dict(run, name=name or f"{run['name']} with EMA {decay}", history=history, total_seconds=0.0,
                hyperparameters={**run["hyperparameters"], "ema": decay, "ema_also": 0.0}, derived_from=run["name"])


def ema_decay(decay: float, updates: int) -> float:
    """The EMA's decay after `updates` updates, with the standard warm-up min(decay, (1 + n) / (10 + n))
    (TensorFlow's `ExponentialMovingAverage(num_updates=...)`): the average forgets the random initial
    weights within the first hundred steps instead of holding them for thousands (at 0.998, ~500 steps)."""
    return min(decay, (1 + updates) / (10 + updates))


class EMA(torch.optim.swa_utils.AveragedModel):
    """An exponential moving average of the weights and BatchNorm statistics (use_buffers) with the warm-up of
    `ema_decay`, computed on the device: torch's `get_ema_multi_avg_fn` with that decay, bit for bit (the same
    float64 decay, rounded to float32 as a Python float is; lerp's formula, tested equal), but without its host reads
    (`int(updates)`, `n_averaged == 0`), so a step that updates it waits for nothing and a CUDA graph can hold it.
    The first update copies the weights (lerp with weight 1, exactly), as AveragedModel's does."""

    def __init__(self, model: torch.nn.Module, decay: float):
        super().__init__(model, use_buffers=True)
        self.decay, self.pairs = decay, None

    @torch.no_grad()
    def update_parameters(self, model: torch.nn.Module) -> None:
        if self.pairs is None or self.pairs[0] is not model:
            pairs = [(a.detach(), m.detach()) for a, m in zip((*self.module.parameters(), *self.module.buffers()),
                                                              (*model.parameters(), *model.buffers()), strict=True)]
            self.pairs = (model, [p for p in pairs if p[0].is_floating_point()],
                          [p for p in pairs if not p[0].is_floating_point()])
        _, floats, integers = self.pairs
        n = self.n_averaged
        decay = torch.where(n == 0, 0.0, ((n + 1).double() / (n + 10).double()).clamp(max=self.decay))  # ema_decay
        weight = 1 - decay
        weight32 = weight.float()
        for a, m in floats:  # lerp_ with a tensor weight: _foreach_lerp_ would read it to the host (a Scalar)
            a.lerp_(m, weight32)
        for a, m in integers:  # BatchNorm's num_batches_tracked: torch's formula, float32 as with Python floats
            a.copy_(a * decay.float() + m * weight.float())
        n.add_(1)


def make_ema(model: torch.nn.Module, decay: float):
    """An `EMA` of the model with `decay`, or None when decay is 0."""
    return EMA(model, decay) if decay else None


def format_epoch(row: dict, epochs: int) -> str:
    """The one line per epoch that the notebooks print (and the tests parse)."""
    return (f"epoch {row['epoch']:>2}/{epochs}  lr {row['lr']:.5f}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2f}%  "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:6.2f}%  {row['seconds']:5.1f}s")
