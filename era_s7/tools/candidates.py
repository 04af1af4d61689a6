"""Every candidate the search has screened (docs/search.md), by name (`CANDIDATES`), and the rounds that paired
them (`ROUNDS`); the harness that trains and compares them is era_s7/tools/sweep.py.

A candidate is a layer plan plus overrides of step 3's recipe, and a line saying what it changes and where it comes
from. Every plan maps (n, 1, 28, 28) to (n, 10) logits, has < 8,000 parameters and RF >= 28; each class's docstring
gives its layer plan with output sizes. The depthwise-separable plan DSX, which round 3 adopted as Model_3, lives in
era_s7/model.py. The building blocks are the field's standard ones:

- depthwise-separable conv (Chollet, "Xception", CVPR 2017): a depthwise 3x3 (one filter per channel) then a
  pointwise 1x1 that mixes channels; Xception puts no non-linearity between the two;
- inverted residual (Sandler et al., "MobileNetV2", CVPR 2018): 1x1 expand, depthwise 3x3, linear 1x1
  project, identity shortcut when shapes match;
- grouped conv with channel shuffle (Zhang et al., "ShuffleNet", CVPR 2018).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn

from ..model import DSX, RECIPES, Model_1, Model_2, Model_3, Skeleton, conv_block, head, separable
from ..results import with_ema_also


class M3(Skeleton):
    """Model_3 before round 3 adopted dsx40 (the baseline of round 3): the skeleton with BatchNorm after every conv
    and the two-layer head, 7,856 parameters (today's Model_2 has the same layers)."""
    bn = True


# M3 is round 3's baseline: Model_3 as it was before round 3 adopted dsx40 (the layers of today's Model_2, the two-layer
# head). The class keeps its short name because its source is hashed into its runs' records (results.
# model_source_sha256: renaming it would stale results/sweeps/bf16/m3-validation.json and its subclasses' files);
# ROUND3_BASELINE is the name that says what it is.
ROUND3_BASELINE = M3


class InvertedResidual(nn.Module):
    """MobileNetV2's block at stride 1: 1x1 expand c -> c*t (BN, ReLU), depthwise 3x3 padded (BN, ReLU), linear
    1x1 project back to c (BN, no ReLU), plus the input (identity shortcut). Map size unchanged."""

    def __init__(self, c: int, t: int = 2):
        super().__init__()
        e = c * t
        self.block = nn.Sequential(nn.Conv2d(c, e, 1, bias=False), nn.BatchNorm2d(e), nn.ReLU(),
                                   nn.Conv2d(e, e, 3, padding=1, groups=e, bias=False), nn.BatchNorm2d(e), nn.ReLU(),
                                   nn.Conv2d(e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class MBV2(nn.Module):
    """Inverted residuals after the pool (7,200 parameters):

    | layer                                  | output   | RF |
    |----------------------------------------|----------|----|
    | conv 3x3, 1 -> 12                      | 26x26x12 |  3 |
    | separable 3x3, 12 -> 20                | 24x24x20 |  5 |
    | max-pool 2x2                           | 12x12x20 |  6 |
    | 3 x inverted residual (20 -> 40 -> 20) | 12x12x20 | 18 |
    | GAP, 1x1 20 -> 10                      | 10       | 40 |
    """

    def __init__(self, c: int = 20, blocks: int = 3, t: int = 2):
        super().__init__()
        self.features = nn.Sequential(conv_block(1, 12), separable(12, c), nn.MaxPool2d(2),
                                      *(InvertedResidual(c, t) for _ in range(blocks)))
        self.head = head(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (n, g*k, h, w) -> channels reordered so that the next grouped conv's groups
    each see every group of the previous one."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Shuffle(nn.Module):
    """Grouped 3x3 convs with channel shuffle after the pool (7,900 parameters):

    | layer                                        | output   | RF |
    |----------------------------------------------|----------|----|
    | conv 3x3, 1 -> 8                             | 26x26x8  |  3 |
    | conv 3x3, 8 -> 28                            | 24x24x28 |  5 |
    | max-pool 2x2                                 | 12x12x28 |  6 |
    | 3 x (grouped conv 3x3 28 -> 28, 4 groups, shuffle) | 10, 8, 6 | 18 |
    | GAP, 1x1 28 -> 10                            | 10       | 28 |
    """

    def __init__(self, c: int = 28, groups: int = 4):
        super().__init__()
        grouped = [nn.Sequential(nn.Conv2d(c, c, 3, groups=groups, bias=False), nn.ReLU(), nn.BatchNorm2d(c),
                                 ChannelShuffle(groups)) for _ in range(3)]
        self.features = nn.Sequential(conv_block(1, 8), conv_block(8, c), nn.MaxPool2d(2), *grouped)
        self.head = head(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ExpandBeforeGAP(M3):
    """M3's features, then a 1x1 conv 16 -> 20 (ReLU, BN) on the 6x6 map before the GAP, and a single 1x1
    20 -> 10 after it (7,968 parameters, RF 28): the head's mixing done per position instead of after pooling."""

    def __init__(self, expand: int = 20):
        super().__init__()
        self.head = nn.Sequential(conv_block(16, expand, kernel=1), *head(expand))


# ------------------------------------------------------------------ rounds 1-2: the skeleton's plans
class Round1(M3):
    """Model_3 as it was in round 1 of the search, the baseline then: the head a single 1x1 conv 16->10
    (7,568 parameters). Round 1 adopted head2's two-layer head into Model_3."""
    head_width = None


class Head2(Round1):
    """Round 1's Model_3 with a two-layer head: GAP, 1x1 16->16 (ReLU, BN), 1x1 16->10 (7,856 parameters).
    (Today's Model_2 has this head; this class, which builds it after the old one, keeps round 1's runs
    reproducible: the initial weights drawn are those of the runs on disk.)"""

    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 16, 1, bias=False), nn.ReLU(),
                                  nn.BatchNorm2d(16), nn.Conv2d(16, 10, 1, bias=False), nn.Flatten())


class Squeeze(nn.Module):
    """Wider before the pool, a 1x1 squeeze after it (7,742 parameters, RF 28):
    1->10 (26), 10->16 (24), max-pool (12), 1x1 16->8, 8->16 (10), 16->16 (8), 16->16 (6), GAP, 1x1 16->10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(1, 10), conv_block(10, 16), nn.MaxPool2d(2),
            nn.Conv2d(16, 8, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(8),
            conv_block(8, 16), conv_block(16, 16), conv_block(16, 16))
        self.head = head(16)

    def forward(self, x):
        return self.head(self.features(x))


def separable_bn(c_in: int, c_out: int) -> nn.Sequential:
    """Round 1's separable block (MobileNet's, Howard et al. 2017), not `model.separable` (Xception's): depthwise
    3x3 on c_in, then pointwise 1x1 c_in->c_out, each followed by ReLU and BatchNorm."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False), nn.ReLU(), nn.BatchNorm2d(c_in),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(c_out))


class DS40(nn.Module):
    """Depthwise-separable, 40 channels after the first conv (7,832 parameters, RF 28):
    1->16 (26), sep 16->40 (24), max-pool (12), 3 x sep 40->40 (10, 8, 6), GAP, 1x1 40->10."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_block(1, 16), separable_bn(16, 40), nn.MaxPool2d(2),
                                      separable_bn(40, 40), separable_bn(40, 40), separable_bn(40, 40))
        self.head = head(40)

    def forward(self, x):
        return self.head(self.features(x))


def dsx41() -> DSX:
    """`Model_3`'s plan (`DSX` 41 wide), built as a `DSX`: its sweep files of rounds 3-6 name one model class."""
    return DSX(pre=(41,), post=(41,) * 3)


class DSXNoScale(nn.Module):
    """dsx41's functions with BatchNorm's learned scales taken out, and the parameters so freed spent on width: the
    next conv is linear in a BN's output, so it absorbs the BN's scale into its weights (a depthwise conv per channel,
    exactly) and its shift into a bias (through a depthwise conv without padding a constant stays a constant per
    channel); GAP and the head conv absorb the last BN's scale and shift alike. Across the max-pool this holds for
    positive scales, which trained ones are (step 3's: 0.60 and up). Each BN keeps its normalisation only
    (affine=False), each depthwise conv and the head get a bias: 211 fewer parameters at 41 wide (7,653), so 42 wide
    fits (7,958 parameters):

    | block        | layer                                          | output   | RF |
    |--------------|------------------------------------------------|----------|----|
    | features.0-2 | conv 3x3, 1 -> 16, ReLU, BN (no affine)        | 26x26x16 |  3 |
    | features.3-6 | separable 3x3 (depthwise with bias), 16 -> 42  | 24x24x42 |  5 |
    | features.7   | maxpool 2x2                                    | 12x12x42 |  6 |
    | features.8-  | 3 x separable 3x3 (depthwise with bias), 42    | 10, 8, 6 | 18 |
    | head         | GAP, conv 1x1 with bias, 42 -> 10              | 1x1x10   | 28 |
    """

    def __init__(self, width: int = 42, stem: int = 16):
        super().__init__()
        layers = [nn.Conv2d(1, stem, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(stem, affine=False)]
        for i, (a, b) in enumerate(zip([stem, width, width, width], [width] * 4)):
            layers += [nn.Conv2d(a, a, 3, groups=a), nn.Conv2d(a, b, 1, bias=False), nn.ReLU(),
                       nn.BatchNorm2d(b, affine=False)] + ([nn.MaxPool2d(2)] if i == 0 else [])
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, 10, 1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ------------------------------------------------------------------ the registry
class Candidate(NamedTuple):
    """A candidate: `build()` makes its model (the seed is set before), `recipe` overrides recipes.HYPERPARAMETERS,
    `doc` says what it changes against its round's baseline and where the change comes from."""
    build: Callable[[], nn.Module]
    recipe: dict
    doc: str


# the OLD step-3 recipe (batch 128, label smoothing 0.1, decay on every weight): step 3's through rounds 1-6, on which
# every candidate before round 6's adoption was defined and run; today's is model.RECIPES["Model_3"]
OLD_STEP3_RECIPE = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="onecycle", pct_start=0.2,
             rotate_deg=8.0, translate=0.0, ema=0.998, label_smoothing=0.1)
BASELINE = "baseline"
R1 = "round 1's baseline (Model_3 then: the skeleton with BN, a one-layer head, step 3's recipe)"
ON_DSX41 = "on Model_3 (dsx41) and its recipe: "

CANDIDATES = {
    # round 1: one change each on its baseline
    BASELINE: Candidate(Round1, OLD_STEP3_RECIPE, R1),
    "lr02": Candidate(Round1, {**OLD_STEP3_RECIPE, "lr": 0.2}, "peak learning rate 0.2 instead of 0.1"),
    "elastic": Candidate(Round1, {**OLD_STEP3_RECIPE, "elastic": 2.0},
                         "+ elastic distortion of up to 2 px (Simard et al., ICDAR 2003)"),
    "rot12": Candidate(Round1, {**OLD_STEP3_RECIPE, "rotate_deg": 12.0}, "rotation +-12 deg instead of +-8"),
    "ls0": Candidate(Round1, {**OLD_STEP3_RECIPE, "label_smoothing": 0.0}, "no label smoothing"),
    "head2": Candidate(Head2, OLD_STEP3_RECIPE,
                       "a two-layer 1x1 head (GAP, 1x1 16->16, 1x1 16->10); adopted by round 1"),
    "squeeze": Candidate(Squeeze, OLD_STEP3_RECIPE,
                         "wider before the pool, a 1x1 squeeze after it (SqueezeNet's idea)"),
    "ds40": Candidate(DS40, OLD_STEP3_RECIPE, "MobileNet-style separable blocks, 40 wide (Howard et al., 2017)"),
    # round 2: round 1's other gains, each on top of the adopted head2
    "head2-lr02": Candidate(Head2, {**OLD_STEP3_RECIPE, "lr": 0.2}, "head2 + peak lr 0.2"),
    "head2-ls0": Candidate(Head2, {**OLD_STEP3_RECIPE, "label_smoothing": 0.0}, "head2 without label smoothing"),
    "head2-rot12": Candidate(Head2, {**OLD_STEP3_RECIPE, "rotate_deg": 12.0}, "head2 + rotation +-12 deg"),
    "head2-all3": Candidate(Head2, {**OLD_STEP3_RECIPE, "lr": 0.2, "label_smoothing": 0.0, "rotate_deg": 12.0},
                            "head2 + round 1's three other gains at once"),
    # round 3: structure, paired against the Model_3 of then (M3)
    "m3": Candidate(ROUND3_BASELINE, OLD_STEP3_RECIPE,
                    "round 3's baseline: Model_3 then (the skeleton with BN and the two-layer head)"),
    "dsx40": Candidate(DSX, OLD_STEP3_RECIPE,
                       "Xception-style separable blocks 40 wide (Chollet, CVPR 2017); adopted by round 3"),
    # its runs also follow a second EMA (0.999: round 6's dsx41-ema999), which changes no number the first one
    # measures (tests/test_training.py)
    "dsx41": Candidate(dsx41, {**OLD_STEP3_RECIPE, "ema_also": 0.999},
                       "dsx40 one channel wider, the most the budget allows; adopted by round 4 (Model_3)"),
    "dsx40s20": Candidate(lambda: DSX(stem=20), OLD_STEP3_RECIPE, "dsx40 with a wider first conv (20)"),
    "dsx34x4": Candidate(lambda: DSX(pre=(34,), post=(34,) * 4), OLD_STEP3_RECIPE, "narrower (34), one block deeper"),
    "dsxpre2": Candidate(lambda: DSX(pre=(32, 32), post=(36,) * 3), OLD_STEP3_RECIPE,
                         "two separable blocks before the pool"),
    "dsx44k5": Candidate(lambda: DSX(pre=(44,), post=(44, 44), kernel=5), OLD_STEP3_RECIPE,
                         "wider (44), 5x5 depthwise filters, two blocks after the pool"),
    "mbv2": Candidate(MBV2, OLD_STEP3_RECIPE, "inverted residuals (Sandler et al., MobileNetV2, CVPR 2018)"),
    "shuffle28": Candidate(Shuffle, OLD_STEP3_RECIPE,
                           "grouped 3x3 + channel shuffle (Zhang et al., ShuffleNet, CVPR 2018)"),
    "m3x20": Candidate(ExpandBeforeGAP, OLD_STEP3_RECIPE, "a 1x1 16 -> 20 before the GAP"),
    # round 5: the two ingredients whose removal the dsx41 ablation (3 test seeds) read as gains
    "dsx41-rot0": Candidate(dsx41, {**OLD_STEP3_RECIPE, "rotate_deg": 0.0},
                            ON_DSX41 + "no augmentation (the ablation's lead)"),
    "dsx41-ls0": Candidate(dsx41, {**OLD_STEP3_RECIPE, "label_smoothing": 0.0},
                           ON_DSX41 + "no label smoothing (its lead)"),
    # steps 1 and 2 as their notebooks train them: is bf16 safe for them? (sweep.PRECISION_CHECKS)
    "m1": Candidate(Model_1, RECIPES["Model_1"], "step 1 as its notebook trains it (no BN, plain SGD)"),
    "m2": Candidate(Model_2, RECIPES["Model_2"], "step 2 as its notebook trains it (BN, plain SGD)"),
    # round 6: how the parameters are trained, one change each on Model_3 (= dsx41), under one condition
    "dsx41-b64": Candidate(dsx41, {**OLD_STEP3_RECIPE, "batch_size": 64},
                           ON_DSX41 + "batch 64: twice the updates (782 an "
                           "epoch on the validation split), the same one-cycle; the lead of the issue's pilot"),
    "dsx41-b64-lr014": Candidate(dsx41, {**OLD_STEP3_RECIPE, "batch_size": 64, "lr": 0.14},
                                 ON_DSX41 + "batch 64 at peak lr 0.14 (the batch-64 lead's neighbour)"),
    "dsx41-b64-lr007": Candidate(dsx41, {**OLD_STEP3_RECIPE, "batch_size": 64, "lr": 0.07},
                                 ON_DSX41 + "batch 64 at peak lr 0.07: the lr scaled with the batch (Goyal et al., "
                                 "2017's linear rule, 0.1 x 64/128 = 0.05, rounded up)"),
    "dsx41-lr02": Candidate(dsx41, {**OLD_STEP3_RECIPE, "lr": 0.2},
                            ON_DSX41 + "peak lr 0.2 (round 1's lead on the skeleton)"),
    "dsx41-nodecay": Candidate(dsx41, {**OLD_STEP3_RECIPE, "no_decay": "depthwise+batchnorm"},
                               ON_DSX41 + "no weight decay on the depthwise 3x3 filters and BN's parameters "
                               "(MobileNet's practice, Howard et al., 2017)"),
    "dsx41-wd5e4": Candidate(dsx41, {**OLD_STEP3_RECIPE, "weight_decay": 5e-4},
                             ON_DSX41 + "weight decay 5e-4 (the engine's default) instead of 1e-4"),
    "dsx41-ls005": Candidate(dsx41, {**OLD_STEP3_RECIPE, "label_smoothing": 0.05},
                             ON_DSX41 + "label smoothing 0.05 instead of 0.1 (0 lost in round 5; a smaller value "
                             "was never tried)"),
    "dsx41-distill": Candidate(dsx41, {**OLD_STEP3_RECIPE, "distill": 0.5},
                               ON_DSX41 + "self-distillation from the weight EMA after epoch 3: half the loss is the "
                               "KL towards its predictions at temperature 2 (Tarvainen & Valpola's mean teacher, 2017; "
                               "Hinton et al., 2015); about 1.3x the compute of a step, no extra parameters"),
    "dsx41-muon": Candidate(dsx41, {**OLD_STEP3_RECIPE, "optimizer": "muon"},
                            ON_DSX41 + "Muon (orthogonalised Nesterov momentum, the optimizer of the CIFAR-10 speed "
                            "records; Jordan et al., 2024) on the stem and pointwise convs at peak lr 0.02, SGD on the "
                            "depthwise filters, BN and the classifier as before; pytorch-optimizer's `Muon`"),
    # the combination, defined after the first eight's screen and before any of its runs: the leader (batch 64)
    # with the two screen-passers that act by other means than more or larger steps (peak lr 0.14 at batch 64
    # measured no more than 0.1, so lr 0.2 is read as the same lever as batch 64 and left out)
    "dsx41-b64-nodecay-ls005": Candidate(dsx41, {**OLD_STEP3_RECIPE, "batch_size": 64,
                                                 "no_decay": "depthwise+batchnorm", "label_smoothing": 0.05},
                                         ON_DSX41 + "batch 64, no weight decay on the depthwise filters and BN, label "
                                         "smoothing 0.05: dsx41-b64, dsx41-nodecay and dsx41-ls005 at once"),
    "dsx42-noscale": Candidate(DSXNoScale, OLD_STEP3_RECIPE,
                               "dsx41's plan without BN's learned scales, which the next conv absorbs, and one "
                               "channel wider with the 211 parameters freed (42, 7,958)"),
    # round 6's test-set confirmation: dsx41-b64-nodecay-ls005's computation (Model_3 builds dsx41's modules, in
    # the same order from the same seed) under step 3's model name and code, so that once RECIPES["Model_3"] is
    # this recipe, the notebooks reuse these runs where they were made under the notebook's condition
    "model3-b64-nodecay-ls005": Candidate(Model_3, {**OLD_STEP3_RECIPE, "batch_size": 64,
                                                    "no_decay": "depthwise+batchnorm", "label_smoothing": 0.05},
                                          "dsx41-b64-nodecay-ls005 built as Model_3 itself: its runs on the test "
                                          "split are the ones step 3's notebooks can reuse"),
}
# round 7: the last-5 window (epochs 11-15), one change each on today's Model_3 recipe (round 6's choice), defined
# before any of their runs; each keeps the convolutions' learning rate >= 1 % of its peak until the last epoch begins
# (tests/test_sweep.py). Today's one-cycle is at 25 % of its peak at the end of epoch 11 and the window's minimum falls
# there in most runs (issue 41)
R7 = CANDIDATES["dsx41-b64-nodecay-ls005"].recipe
ON_R6 = "on Model_3 (dsx41) and round 6's recipe: "
CANDIDATES.update({
    "dsx41-r7-anneal13": Candidate(dsx41, {**R7, "anneal_end": 13 / 15, "lr_floor": 0.02},
                                   ON_R6 + "the one-cycle's anneal ends with epoch 13 at 2 % of the peak, held "
                                   "through epoch 15 (the warm-up unchanged): at the end of epoch 11 the lr is 11 % of "
                                   "the peak instead of 25 %, with two epochs more of anneal than the 11-epoch "
                                   "compression the issue measured"),
    "dsx41-r7-bnbias4": Candidate(dsx41, {**R7, "bn_bias_lr": 4.0},
                                  ON_R6 + "BatchNorm's shifts at 4x the learning rate: each conv before a BN is "
                                  "scale-invariant and moves at lr / |w|^2, about 3x lr at initialisation (rows of "
                                  "squared norm 1/3), while the shifts moved at lr (airbench's largest optimizer gain "
                                  "is this lever, at 64x under its own scaling; 4 is not tuned)"),
    "dsx41-r7-lookahead": Candidate(dsx41, {**R7, "lookahead": 5},
                                    ON_R6 + "Lookahead around the Nesterov SGD (Zhang et al., NeurIPS 2019; k 5, "
                                    "alpha 0.5, pytorch-optimizer's): every 5 steps the weights move halfway back to a "
                                    "slow copy, damping the step-to-step noise the late epochs are scored through"),
})


class Derived(NamedTuple):
    """A candidate read from another's runs, training nothing: `derive(run, name)` makes its record from one of
    `source`'s (sweep.derive_runs writes them whenever the source's runs are, under the source's condition)."""
    source: str
    derive: Callable[[dict, str], dict]
    doc: str


DERIVED = {
    "dsx41-ema999": Derived("dsx41", with_ema_also, ON_DSX41 + "EMA decay 0.999 instead of 0.998, read from the "
                            "second EMA every round-6 dsx41 run follows (the judged epochs still moved by 0.03-0.04)"),
}

# round -> (its baseline, its candidates, precision): each round pairs its candidates with the model the round
# before adopted, all under the round's precision
ROUNDS = {
    "round 1": (BASELINE, ["lr02", "elastic", "rot12", "ls0", "head2", "squeeze", "ds40"], "fp32"),
    "round 2": ("head2", ["head2-lr02", "head2-ls0", "head2-rot12", "head2-all3"], "fp32"),
    "round 3": ("m3", ["dsx40", "dsx41", "dsx40s20", "dsx34x4", "dsxpre2", "dsx44k5", "mbv2", "shuffle28", "m3x20"],
                "bf16"),
    "round 4": ("dsx40", ["dsx41", "dsx44k5"], "bf16"),  # round 3's two runners-up, paired with what it adopted
    "round 5": ("dsx41", ["dsx41-rot0", "dsx41-ls0"], "bf16"),  # the ablation's leads, paired with Model_3
    # how the parameters are trained, on the Intel Xeon with AMX (its own folder: ROUND_DIRS)
    "round 6": ("dsx41", ["dsx41-b64", "dsx41-b64-lr014", "dsx41-b64-lr007", "dsx41-lr02", "dsx41-nodecay",
                          "dsx41-wd5e4", "dsx41-ls005", "dsx41-ema999", "dsx41-distill", "dsx41-muon", "dsx42-noscale",
                          "dsx41-b64-nodecay-ls005"],
                "bf16"),
    # the last-5 window, on an AMD EPYC without bf16 units, where fp32 is the notebooks' precision and bf16 runs 6x
    # slower (its own folder: ROUND_DIRS); decided on the paired last-5 minimum (sweep.MEASURES)
    "round 7": ("dsx41-b64-nodecay-ls005", ["dsx41-r7-anneal13", "dsx41-r7-bnbias4", "dsx41-r7-lookahead"], "fp32"),
}
# round -> candidate -> (first, last) seed it ran in that round, where its file also holds a later round's runs: round 3
# screened dsx41 and dsx44k5 on seeds 1-4; their seeds 5-8, in the same folder, are round 4's
ROUND_SEEDS = {"round 3": {"dsx41": (1, 4), "dsx44k5": (1, 4)}}
# round -> the folder under the sweeps' root that holds its files (default: the root): a round swept under
# another condition than the rounds before it keeps its own files, named by that condition's processor
ROUND_DIRS = {"round 6": "xeon-amx", "round 7": "epyc-avx2"}
# round -> the candidates whose runs on the test split score its choice, in the round's folder and precision
TEST_CONFIRMATIONS = {"round 6": ["model3-b64-nodecay-ls005"]}
