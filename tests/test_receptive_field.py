import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from era_s7 import assignment, utils
from era_s7 import receptive_field as rfm
from era_s7.model import MODELS, make_model
from era_s7.results import REPO_ROOT, RESULTS_DIR, load_record


def reference_model1():
    """The seed repository's Model1 (conv-conv-pool-conv-conv-pool-conv-GAP): its RF after GAP is 48, not the 32 it
    states."""
    def c(i, o):
        return nn.Conv2d(i, o, 3, padding=1, bias=False)
    return nn.Sequential(c(1, 32), nn.ReLU(), c(32, 32), nn.ReLU(), nn.MaxPool2d(2), c(32, 64), nn.ReLU(), c(64, 64),
                         nn.ReLU(), nn.MaxPool2d(2), c(64, 128), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Conv2d(128, 10, 1), nn.Flatten())


def test_hand_calculation_of_reference_model():
    rows, rf = rfm.receptive_field(reference_model1())
    # by hand: 3, 5, pool 6 (jump 2), 10, 14, pool 16 (jump 4), 24, GAP over 7x7: 24 + 6*4 = 48, 1x1: 48
    assert [r["rf"] for r in rows] == [3, 5, 6, 10, 14, 16, 24, 48, 48]
    assert [r["jump_in"] for r in rows] == [1, 1, 1, 2, 2, 2, 4, 4, 28]  # GAP over 7x7 has stride 7
    assert [r["size_out"] for r in rows] == [28, 28, 14, 14, 14, 7, 7, 1, 1]
    assert rf == 48


def test_strided_dilated_and_unpadded_layers():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, stride=2), nn.Conv2d(4, 4, 3, dilation=2),
                          nn.AvgPool2d(2), nn.Conv2d(4, 4, 1))
    rows, rf = rfm.receptive_field(model)
    # 3; stride 2: +2*1=5 (jump->2); dilated, k_eff 5: +4*2=13; avgpool 2: +1*2=15 (jump->4); 1x1: 15
    assert [r["rf"] for r in rows] == [3, 5, 13, 15, 15]
    assert [r["jump_in"] for r in rows] == [1, 1, 2, 2, 4]
    assert [r["size_out"] for r in rows] == [26, 12, 8, 4, 4] and rf == 15


@pytest.mark.parametrize("name", sorted(MODELS))
def test_per_layer_kernel_stride_padding_match_torchscan(name):
    """torchscan computes each layer's (kernel, stride, padding) independently of our code."""
    from torchscan import crawl_module

    model = make_model(name)
    ours = rfm.receptive_field(model)[0]
    theirs = {layer["path"]: layer["metrics"] for layer in crawl_module(model, (1, 28, 28))["layers"]}
    for row in ours:
        m = theirs[row["layer"]]
        assert ((m["receptive_field"]["value"], m["effective_stride"]["value"])
                == (row["kernel"], row["stride"])), row["layer"]
        if not row["type"].startswith("Adaptive"):  # torchscan gives GAP a nominal negative padding; RF ignores it
            assert m["effective_padding"]["value"] == row["padding"], row["layer"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_see_the_whole_digit(name):
    rows, rf = rfm.receptive_field(make_model(name))
    assert rf >= 28 and rows[-1]["size_out"] == 1
    assert "layer" in rfm.format_receptive_field(rows)


class PytorchExample(nn.Module):
    """The classic PyTorch MNIST example (pytorch/examples, mnist/main.py): a functional max-pool, then Linear."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = torch.flatten(self.dropout1(x), 1)
        return F.log_softmax(self.fc2(self.dropout2(F.relu(self.fc1(x)))), dim=1)


class Residual(nn.Module):
    """Two 3x3 convs on the main path, one 3x3 conv on the shortcut, added, then GAP."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.shortcut = nn.Conv2d(1, 8, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.gap(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x)).flatten(1)


def rf_by_layer(model):
    return {r["layer"]: r["rf"] for r in rfm.receptive_field(model)[0]}


def test_functional_pool_counts_and_linear_sees_the_whole_image():
    rows, rf = rfm.receptive_field(PytorchExample())
    # by hand: 3, 5, pool 6 (jump 2); fc1 on the flattened 12x12 map is one 12-wide window: 6 + 11*2 = 28
    assert [(r["layer"], r["rf"]) for r in rows] == [("conv1", 3), ("conv2", 5), ("max_pool2d", 6), ("fc1", 28),
                                                      ("fc2", 28)]
    assert rows[3]["kernel"] == 12 and rf == 28


def test_parallel_branches_merge_instead_of_chaining():
    # main path 3, 5; shortcut 3 beside it; the sum sees 5 (not 7); GAP over 28x28 at jump 1: 5 + 27 = 32 (not 34)
    assert rf_by_layer(Residual()) == {"conv1": 3, "conv2": 5, "shortcut": 3, "add": 5, "gap": 32}
    assert rfm.receptive_field(Residual())[1] == 32


def test_merged_paths_see_the_union_of_their_fields():
    """Paths whose fields are offset (one starts a pixel further left) merge into one field spanning both."""
    assert rfm.union([rfm.Field(14, rf=3, jump=2, start=-1), rfm.Field(14, rf=3, jump=2, start=0)]) == \
        rfm.Field(14, rf=4, jump=2, start=-1)


def test_concatenated_branches_and_functional_global_mean():
    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.b1, self.b5 = nn.Conv2d(1, 4, 1), nn.Conv2d(1, 4, 5, padding=2)

        def forward(self, x):
            return torch.cat([self.b1(x), F.relu(self.b5(x))], dim=1).mean((2, 3))

    # 1 and 5 side by side: 5; the mean over 28x28: 5 + 27 = 32
    assert rf_by_layer(Inception()) == {"b1": 1, "b5": 5, "cat": 5, "mean": 32}


def test_same_padding_is_a_number_in_an_aligned_table():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding="same"), nn.Conv2d(4, 4, 3, padding="same", dilation=2))
    rows, rf = rfm.receptive_field(model)
    assert [r["padding"] for r in rows] == [1, 2] and rf == 3 + 4
    lines = rfm.format_receptive_field(rows).splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[2].split()[2:5] == ["3", "1", "1"]  # k, s, p


