import pytest
from torch import nn

from era_s7 import receptive_field as rfm
from era_s7.model import MODELS, make_model


def reference_model1():
    """The seed repository's Model1 (conv-conv-pool-conv-conv-pool-conv-GAP): its RF after GAP is 48, not the 32 it states."""
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
        assert (m["receptive_field"]["value"], m["effective_stride"]["value"]) == (row["kernel"], row["stride"]), row["layer"]
        if not row["type"].startswith("Adaptive"):  # torchscan gives GAP a nominal negative padding; RF ignores it
            assert m["effective_padding"]["value"] == row["padding"], row["layer"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_see_the_whole_digit(name):
    rows, rf = rfm.receptive_field(make_model(name))
    assert rf >= 28 and rows[-1]["size_out"] == 1
    assert "layer" in rfm.format_receptive_field(rows)


def test_summary_runs_on_cpu():
    text = rfm.summary(make_model("Model_3"))
    assert "Total params" in text and f"{rfm.count_parameters(make_model('Model_3')):,}" in text
