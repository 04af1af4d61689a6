"""Your own digit: the MNIST-style preprocessing (era_s7/digits.py) and the command (era_s7/tools/predict.py)."""
import numpy as np
import pytest
import torch
from PIL import Image

from era_s7 import digits, utils
from era_s7.data import MNIST_MEAN, MNIST_STD
from era_s7.tools.predict import load_model, main


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


def test_the_notebooks_reach_the_digit_functions_through_utils():
    """What step 3's notebook calls; the rest of era_s7.digits (to_input, mnist_style, load_grey) is imported
    from it."""
    for name in ("classify", "render_digit", "plot_your_digit"):
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


# ---------------------------------------------------------------- people's own images, kind by kind (stage A)
@pytest.fixture(scope="module")
def step3():
    return load_model("Model_3")


def read_right(model, images) -> int:
    """How many of the (image, digit) pairs `model` reads right through the whole pipeline (`classify`)."""
    return sum(digits.classify(image, model).digit == digit for image, digit in images)


@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_thin_pen_strokes_on_a_large_page_read_like_mnist_strokes(step3, width):
    """A digit drawn with a 1-5 px pencil, ~400 px tall on a 1152x648 page: without step 6 the fit leaves a faint
    ghost (brightest pixel 0.05-0.5; 1 px read 1/10 right). Its strokes must be full brightness and as wide as
    MNIST's (10th-90th percentile of stroke_width: 1.66-2.93), and read >= 9/10."""
    pages = [(digits.pen_digit(d, width, 400, (1152, 648), (376, 124)), d) for d in range(10)]
    for page, _ in pages[:4]:
        seen = digits.mnist_style(digits.load_grey(page))
        assert seen.max() == 1 and 1.6 <= digits.stroke_width(seen) <= 3.0, digits.stroke_width(seen)
    assert read_right(step3, pages) >= 9


def test_thick_strokes_are_not_thickened():
    """Step 6 only brightens and dilates what is thinner than MNIST: the pad's 20 px pen at 276 px is left alone."""
    for d in range(10):
        grey = digits.load_grey(digits.pen_digit(d))
        ink = digits.ink_only(grey)
        ys, xs = np.nonzero(ink > digits.INK_LEVEL)
        crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        patch = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(
            digits.fitted_size(*crop.shape)[::-1], Image.BOX))
        assert np.array_equal(digits.as_strokes(patch), patch / patch.max()) and patch.max() == 1, d


def shadowed(image: Image.Image, depth: float, direction: str, seed: int = 0) -> Image.Image:
    """A photo of `image` (dark ink on white) on paper 0.92 bright that falls by `depth` across the page in a
    soft shadow from `direction` ("right", "left", "bottom"), with a little noise, as 8-bit grey."""
    g = np.asarray(image.convert("L"), np.float64) / 255
    rows, cols = np.indices(g.shape)
    along = {"right": cols / g.shape[1], "left": 1 - cols / g.shape[1], "bottom": rows / g.shape[0]}[direction]
    light = 0.92 - depth * np.clip(along * 1.5 - 0.5, 0, 1)
    photo = (0.15 + 0.85 * g) * light + np.random.default_rng(seed).normal(0, 0.01, g.shape)
    return Image.fromarray(np.round(np.clip(photo, 0, 1) * 255).astype(np.uint8))


@pytest.mark.parametrize("depth, direction", [(0.2, "right"), (0.3, "right"), (0.4, "right"), (0.5, "left"),
                                              (0.4, "bottom")])
def test_a_page_partly_in_shadow_is_read_as_paper_not_ink(step3, depth, direction):
    """Without stage A.e a shadow 0.3 deep (paper 0.92 -> 0.62) made every digit an 8."""
    photos = [(shadowed(digits.render_digit(d, "DejaVuSans.ttf", 140, (0, -20), (400, 300)), depth, direction), d)
              for d in range(10)]
    assert read_right(step3, photos) >= 9


