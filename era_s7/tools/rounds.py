"""The search's rounds (docs/search.md): every candidate it has screened, by name (`CANDIDATES`: a layer plan of
era_s7/tools/candidates.py or era_s7/model.py, its recipe and what it changes), those read from another's runs
(`DERIVED`), and the rounds that paired them (`ROUNDS`), with each round's folder, seeds and test-set confirmation.
A candidate's recipe is frozen once it has runs on record; the harness that trains and compares them is
era_s7/tools/sweep.py."""
from __future__ import annotations

from typing import Callable, NamedTuple

from torch import nn

from ..model import DSX, RECIPES, Model_1, Model_2, Model_3
from ..results import with_ema_also
from .candidates import DS40, M3, MBV2, DSXNoScale, ExpandBeforeGAP, Head2, Round1, Shuffle, Squeeze, dsx41

# M3 is round 3's baseline: Model_3 as it was before round 3 adopted dsx40 (the layers of today's Model_2, the two-layer
# head). The class keeps its short name because its source is hashed into its runs' records (results.
# model_source_sha256: renaming it would stale results/sweeps/bf16/m3-validation.json and its subclasses' files);
# ROUND3_BASELINE is the name that says what it is.
ROUND3_BASELINE = M3


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
