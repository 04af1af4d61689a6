"""Your own digit as the model's input: a photo, a scan or a drawing, made to look like MNIST.

A photo of a digit is dark ink on light paper, hundreds of pixels wide and off-centre; MNIST is light ink on
black, the ink fitted into 20x20 px and its centre of mass at the centre of 28x28 px. Resizing the photo to
28x28 is not enough (the model then sees something it was never trained on): `mnist_style` does what MNIST
itself was made with. This is the one definition of that preprocessing; web/app.js mirrors it step by step
(tests/test_web.py checks that both give the same 28x28 for the same canvas image).

The preprocessing (`grey` is H x W, 0 = black, 1 = white; arithmetic in float64 unless said otherwise):
  1. grey: Pillow's ITU-R 601 luma of the RGB, L = (19595 R + 38470 G + 7471 B + 32768) >> 16 (8-bit integers),
     then grey = L/255 * a + (1 - a) with a = alpha/255: transparent pixels count as white paper.
  2. Background: the median of the border pixels (first and last row and column). Above 0.5 the background is
     light and the image is inverted, x = 1 - grey; else x = grey. Ink is now bright, as in MNIST.
  3. Contrast: bg = the border median of x, top = max(x). If top - bg < NO_INK_CONTRAST there is no ink:
     ValueError naming the image. Else x = clip((x - bg) / (top - bg), 0, 1): paper 0, the darkest ink 1.
  4. Crop to the ink: the smallest box holding every pixel with x > INK_LEVEL.
  5. Fit the box's longer side into FIT = 20 px keeping the aspect ratio: the box (h, w) becomes
     (nh, nw) = (floor(20 h / L + 0.5), floor(20 w / L + 0.5)), L = max(h, w), each at least 1, resized as
     float32 with Pillow's BOX filter (Image.resize(..., Image.BOX) in mode "F": each output pixel is the mean
     of the input pixels whose centres fall inside its footprint; horizontal pass, then vertical).
  6. Centre of mass (cy, cx) of the resized patch, in pixel indices, summed pixel by pixel in row-major order;
     the patch is placed at row floor(14 - cy), column floor(14 - cx) of a black 28x28 frame (so its centre of
     mass lands within 0.5 px of the frame's centre, 13.5), clamped so the patch stays inside the frame.
  7. `to_input` then normalises with MNIST's mean and std: (x - MNIST_MEAN) / MNIST_STD.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .data import MNIST_MEAN, MNIST_STD

FRAME, FIT = 28, 20        # MNIST: 28x28 images, the ink fitted into 20x20
NO_INK_CONTRAST = 0.2      # step 3: less contrast than this between the ink and the background is no ink
INK_LEVEL = 0.3            # step 4: a pixel is ink when its stretched value is above this
LUMA = (19595, 38470, 7471)  # step 1: Pillow's convert("L") weights, in 1/65536


class NoInkError(ValueError):
    """The image has no ink (blank, or all one colour): nothing to classify."""


@dataclass
class Prediction:
    """What `classify` returns: the digit, the class probabilities (10,) and the 28x28 image in [0, 1]
    (ink 1) that the model saw, before normalisation."""
    name: str
    digit: int
    probs: np.ndarray
    image: np.ndarray

    @property
    def runner_up(self) -> int:
        return int(np.argsort(self.probs)[-2])

    def __str__(self) -> str:
        """One line: the image's name, the digit, its probability, the runner-up and its probability."""
        return (f"{self.name}  {self.digit}  p={self.probs[self.digit]:.3f}  "
                f"runner-up {self.runner_up} p={self.probs[self.runner_up]:.3f}")


def load_grey(source) -> np.ndarray:
    """Step 1: an image file (PNG, JPEG, ... any size), a PIL image or an array as grey (H, W) float64 in [0, 1].

    An array is (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; uint8 (0-255) or float in [0, 1] (rounded to
    8 bits, as a file would be). A photo's EXIF orientation is applied. Transparent pixels count as white."""
    if isinstance(source, np.ndarray):
        array = source if source.dtype == np.uint8 else np.round(np.clip(source, 0, 1) * 255).astype(np.uint8)
        image = Image.fromarray(array)
    elif isinstance(source, Image.Image):
        image = source
    else:
        with Image.open(source) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    rgba = np.asarray(image.convert("RGBA"), dtype=np.int64)
    luma = (rgba[..., 0] * LUMA[0] + rgba[..., 1] * LUMA[1] + rgba[..., 2] * LUMA[2] + 32768) >> 16
    alpha = rgba[..., 3] / 255
    return luma / 255 * alpha + (1 - alpha)


def border_median(x: np.ndarray) -> float:
    """The median of the pixels on the image's border (each counted once)."""
    if min(x.shape) < 3:
        return float(np.median(x))
    return float(np.median(np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])))


