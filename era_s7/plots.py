"""Figures for the notebooks: each function returns a matplotlib Figure and, given a path, saves it as PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .assignment import TARGET
from .augmentation import augment
from .data import MNIST_MEAN, MNIST_STD
from .report import by_name, one_recipe


def _save(fig, path):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80, bbox_inches="tight")
    return fig


def _show_digits(images, titles, path, columns=10, title=None):
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3 + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, images, titles):
        ax.imshow((img.squeeze(0).float().cpu() * MNIST_STD + MNIST_MEAN).numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(t, fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_samples(x, y, n=20, path=None):
    """The first n training images with their labels."""
    return _show_digits(x[:n], [str(int(v)) for v in y[:n]], path, title="training samples")


def plot_augmentations(x, hp, n=10, seed=0, path=None):
    """Row 1: originals; rows 2-3: two random draws of the training augmentation. None (and a printed
    line) when the recipe does not augment: a figure of unchanged digits would only mislead."""
    if not (hp["rotate_deg"] or hp["translate"] or hp["elastic"]):
        print("this recipe trains on the images as they are: no augmentation to show")
        return None
    g = torch.Generator(device=x.device).manual_seed(seed)
    originals = x[:n]
    views = [originals] + [augment(originals, hp["rotate_deg"], hp["translate"], g, hp["elastic"]) for _ in range(2)]
    titles = ["original"] * n + ["augmented"] * 2 * n
    return _show_digits(torch.cat(views), titles, path, columns=n,
                        title=f"augmentation: rotate ±{hp['rotate_deg']}°, translate ±{hp['translate']:.0%}"
                              + (f", elastic ≤ {hp['elastic']} px" if hp["elastic"] else ""))


def plot_history(history, path=None, target=TARGET):
    """Loss, accuracy (train and test), test accuracy zoomed to where the target is judged, learning rate."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc, ax_zoom, ax_lr) = plt.subplots(1, 4, figsize=(19, 4), layout="constrained")
    for split, style in (("train", "-o"), ("test", "-s")):
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, ms=3, label=split)
        ax_acc.plot(epochs, [r[f"{split}_acc"] for r in history], style, ms=3, label=split)
    ax_zoom.plot(epochs, [r["test_acc"] for r in history], "-s", ms=3, color="C1", label="test")
    for ax in (ax_acc, ax_zoom):
        ax.axhline(target, color="red", ls="--", lw=1, label=f"{target}%")
    ax_acc.set_ylim(max(0.0, min(97.0, min(r["test_acc"] for r in history) - 0.5)), 100)
    ax_zoom.set_ylim(98.5, 99.7)
    ax_lr.plot(epochs, [r["lr"] for r in history], "-o", ms=3)
    for ax, title in ((ax_loss, "loss"), (ax_acc, "accuracy %"), (ax_zoom, "test accuracy %, 98.5-99.7"),
                      (ax_lr, "learning rate (end of epoch)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in (ax_loss, ax_acc, ax_zoom):
        ax.legend()
    return _save(fig, path)


def plot_misclassified(x, y, probs, n=20, path=None):
    """The test images the final model gets wrong, most confident mistakes first."""
    pred = probs.argmax(1)
    wrong = torch.nonzero(pred != y).flatten()
    wrong = wrong[probs[wrong, pred[wrong]].argsort(descending=True)][:n]
    titles = [f"true {int(y[i])} pred {int(pred[i])}\n{float(probs[i, pred[i]]):.0%}" for i in wrong]
    return _show_digits(x[wrong], titles, path,
                        title=f"{int((pred != y).sum())} of {len(y)} test images misclassified (most confident first)")


def confusion_matrix(y, pred, classes=10) -> torch.Tensor:
    """counts[true, predicted]."""
    return torch.bincount(y.cpu() * classes + pred.cpu(), minlength=classes * classes).reshape(classes, classes)


def plot_confusion(y, probs, path=None):
    """Confusion matrix and per-class accuracy of the final model on the test set."""
    cm = confusion_matrix(y, probs.argmax(1))
    per_class = 100 * cm.diag() / cm.sum(1)
    fig, (ax_cm, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    ax_cm.imshow(np.log1p(cm.numpy()), cmap="Blues")
    for i in range(10):
        for j in range(10):
            if cm[i, j]:
                ax_cm.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                           color="white" if i == j else "black")
    ax_cm.set(xlabel="predicted", ylabel="true", xticks=range(10), yticks=range(10), title="confusion matrix")
    ax_acc.bar(range(10), per_class.numpy())
    ax_acc.set(xticks=range(10), xlabel="class", title="per-class accuracy %",
               ylim=(max(0.0, min(98.0, float(per_class.min()) - 0.5)), 100.5))
    for i, v in enumerate(per_class):
        ax_acc.text(i, float(v), f"{float(v):.1f}", ha="center", va="bottom", fontsize=8)
    return _save(fig, path)


def plot_runs(runs: list[dict], path=None, target=TARGET, title="test accuracy per epoch"):
    """Test accuracy per epoch of several runs: each run's line, and, where the runs are seeds of one model and
    recipe, the band between their min and max (across different variants a band would describe nothing).
    Runs that share a name (a variant on several seeds) are drawn as one line, their mean over seeds."""
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    epochs = [r["epoch"] for r in runs[0]["history"]]
    accs = np.array([[r["test_acc"] for r in run["history"]] for run in runs])
    if len({len(run["history"]) for run in runs}) == 1 and len(runs) > 1 and one_recipe(runs):
        ax.fill_between(epochs, accs.min(0), accs.max(0), alpha=0.2, label="min–max over runs")
    for name, group in by_name(runs).items():
        mean = np.mean([[r["test_acc"] for r in run["history"]] for run in group], axis=0)
        label = name if len(group) == 1 else f"{name} (mean of {len(group)} seeds)"
        ax.plot([r["epoch"] for r in group[0]["history"]], mean, "-o", ms=3, lw=1, label=label)
    ax.axhline(target, color="red", ls="--", lw=1, label=f"{target}%")
    ax.set(xlabel="epoch", ylabel="test accuracy %", title=title,
           ylim=(max(0.0, min(99.0, float(accs[:, -5:].min()) - 0.3)), min(100.0, float(accs.max()) + 0.15)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def plot_your_digit(source, prediction, path=None):
    """Your digit before and after the MNIST-style preprocessing (era_s7/digits.py), side by side, and the
    model's class probabilities. `source` is what was given to `classify` (a file, PIL image or array);
    `prediction` is what it returned."""
    from .digits import load_grey

    fig, (before, after, bars) = plt.subplots(1, 3, figsize=(10, 3), layout="constrained",
                                              gridspec_kw=dict(width_ratios=[1.4, 1, 1.4]))
    grey = load_grey(source)
    before.imshow(grey, cmap="gray", vmin=0, vmax=1)
    before.set_title(f"your image, {grey.shape[1]}x{grey.shape[0]} px", fontsize=9)
    after.imshow(prediction.image, cmap="gray", vmin=0, vmax=1)
    after.set_title("what the model sees: 28x28", fontsize=9)
    for ax in (before, after):
        ax.set_xticks([])
        ax.set_yticks([])
    bars.bar(range(10), prediction.probs,
             color=["tab:green" if d == prediction.digit else "tab:gray" for d in range(10)])
    bars.set_xticks(range(10))
    bars.set_ylim(0, 1)
    bars.set_title(f"prediction: {prediction.digit} (p = {prediction.probs[prediction.digit]:.2f})", fontsize=9)
    return _save(fig, path)