def test_evenly_lit_drawings_pass_stage_a_unchanged():
    """The web page has no stage A: on what its pad makes (opaque, 8-bit, white paper) stage A must be step 1."""
    images = [image for image, _ in digits.rendered_digits(20, seed=1)]
    images += [digits.pen_digit(d, 20, size) for d in range(10) for size in (170, 276)]
    for image in images:
        assert np.array_equal(digits.load_grey(image), digits.drawing_grey(np.asarray(image.convert("RGBA"))))


@pytest.mark.parametrize("ink, paper", [(6000, 56000), (0, 65535), (1000, 40000)])
def test_a_16_bit_scan_is_read_at_its_depth(tmp_path, step3, ink, paper):
    """PNG mode I;16: converting to 8 bits clips every value above 255 (all white: "no ink found")."""
    right = 0
    for d in range(10):
        g = np.asarray(digits.render_digit(d, "DejaVuSans.ttf", 150, canvas=(280, 280)).convert("L"), np.float64) / 255
        Image.fromarray((ink + g * (paper - ink)).astype(np.uint16)).save(tmp_path / "scan.png")
        with Image.open(tmp_path / "scan.png") as opened:
            assert opened.mode == "I;16"
        right += digits.classify(tmp_path / "scan.png", step3).digit == d
    assert right >= 9
    assert digits.classify((ink + g * (paper - ink)).astype(np.uint16), step3).digit == 9  # the array, as uint16


def test_white_ink_on_a_transparent_layer_is_the_drawing(tmp_path):
    """A drawing app's export: white (or any one colour) ink whose shape is only in the alpha channel, as LA or
    RGBA, with the transparent pixels white or black: the same 28x28 as dark ink on white paper."""
    image = digits.render_digit(7, "DejaVuSans.ttf", 150, canvas=(280, 280))
    alpha = 255 - np.asarray(image.convert("L"))  # the glyph, anti-aliased
    reference = digits.mnist_style(digits.load_grey(image))
    variants = {"la.png": Image.merge("LA", (Image.new("L", image.size, 255), Image.fromarray(alpha)))}
    for name, under in (("rgba-black.png", 0), ("rgba-white.png", 255)):
        rgba = np.zeros((*alpha.shape, 4), np.uint8)
        rgba[..., :3] = np.where(alpha[..., None] > 0, 255, under)
        rgba[..., 3] = alpha
        variants[name] = Image.fromarray(rgba, "RGBA")
    for name, variant in variants.items():
        variant.save(tmp_path / name)
        seen = digits.mnist_style(digits.load_grey(tmp_path / name))
        assert np.abs(seen - reference).max() < 0.02, name