def ink_only(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """Steps 2-3: grey (H, W) in [0, 1] -> ink (H, W) in [0, 1], background 0 and the strongest ink 1.

    Raises NoInkError (a ValueError) naming `name` when the ink's contrast is below NO_INK_CONTRAST."""
    x = 1 - grey if border_median(grey) > 0.5 else grey
    bg, top = border_median(x), float(x.max())
    if top - bg < NO_INK_CONTRAST:
        raise NoInkError(f"{name}: no ink found (contrast {top - bg:.3f} between the darkest stroke and the "
                         f"background, below {NO_INK_CONTRAST}). Give an image of one digit, written dark on "
                         "light paper or light on dark, filling a good part of the picture.")
    return np.clip((x - bg) / (top - bg), 0, 1)


def fitted_size(h: int, w: int) -> tuple[int, int]:
    """Step 5: (nh, nw), the box (h, w) with its longer side scaled to FIT, rounded half up, each >= 1."""
    longer = max(h, w)
    return max(1, (2 * FIT * h + longer) // (2 * longer)), max(1, (2 * FIT * w + longer) // (2 * longer))


def centre_of_mass(patch: np.ndarray) -> tuple[float, float]:
    """Step 6: (row, column) centre of mass in pixel indices, summed one pixel at a time in row-major order
    (as web/app.js does, so that both sides round alike)."""
    total = rows = cols = 0.0
    for (i, j), v in np.ndenumerate(patch.astype(np.float64)):
        total += v
        rows += i * v
        cols += j * v
    return rows / total, cols / total


def mnist_style(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """Steps 2-6: grey (H, W) in [0, 1] (as from `load_grey`) -> (28, 28) float32 in [0, 1], ink 1, MNIST-style.

    Raises NoInkError (a ValueError) naming `name` when there is no ink."""
    ink = ink_only(grey, name)
    ys, xs = np.nonzero(ink > INK_LEVEL)
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    nh, nw = fitted_size(*crop.shape)
    patch = np.asarray(Image.fromarray(crop.astype(np.float32)).resize((nw, nh), Image.BOX))
    cy, cx = centre_of_mass(patch)
    top = min(max(math.floor(FRAME / 2 - cy), 0), FRAME - nh)
    left = min(max(math.floor(FRAME / 2 - cx), 0), FRAME - nw)
    frame = np.zeros((FRAME, FRAME), np.float32)
    frame[top:top + nh, left:left + nw] = patch
    return frame


def to_input(source, name: str | None = None) -> torch.Tensor:
    """An image file, PIL image or array -> the model's input (1, 1, 28, 28) float32, normalised like MNIST.

    Raises NoInkError (a ValueError) naming the file when the image has no ink."""
    return normalised(mnist_style(load_grey(source), name or _name_of(source)))


def normalised(image: np.ndarray) -> torch.Tensor:
    """Step 7: a (28, 28) image in [0, 1] -> (1, 1, 28, 28) float32, (x - MNIST_MEAN) / MNIST_STD."""
    return torch.from_numpy((image - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)).view(1, 1, FRAME, FRAME)


def classify(source, model: torch.nn.Module, name: str | None = None) -> Prediction:
    """Classify one image (a file, PIL image or array) of a digit with `model`: the digit, its class
    probabilities and the 28x28 image the model saw. Raises NoInkError (a ValueError) for an image with no ink."""
    name = name or _name_of(source)
    image = mnist_style(load_grey(source), name)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(normalised(image)).float(), 1)[0].numpy()
    return Prediction(name, int(probs.argmax()), probs, image)


def _name_of(source) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"the {type(source).__name__} given"


# ---------------------------------------------------------------- digits to try it on
FONTS = tuple(f"DejaVu{family}{style}.ttf" for family in ("Sans", "Serif", "SansMono")
              for style in ("", "-Bold", "-Oblique" if family != "Serif" else "-Italic",
                            "-BoldOblique" if family != "Serif" else "-BoldItalic"))


def render_digit(digit: int, font: str = "DejaVuSans.ttf", size: int = 120, offset: tuple[int, int] = (0, 0),
                 canvas: tuple[int, int] = (240, 200)) -> Image.Image:
    """A digit as a user's scan would show it: black ink in `font` (a DejaVu font matplotlib ships) on a white
    RGB canvas (width, height) px, the glyph `size` px tall, its centre moved by `offset` (dx, dy) px."""
    image = Image.new("RGB", canvas, "white")
    draw = ImageDraw.Draw(image)
    import matplotlib  # its fonts; imported here, as only this needs it

    glyph = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / font), size)
    centre = (canvas[0] / 2 + offset[0], canvas[1] / 2 + offset[1])
    draw.text(centre, str(digit), fill="black", font=glyph, anchor="mm")
    return image


def rendered_digits(n: int, seed: int = 0) -> list[tuple[Image.Image, int]]:
    """n (image, label) pairs: digits 0-9 in turn, each in a random DejaVu font and size (60-140 px) at a
    random offset that keeps it inside a white 240x200 canvas."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        size = int(rng.integers(60, 141))
        room = (200 - size) // 2  # the glyph's height is about `size`, its width about 0.65 of it
        offset = (int(rng.integers(-room - 20, room + 21)), int(rng.integers(-room, room + 1)))
        out.append((render_digit(i % 10, FONTS[rng.integers(len(FONTS))], size, offset), i % 10))
    return out
