"""`make bench`: training throughput of the seed pipeline vs this project's engine vs the hardware's peak.

Same machine; the seed pipeline trains today's Model_3 (era_s7.model), the engine Model_3 and any other named
model (a class of era_s7.model, or a sweep candidate) in fp32 and in bf16 (autocast + channels_last), each with
the step-3 recipe, timed over a fraction of an epoch and extrapolated; writes results/bench-<device>.json, each
row naming the model it timed, its parameters and forward MACs. A benchmark, not a test: it reports, it asserts
nothing.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from .. import runs
from ..data import DEFAULT_ROOT, MNIST_MEAN, MNIST_STD, ensure_mnist, load_mnist
from ..machine import arithmetic, device_name, select_device, set_threads
from ..model import MODELS
from ..recipes import PRECISIONS, run_hyperparameters
from ..results import RESULTS_DIR, git_commit, save_json
from ..training import STEPS, evaluate, setup, train_epoch

TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000


def forward_macs(model: nn.Module, input_size=(1, 28, 28)) -> int:
    """Multiply-accumulates of one image's forward pass through the model's convs and linears."""
    macs = []

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs.append(output[0].numel() * k)
        elif isinstance(module, nn.Linear):
            macs.append(module.in_features * module.out_features)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return sum(macs)


def peak_gflops(device: torch.device, dtype=torch.float32, n: int = 2048, seconds: float = 2.0) -> float:
    """Measured throughput of a large square matmul: what this device can do at best."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * runs / (time.perf_counter() - start) / 1e9


def build(name: str, device: torch.device) -> nn.Module:
    """A class of era_s7.model by name (initial weights of seed 0), else the sweep candidate of that name."""
    from .rounds import CANDIDATES  # the search's candidates, by name

    if name not in MODELS and name not in CANDIDATES:
        raise SystemExit(f"error: {name!r} is neither a model ({', '.join(MODELS)}) nor a sweep candidate")
    return runs.build(MODELS[name] if name in MODELS else CANDIDATES[name].build, 0, device)


def describe(name: str, model: nn.Module) -> dict:
    """What a row timed: the model's name, class, parameters and forward MACs."""
    return dict(model=name, model_class=type(model).__name__, params=sum(p.numel() for p in model.parameters()),
                forward_macs=forward_macs(model))


