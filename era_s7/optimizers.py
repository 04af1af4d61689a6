"""The optimizer, its schedules and the weight EMA: `make_optimizer` (the optimizer of hp["optimizer"], its parameter
groups and the schedule of hp["schedule"]) and `make_ema`, which `training.setup` calls for every run."""
from __future__ import annotations

import torch


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

    @property
    def param_groups(self) -> list[dict]:
        return self.opt.param_groups


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
