"""The device step: Nesterov SGD whose schedule lives on the device (`DeviceSGD`, from `schedule_table`), so that a
step reads nothing from the host, and that step captured as CUDA graphs and replayed (`GraphedSteps`)."""
from __future__ import annotations

import copy
import warnings

import torch

from .optimizers import make_optimizer


def schedule_table(model: torch.nn.Module, hp: dict, steps_per_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(lr, momentum), each (epochs x steps_per_epoch + 1, param groups) float64: the values the schedule gives each
    of the optimizer's groups at every step, computed on the host by the torch schedule itself (make_optimizer's,
    on a copy of the model, so these are its Python floats exactly); row k is what step k reads."""
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
    """`step` (training.train_step, which `training.setup` passes in) captured once per batch size (an epoch's last
    batch may be shorter: 60,000 = 937 x 64 + 32) and teacher, as CUDA graphs (torch.cuda.graphs), then replayed: a
    step launches one graph instead of hundreds of kernels. The augmentation draws from the run's own generator,
    registered with each graph, so the seed still fixes the run. Warm-up steps run on a side stream with a scratch
    generator, and every tensor they change is restored afterwards, so capturing changes no weight and no draw.
    `opt` must be a `DeviceSGD`."""

    device_type = "cuda"  # where graphs are captured (a test's subclass replays eagerly on the CPU)

    def __init__(self, step, model, x, y, hp, generator, opt: DeviceSGD, averages=()):
        if x.device.type != self.device_type:
            raise ValueError(f"step='graph' captures CUDA graphs; the data are on {x.device}: use step='eager'")
        if hp["bf16"]:
            raise ValueError("step='graph' is fp32 only (bf16 autocast caches casts, which a graph cannot; on the "
                             "GPU measured, bf16 was slower anyway): use precision fp32, or step='eager'")
        if hp["elastic"]:
            raise ValueError("step='graph' does not capture the elastic augmentation (it builds a tensor from host "
                             "values each step): use step='eager' or 'device'")
        self.step, self.model, self.x, self.y, self.hp, self.generator = step, model, x, y, hp, generator
        self.opt = opt
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
        run = lambda g: self.step(self.model, self.x, self.y, idx, self.hp, g, self.opt, self.sums,  # noqa: E731
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