def test_a_large_photo_is_reduced_at_decode(tmp_path, step3):
    """A 12 MP phone photo (4000x3000 JPEG) held whole as 64-bit integers took 1.38 GB and 9.4 s: the JPEG is
    decoded at half scale (Image.draft), and arrays of that size are all that is held. tracemalloc counts NumPy's
    memory, not Pillow's (a 2000x1500 RGB decode: 9 MB)."""
    import time
    import tracemalloc

    photo = Image.new("L", (4000, 3000), 225)
    photo.paste(digits.render_digit(4, "DejaVuSans.ttf", 1400, canvas=(1200, 1600)).convert("L")
                .point(lambda v: 35 + v * 190 // 255), (1400, 600))
    photo.convert("RGB").save(tmp_path / "phone.jpg", quality=90)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        grey = digits.load_grey(tmp_path / "phone.jpg")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    seconds = time.perf_counter() - start
    print(f"12 MP JPEG: grey {grey.shape}, NumPy peak {peak / 2**20:.0f} MB, {seconds:.2f} s")
    assert grey.shape == (1500, 2000)  # decoded at 1/2: Image.reduce after a full decode would give 1000x1333
    assert peak < 200 * 2**20 and seconds < 5
    assert digits.classify(tmp_path / "phone.jpg", step3).digit == 4
    Image.new("L", (2500, 2100), 255).save(tmp_path / "big.png")  # not a JPEG: Image.reduce(2) after decoding
    assert digits.load_grey(tmp_path / "big.png").shape == (1050, 1250)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims width x height pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_one_bad_file_is_one_error_line_and_the_others_are_still_read(tmp_path, capsys):
    """A header claiming 200 megapixels (Pillow's DecompressionBombError), a file that is not an image and a
    truncated PNG among good files: one `error: FILE: reason` line each, exit status 1, every good file read."""
    digits.render_digit(3).save(tmp_path / "three.png")
    digits.render_digit(8).save(tmp_path / "eight.jpg")
    (tmp_path / "claims_200mp.png").write_bytes(png_claiming(16320, 12240))
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes((tmp_path / "three.png").read_bytes()[:300])
    names = ["claims_200mp.png", "three.png", "notes.png", "cut.png", "eight.jpg"]
    assert main([str(tmp_path / n) for n in names]) == 1
    out, err = capsys.readouterr()
    assert [line.split()[:2] for line in out.splitlines()] == [[str(tmp_path / "three.png"), "3"],
                                                              [str(tmp_path / "eight.jpg"), "8"]]
    errors = err.splitlines()
    assert [line.split(": ")[1] for line in errors] == [str(tmp_path / n) for n in ("claims_200mp.png", "notes.png",
                                                                                  "cut.png")]
    assert all(line.startswith("error: ") for line in errors)
    assert "pixels" in errors[0] and "limit" in errors[0]


@pytest.mark.parametrize("array, message", [
    (np.full((40, 40), 255.0), r"float array must hold values in \[0, 1\].* 255: divide it by 255"),
    (np.full((40, 40), np.nan), r"float array must hold values in \[0, 1\].* nan"),
    (np.full((40, 40), -0.5), r"float array must hold values in \[0, 1\].* -0.5 to -0.5$"),
    (np.full((40, 40), 300, np.int64), r"dtype int64 with values 300 to 300; give uint8"),
    (np.zeros((2, 40, 40)), r"shape \(2, 40, 40\); give \(H, W\) grey"),
], ids=["float-0-255", "nan", "negative", "int-above-255", "channels-first"])
def test_arrays_out_of_range_are_refused_saying_what_to_give(array, message):
    with pytest.raises(ValueError, match=message):
        digits.load_grey(array)


def test_float_and_integer_arrays_in_range_read_as_the_image():
    grey = np.asarray(digits.render_digit(5).convert("L"))
    reference = digits.load_grey(grey)
    assert np.array_equal(digits.load_grey(grey / 255), reference)
    assert np.array_equal(digits.load_grey(grey.astype(np.int64)), reference)


def test_a_16_bit_image_beyond_16_bits_is_refused():
    with pytest.raises(ValueError, match=r"an image of mode I with values 0 to 70000; only 16-bit values"):
        digits.load_grey(Image.fromarray(np.array([[0, 70000]], np.int32), "I"))


def test_foreign_weights_say_what_weights_to_give(tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 3).state_dict(), tmp_path / "other.pt")
    assert main([str(tmp_path / "x.png"), "--weights", str(tmp_path / "other.pt")]) == 2
    err = capsys.readouterr().err
    assert "other.pt" in err and "--weights takes a state_dict of Model_3" in err and "--model" in err
    assert "notebook" not in err


@pytest.mark.parametrize("orientation, turn", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
                                               (3, Image.Transpose.ROTATE_180)])
def test_a_photo_taken_sideways_is_turned_upright_by_its_exif(tmp_path, orientation, turn):
    """A phone stores the pixels as the sensor saw them and says in EXIF how to turn them: the digit upright."""
    upright = digits.render_digit(7, "DejaVuSans-Bold.ttf", 120, canvas=(240, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(turn).save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    seen = digits.mnist_style(digits.load_grey(tmp_path / "sideways.jpg"))
    assert np.abs(seen - digits.mnist_style(digits.load_grey(upright))).mean() < 0.03