@pytest.mark.parametrize("model, message", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2)), r"at '1' \(Upsample\): its effect .* not known"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(4)),
     r"at '1' \(AdaptiveAvgPool2d\): .* 26 to 4 .* unequal"),
    (nn.Sequential(nn.Conv2d(1, 2, (3, 1), padding=(1, 0))), r"at '0' \(Conv2d\): kernel_size=\(3, 1\) differs"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(26, 4)), r"at '1' \(Linear\)"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular")),
     r"at '0' \(Conv2d\): padding_mode='circular'"),
], ids=["upsample", "uneven-adaptive-pool", "non-square-kernel", "linear-on-a-map", "circular-padding"])
def test_unknown_or_inexact_operations_are_refused_by_name(model, message):
    with pytest.raises(rfm.ReceptiveFieldError, match=r"^Sequential: the receptive field is not computed " + message):
        rfm.receptive_field(model)


class ConvThen(nn.Module):
    """A 3x3 conv (1 -> 4 channels), then `then(input, the conv's output)`: what a test puts after a layer."""

    def __init__(self, then):
        super().__init__()
        self.conv, self.then = nn.Conv2d(1, 4, 3), then

    def forward(self, x):
        return self.then(x, self.conv(x))


def test_broadcast_merge_is_refused():
    gate = ConvThen(lambda x, y: y * torch.sigmoid(F.adaptive_avg_pool2d(y, 1)))  # squeeze-and-excitation
    with pytest.raises(rfm.ReceptiveFieldError, match=r"'mul' \(mul\): it combines maps of different sizes"):
        rfm.receptive_field(gate)


def test_untraceable_model_is_refused_with_the_reason():
    branchy = ConvThen(lambda x, y: y if x.mean() > 0 else x)
    with pytest.raises(rfm.ReceptiveFieldError, match=r"ConvThen cannot be traced by torch.fx, .*: line \d+ of "
                       r"test_receptive_field.py, `branchy = .*x.mean\(\) > 0.*`, "
                       r"uses a tensor in Python control flow"):
        rfm.receptive_field(branchy)


class Sized(nn.Module):
    """A conv, and the shape-dependent code a learner writes around it (an unbatched image gets a batch)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        if x.dim() == 3:
            x = x.unsqueeze(0)
        return self.conv(x)


class Counted(Sized):
    def forward(self, x):
        return self.conv(x).view(len(x), -1)


def test_len_and_dim_are_refused_naming_what_they_are():
    """len(x) is no control flow at all, and x.dim() is a shape, not a value: the refusal quotes the line."""
    with pytest.raises(rfm.ReceptiveFieldError, match=r"`return self.conv\(x\).view\(len\(x\), -1\)`, calls len\(\) "
                       r"on a tensor, .*x.size\(0\) or x.shape\[0\]") as counted:
        rfm.receptive_field(Counted())
    assert "control flow" not in str(counted.value)
    with pytest.raises(rfm.ReceptiveFieldError, match=r"`if x.dim\(\) == 3:`, uses a tensor in Python control flow"):
        rfm.receptive_field(Sized())


def test_a_forward_that_fails_on_the_input_gives_the_cause_in_the_message(capfd):
    """A Linear layer fed an unflattened map: the cause, not ShapeProp's wrapper, in the message (and no traceback
    printed beside it)."""
    model = nn.Sequential(nn.Conv2d(1, 16, 28), nn.Linear(16, 10))
    with pytest.raises(rfm.ReceptiveFieldError, match=r"^Sequential does not run on a zero input of shape "
                       r"\(1, 1, 28, 28\) at '1' \(Linear\): RuntimeError: mat1 and mat2 shapes cannot be multiplied "
                       r"\(16x1 and 16x10\)$"):
        utils.receptive_field(model)
    assert "Traceback" not in capfd.readouterr().err


def test_channel_shuffle_keeps_the_field():
    shuffle = ConvThen(lambda x, y: y.reshape(-1, 2, 2, 26, 26).transpose(1, 2).reshape(-1, 4, 26, 26).amax((2, 3)))
    assert rf_by_layer(shuffle) == {"conv": 3, "amax": 28}


@pytest.mark.parametrize("name", ["step1", "step2", "step3", "golf"])
def test_committed_notebooks_print_the_tables_and_records_the_numbers_this_tool_gives(name):
    """The project's own models: the table each executed notebook shows, and the RF its results record."""
    nb = nbformat.read(next(REPO_ROOT.glob(f"notebooks/**/{name}.ipynb")), as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    for run in assignment.runs_of(load_record(RESULTS_DIR / f"{name}.json")):
        rows, rf = rfm.receptive_field(make_model(run["model"]))
        assert rfm.format_receptive_field(rows) in printed and rf == run["receptive_field"]