def seed_pipeline_images_per_s(device: torch.device, images: int) -> float:
    """The original assignment's way: PIL transforms per sample, DataLoader (batch 32, 4 workers), SGD."""
    try:
        from torchvision import datasets, transforms
    except ImportError:
        raise SystemExit("error: the seed pipeline needs torchvision: pip install 'era-s7[torchvision]'") from None

    tf = transforms.Compose([transforms.RandomRotation((-7.0, 7.0), fill=0), transforms.RandomPerspective(0.3, p=0.5),
                             transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    loader = torch.utils.data.DataLoader(datasets.MNIST(str(DEFAULT_ROOT), train=True, download=False, transform=tf),
                                         batch_size=32, shuffle=True, num_workers=4, persistent_workers=False)
    model = build("Model_3", device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seen, start = 0, None
    for i, (x, y) in enumerate(loader):
        if i == 5:  # after the workers have started
            start, seen = time.perf_counter(), 0
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(x)
        if start is not None and seen >= images:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def engine_timings(device: torch.device, images: int, name: str = "Model_3", precision: str = "fp32",
                   step: str = "eager") -> tuple[float, float]:
    """(training images/s of a model (`build`) with the step-3 recipe at `precision`, its step run as `step`
    (training.STEPS: "graph" replays CUDA graphs), seconds of one full test-set evaluation)."""
    data = load_mnist(device=device)
    hp = run_hyperparameters("Model_3", precision=precision)
    x, y = data["x_train"][:images], data["y_train"][:images]
    engine = setup(build(name, device), x, y, hp, seed=0, step=step)  # its weight average costs a step too
    warm = hp["batch_size"] * 4
    if engine.graphed is not None:  # warm-up: captures the graphs (full and short batch) on the data they will read
        engine.graphed.run_epoch(torch.randperm(len(x), generator=engine.generator, device=device)[:warm + 32])
    else:
        train_epoch(engine, x[:warm], y[:warm])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_epoch(engine, x, y)  # reads the device once at the end
    train_ips = len(x) / (time.perf_counter() - start)
    start = time.perf_counter()
    evaluate(engine.model, data["x_test"], data["y_test"], hp["eval_batch_size"], hp["bf16"])
    return train_ips, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=12_800, help="images timed per pipeline (default 12,800)")
    parser.add_argument("--models", nargs="+", default=["Model_3"],
                        help="what the engine times: classes of era_s7.model or sweep candidates (default Model_3)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--steps", nargs="+", default=None, choices=list(STEPS),
                        help="how the engine's step runs (training.STEPS; default: graph and eager on CUDA, "
                             "eager elsewhere); the first is the headline's. graph: fp32 only")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    args.steps = args.steps or (["graph", "eager"] if device.type == "cuda" else ["eager"])
    threads = set_threads() if device.type == "cpu" else torch.get_num_threads()
    ensure_mnist()
    if "Model_3" not in args.models:
        args.models.insert(0, "Model_3")  # the seed pipeline's model: the ratio compares like with like
    timed = {name: describe(name, build(name, device)) for name in args.models}
    macs = timed["Model_3"]["forward_macs"]
    train_flops = macs * 2 * 3  # forward + backward (about twice the forward), 2 FLOPs per MAC
    peak = peak_gflops(device)
    try:
        peak_bf16 = peak_gflops(device, torch.bfloat16)
    except RuntimeError:
        peak_bf16 = None
    seed_ips = seed_pipeline_images_per_s(device, args.images)
    engine = {(m, p, st): engine_timings(device, args.images, m, p, st) for m in args.models for st in args.steps
              for p in args.precisions if not (st == "graph" and p != "fp32")}  # graphs: fp32 only
    headline = next(k for k in engine if k[0] == "Model_3")
    engine_ips, eval_s = engine[headline]
    engine_gflops = train_flops * engine_ips / 1e9
    name = device_name(device) + ("" if device.type == "cuda" else f" ({threads} threads)")
    result = dict(
        device=device.type, device_name=name, arithmetic=arithmetic(device), torch=torch.__version__,
        commit=git_commit(), images_timed=args.images,
        model="Model_3", model_class=timed["Model_3"]["model_class"], params=timed["Model_3"]["params"],
        forward_macs=macs, train_flops_per_image=train_flops, engine_precision=headline[1], engine_step=headline[2],
        seed_images_per_s=seed_ips, engine_images_per_s=engine_ips, ratio=engine_ips / seed_ips,
        eval_seconds=eval_s, seconds_per_15_epochs=15 * (TRAIN_IMAGES / engine_ips + eval_s),
        seed_seconds_per_15_epochs=15 * TRAIN_IMAGES / seed_ips,
        peak_gflops=peak, peak_bf16_gflops=peak_bf16, engine_gflops=engine_gflops,
        fraction_of_peak=engine_gflops / peak,
        engine=[dict(**timed[m], precision=p, step=st, images_per_s=ips, eval_seconds=ev,
                     seconds_per_15_epochs=15 * (TRAIN_IMAGES / ips + ev)) for (m, p, st), (ips, ev) in engine.items()],
    )
    path = save_json(result, RESULTS_DIR / f"bench-{device.type}.json")
    print_result(result, engine, args.models, path)
    return 0


def print_result(result: dict, engine: dict, models: list[str], path) -> None:
    """The bench's table and ratios, from its record and the engine's timings by (model, precision, step)."""
    rows = [("seed pipeline (DataLoader, PIL, batch 32)", f"{result['seed_images_per_s']:,.0f}",
             f"{result['seed_seconds_per_15_epochs']:.0f}")]
    rows += [(f"era_s7 engine, {r['model']}, {r['precision']}, {r['step']}", f"{r['images_per_s']:,.0f}",
              f"{r['seconds_per_15_epochs']:.0f}") for r in result["engine"]]
    print(f"device: {result['device_name']} | Model_3 ({result['params']:,} parameters): {result['forward_macs']:,} "
          f"forward MACs, {result['train_flops_per_image'] / 1e6:.1f} MFLOP per training image")
    print(f"{'pipeline (step-3 recipe)':<52}{'images/s':>10}{'s / 15 epochs':>15}")
    for row in rows:
        print(f"{row[0]:<52}{row[1]:>10}{row[2]:>15}")
    for c in models:
        ips = {(p, st): engine[(m, p, st)][0] for m, p, st in engine if m == c}
        if ("fp32", "eager") in ips and ("bf16", "eager") in ips:
            print(f"{c}: bf16 (autocast + channels_last) / fp32 = "
                  f"{ips[('bf16', 'eager')] / ips[('fp32', 'eager')]:.2f}x (eager step)")
        if ("fp32", "eager") in ips and ("fp32", "graph") in ips:
            print(f"{c}: CUDA graph / eager step = {ips[('fp32', 'graph')] / ips[('fp32', 'eager')]:.2f}x (fp32)")
    peak_bf16 = result["peak_bf16_gflops"]
    print(f"engine / seed: {result['ratio']:.1f}x | peak fp32 matmul {result['peak_gflops']:,.0f} GFLOP/s"
          + (f", bf16 {peak_bf16:,.1f}" if peak_bf16 else "")
          + f" | engine {result['engine_gflops']:.1f} GFLOP/s = {result['fraction_of_peak']:.1%} of fp32 peak")
    print(f"(15 epochs include a full test-set evaluation per epoch, {result['eval_seconds']:.2f} s each) "
          f"-> {path.name}")


if __name__ == "__main__":
    sys.exit(main())
