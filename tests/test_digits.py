"""Your own digit: the MNIST-style preprocessing (era_s7/digits.py) and the command (era_s7/predict.py)."""
import numpy as np
import pytest
import torch
from PIL import Image

from era_s7 import digits, utils
from era_s7.data import MNIST_MEAN, MNIST_STD
from era_s7.predict import load_model, main


def ink_box(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of the smallest box holding the nonzero pixels."""
    ys, xs = np.nonzero(image)
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def paper(h=200, w=240, shapes=()) -> np.ndarray:
    """A white page (h, w) uint8 with black filled rectangles (top, left, height, width)."""
    page = np.full((h, w), 255, np.uint8)
    for top, left, height, width in shapes:
        page[top:top + height, left:left + width] = 0
    return page


@pytest.mark.parametrize("shapes", [
    [(30, 150, 60, 20)],                          # a bar, off-centre
    [(20, 20, 90, 70)],                           # a block in a corner
    [(40, 40, 100, 12), (40, 40, 12, 80)],        # an L: mass far from the box's centre
    [(10, 100, 30, 30), (120, 180, 50, 15)],      # two blobs, unequal
])
def test_centre_of_mass_lands_at_the_centre(shapes):
    image = digits.mnist_style(digits.load_grey(paper(shapes=shapes)))
    rows, cols = np.indices(image.shape)
    cy, cx = (rows * image).sum() / image.sum(), (cols * image).sum() / image.sum()
    assert abs(cy - 13.5) <= 0.5 and abs(cx - 13.5) <= 0.5, (cy, cx)
    assert max(ink_box(image)) == digits.FIT


def test_light_and_dark_backgrounds_give_the_same_image():
    for image, _ in digits.rendered_digits(10, seed=3):
        grey = np.asarray(image.convert("L"))
        light = digits.mnist_style(digits.load_grey(grey))
        dark = digits.mnist_style(digits.load_grey(255 - grey))
        assert np.abs(light - dark).max() < 1e-6


@pytest.mark.parametrize("h,w,expected", [(40, 120, (7, 20)), (100, 25, (20, 5)), (60, 60, (20, 20))])
def test_aspect_ratio_is_kept(h, w, expected):
    image = digits.mnist_style(digits.load_grey(paper(shapes=[(50, 60, h, w)])))
    assert ink_box(image) == expected  # 20 * 40 / 120 = 6.67 -> 7; 20 * 25 / 100 = 5


def test_colour_alpha_and_formats_agree(tmp_path):
    """The same drawing as grey PNG, colour JPEG, palette PNG and transparent PNG: (nearly) the same 28x28."""
    image = digits.render_digit(4, "DejaVuSans-Bold.ttf", 120, (30, 10))
    reference = digits.mnist_style(digits.load_grey(image))
    ink = np.asarray(image.convert("L")) < 128
    transparent = np.zeros((*ink.shape, 4), np.uint8)
    transparent[ink] = (0, 0, 90, 255)  # dark blue ink; everything else transparent: counts as white paper
    variants = {"grey.png": image.convert("L"), "colour.jpg": image.convert("RGB"), "palette.png": image.convert("P"),
                "transparent.png": Image.fromarray(transparent, "RGBA")}
    for name, variant in variants.items():
        variant.save(tmp_path / name)
        seen = digits.mnist_style(digits.load_grey(tmp_path / name))
        assert np.abs(seen - reference).mean() < 0.03, name  # JPEG artefacts and a hard-edged copy: close, not equal


@pytest.mark.parametrize("fill", [255, 0, 128, (200, 30, 30)])
def test_an_image_without_ink_is_refused_naming_the_file(tmp_path, fill):
    path = tmp_path / "empty page.png"
    Image.new("RGB", (64, 48), fill if isinstance(fill, tuple) else (fill,) * 3).save(path)
    with pytest.raises(ValueError, match="empty page.png: no ink found"):
        digits.to_input(path)


def test_model_input_is_normalised_like_mnist():
    x = digits.to_input(digits.render_digit(3))
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert x.min().item() == pytest.approx(-MNIST_MEAN / MNIST_STD, abs=1e-6)  # the black frame around the ink
    assert x.max().item() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD, abs=1e-6)  # the strongest ink


def naive_input(image: Image.Image) -> torch.Tensor:
    """What a new user tries first: resize to 28x28, scale to [0, 1], normalise."""
    x = np.asarray(image.convert("L").resize((28, 28)), np.float32) / 255
    return torch.from_numpy((x - MNIST_MEAN) / MNIST_STD).view(1, 1, 28, 28)


def test_step3_reads_rendered_digits_only_after_mnist_style_preprocessing():
    model = load_model("Model_3")
    rendered = digits.rendered_digits(220, seed=0)
    labels = np.array([label for _, label in rendered])
    with torch.no_grad():
        mnist_style = np.array([digits.classify(image, model).digit for image, _ in rendered])
        naive = np.array([model(naive_input(image)).argmax().item() for image, _ in rendered])
    right, naive_right = int((mnist_style == labels).sum()), int((naive == labels).sum())
    print(f"rendered DejaVu digits read by step 3's weights: {right}/220 MNIST-style, {naive_right}/220 naive")
    assert right >= 0.95 * 220
    assert naive_right <= 0.5 * 220


def test_utils_reexports_the_user_facing_functions():
    for name in ("classify", "to_input", "mnist_style", "load_grey", "render_digit", "plot_your_digit"):
        assert callable(getattr(utils, name))


def test_the_command_prints_one_line_per_image_and_refuses_a_blank(tmp_path, capsys):
    digits.render_digit(7, "DejaVuSerif.ttf", 110, (-50, 20)).save(tmp_path / "seven.png")
    Image.fromarray(255 - np.asarray(digits.render_digit(2).convert("L"))).save(tmp_path / "two-on-black.jpg")
    Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
    images = [str(tmp_path / n) for n in ("seven.png", "two-on-black.jpg", "blank.png")]
    assert main(images + ["--model", "Model_3"]) == 1  # the blank fails; the others are still classified
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    for line, (path, digit) in zip(lines, [(images[0], 7), (images[1], 2)]):
        file, predicted, p, _, runner_up, p2 = line.split()
        assert (file, int(predicted)) == (path, digit)
        assert float(p[2:]) > float(p2[2:]) and int(runner_up) != digit
    assert "blank.png: no ink found" in err


def test_the_command_names_a_missing_weights_file(tmp_path, capsys):
    assert main([str(tmp_path / "x.png"), "--weights", str(tmp_path / "none.pt")]) == 2
    assert "none.pt" in capsys.readouterr().err
