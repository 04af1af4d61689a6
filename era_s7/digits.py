"""Your own digit as the model's input: a photo, a scan or a drawing, made to look like MNIST.

A photo of a digit is dark ink on light paper, hundreds of pixels wide and off-centre; MNIST is light ink on
black, the ink fitted into 20x20 px and its centre of mass at the centre of 28x28 px. Resizing the photo to
28x28 is not enough (the model then sees something it was never trained on): `mnist_style` does what MNIST
itself was made with. Two stages, `to_input(source) = normalised(mnist_style(load_grey(source)))`:

Stage A, photo clean-up: Python only (`load_grey`). What a photo or a file needs and a drawn canvas never does;
on an opaque 8-bit image on evenly lit paper (what the web page's pad is) it is step 1 alone, unchanged.
  a. Open: a file's EXIF orientation is applied; a file whose header claims more than Pillow's limit of pixels
     (Image.MAX_IMAGE_PIXELS: a decompression bomb, or a photo too large) is refused with a ValueError naming it.
     An array is (H, W), (H, W, 3) RGB or (H, W, 4) RGBA: uint8 (0-255), uint16 (0-65535) or float in [0, 1]
     (rounded to 8 bits, as a file would be); anything else is a ValueError saying what it is and what to give.
  b. Size: an image whose longer side is at least 2 * MAX_SIDE px is reduced by an integer factor to a longer side
     of MAX_SIDE-2 MAX_SIDE px, at decode where the format allows (JPEG: Image.draft decodes at 1/2, 1/4 or 1/8
     scale), else with Image.reduce (the mean of each factor x factor block). A 12 MP photo is decoded at 2000x1500.
  c. Bit depth: a 16-bit image (modes I;16, I) is read as grey = value / 65535, never clipped to 8 bits.
  d. Alpha: step 1 composites a transparent image on white paper; when that leaves no ink (white ink on a
     transparent layer, where the alpha channel is the drawing), it is composited on black instead: of the two,
     the one with the greater ink contrast (`contrast`) is kept.
  e. Light: on light paper the paper's brightness is estimated (the grey image reduced to LIGHT_SIDE px on its
     longer side with Pillow's BOX filter, then a closing: MaxFilter then MinFilter of LIGHT_WINDOW px, which
     removes the ink; resized back with BILINEAR) and the image divided by it, so that a shadow is paper, not
     ink. When the estimate varies by less than LIGHT_EVEN the light is even and the image is left as it is.

Stage B, the MNIST framing: the one definition shared with the web page. web/app.js mirrors it step by step
(tests/test_web.py checks that both give the same 28x28 for the same canvas image). `grey` is H x W, 0 = black,
1 = white; arithmetic in float64 unless said otherwise:
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
  6. Strokes as MNIST's, full brightness and about 2 px wide (thin pen strokes otherwise fade to a grey ghost
     in the fit): the patch is divided by its maximum (float32), then, when its stroke width (`stroke_width`:
     2 x the pixels above INK_LEVEL / their boundary edges, the patch's edge included) is below STROKE_MIN,
     dilated once with Pillow's MaxFilter(3) (each pixel the maximum of its 3x3 neighbourhood within the patch).
  7. Centre of mass (cy, cx) of the patch, in pixel indices, summed pixel by pixel in row-major order;
     the patch is placed at row floor(14 - cy), column floor(14 - cx) of a black 28x28 frame (so its centre of
     mass lands within 0.5 px of the frame's centre, 13.5), clamped so the patch stays inside the frame.
  8. `to_input` then normalises with MNIST's mean and std: (x - MNIST_MEAN) / MNIST_STD.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from .data import MNIST_MEAN, MNIST_STD

FRAME, FIT = 28, 20        # MNIST: 28x28 images, the ink fitted into 20x20
NO_INK_CONTRAST = 0.2      # step 3: less contrast than this between the ink and the background is no ink
INK_LEVEL = 0.3            # step 4: a pixel is ink when its stretched value is above this
LUMA = (19595, 38470, 7471)  # step 1: Pillow's convert("L") weights, in 1/65536
# step 6: MNIST's test digits have stroke_width 1.66 / 2.12 / 2.93 (10th / 50th / 90th percentile); a patch
# thinner than the 10th percentile is dilated (which adds about 2 px)
STROKE_MIN = 1.6
MAX_SIDE = 1024            # stage A.b: a longer side of 2 * MAX_SIDE px or more is reduced at decode
LIGHT_SIDE, LIGHT_WINDOW, LIGHT_EVEN = 32, 7, 1 / 64  # stage A.e: the paper's light, estimated at 32 px
DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # stage A.c: 16-bit modes, read as value / 65535


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


# ---------------------------------------------------------------- stage A: photo clean-up (Python only)
def load_grey(source, name: str | None = None) -> np.ndarray:
    """Stage A and step 1: an image file (PNG, JPEG, ... any size), a PIL image or an array (stage A.a says which) as
    grey (H, W) float64 in [0, 1], 0 black, 1 white; H and W are the image's, or reduced (stage A.b). Raises
    ValueError naming `name` (default: the file) for an array or file that cannot be read as an image (stage A.a),
    OSError for a file that is not an image."""
    name = name or _name_of(source)
    image = open_image(source, name)
    if image.mode in DEEP_MODES:  # stage A.c, before the reduction (Image.reduce does not take 16-bit modes)
        values = np.asarray(image, np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(f"{name}: an image of mode {image.mode} with values {values.min():g} to {values.max():g}; "
                             "only 16-bit values (0-65535) are read")
        image = Image.fromarray((values / 65535).astype(np.float32), "F")
    elif image.mode != "F":
        image = image.convert("RGBA")
    factor = max(image.size) // MAX_SIDE
    if factor >= 2:
        image = image.reduce(factor)
    grey = np.asarray(image, np.float64) if image.mode == "F" else drawing_grey(np.asarray(image))
    return even_light(grey)


def open_image(source, name: str) -> Image.Image:
    """Stage A.a-b: a file (its EXIF orientation applied; a JPEG decoded at reduced scale when large), a PIL
    image, or an array checked as stage A.a says, as a PIL image."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return image_of_array(source, name)
    try:
        with Image.open(source) as opened:
            if max(opened.size) >= 2 * MAX_SIDE:  # JPEG: decoded at 1/2, 1/4 or 1/8 scale; others: no-op
                opened.draft(opened.mode, tuple(s * MAX_SIDE // max(opened.size) for s in opened.size))
            image = ImageOps.exif_transpose(opened)
            image.load()
    except Image.DecompressionBombError as err:  # Pillow's limit: refuse by name, so the next file is still read
        raise ValueError(f"{name}: refused, its header claims more pixels than Pillow's safety limit ({err}). If it "
                         "is a real photo, save a smaller copy (under 20 megapixels is plenty)") from None
    return image


def image_of_array(array: np.ndarray, name: str) -> Image.Image:
    """An array (H, W), (H, W, 3) or (H, W, 4) as an 8-bit image, or a 16-bit one for uint16 (H, W)."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"{name}: an array of shape {array.shape}; give (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA")
    if array.dtype == np.uint16 and array.ndim == 2:
        return Image.fromarray(array.astype(np.int32), "I")
    if array.dtype.kind == "f":
        low, high = float(np.min(array)), float(np.max(array))
        if not (0 <= low and high <= 1):  # NaN fails too
            raise ValueError(f"{name}: a float array must hold values in [0, 1] (0 black, 1 white); this one holds "
                             f"{low:g} to {high:g}" + (": divide it by 255, or give it as uint8"
                                                       if high <= 255 and low >= 0 else ""))
        array = np.round(array * 255)
    elif array.dtype != np.uint8 and not (array.dtype.kind in "iu" and array.min() >= 0 and array.max() <= 255):
        raise ValueError(f"{name}: an array of dtype {array.dtype} with values {array.min()} to {array.max()}; give "
                         "uint8 (0-255), a uint16 (H, W) scan (0-65535) or float in [0, 1]")
    return Image.fromarray(array.astype(np.uint8))


def drawing_grey(rgba: np.ndarray) -> np.ndarray:
    """Step 1 and stage A.d: RGBA (H, W, 4) uint8 -> grey (H, W) float64 in [0, 1]. Opaque: step 1 exactly;
    with transparency: composited on white (step 1) or on black, whichever shows the ink more (`contrast`)."""
    rgba = rgba.astype(np.int32)
    luma = (rgba[..., 0] * LUMA[0] + rgba[..., 1] * LUMA[1] + rgba[..., 2] * LUMA[2] + 32768) >> 16
    alpha = rgba[..., 3] / 255
    on_white = luma / 255 * alpha + (1 - alpha)
    if alpha.min() == 1:
        return on_white
    on_black = luma / 255 * alpha
    return on_black if contrast(on_black) > contrast(on_white) else on_white


def even_light(grey: np.ndarray) -> np.ndarray:
    """Stage A.e: grey (H, W) on light paper divided by the paper's estimated brightness (clipped to [0, 1]);
    on dark paper, or where the light is even, grey itself."""
    if border_median(grey) <= 0.5:
        return grey
    h, w = grey.shape
    small = tuple(max(1, round(s * LIGHT_SIDE / max(h, w))) for s in (w, h))
    paper = (Image.fromarray(grey.astype(np.float32)).resize(small, Image.BOX)
             .filter(ImageFilter.MaxFilter(LIGHT_WINDOW)).filter(ImageFilter.MinFilter(LIGHT_WINDOW)))
    low, high = paper.getextrema()
    if high - low < LIGHT_EVEN:
        return grey
    paper = np.asarray(paper.resize((w, h), Image.BILINEAR), np.float64)
    return np.clip(grey / np.maximum(paper, 1 / 255), 0, 1)


# ---------------------------------------------------------------- stage B: the MNIST framing (mirrored by web/app.js)
def border_median(x: np.ndarray) -> float:
    """The median of the pixels on the image's border (each counted once)."""
    if min(x.shape) < 3:
        return float(np.median(x))
    return float(np.median(np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])))


def ink_only(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """Steps 2-3: grey (H, W) in [0, 1] -> ink (H, W) in [0, 1], background 0 and the strongest ink 1. Raises
    NoInkError (a ValueError) naming `name` when the ink's contrast is below NO_INK_CONTRAST."""
    x = 1 - grey if border_median(grey) > 0.5 else grey
    bg, top = border_median(x), float(x.max())
    if top - bg < NO_INK_CONTRAST:
        raise NoInkError(f"{name}: no ink found (contrast {top - bg:.3f} between the darkest stroke and the "
                         f"background, below {NO_INK_CONTRAST}). Give an image of one digit, written dark on "
                         "light paper or light on dark, filling a good part of the picture.")
    return np.clip((x - bg) / (top - bg), 0, 1)


def contrast(grey: np.ndarray) -> float:
    """Steps 2-3's ink contrast of grey (H, W): the strongest ink's distance from the background, in [0, 1]."""
    x = 1 - grey if border_median(grey) > 0.5 else grey
    return float(x.max()) - border_median(x)


def fitted_size(h: int, w: int) -> tuple[int, int]:
    """Step 5: (nh, nw), the box (h, w) with its longer side scaled to FIT, rounded half up, each >= 1."""
    longer = max(h, w)
    return max(1, (2 * FIT * h + longer) // (2 * longer)), max(1, (2 * FIT * w + longer) // (2 * longer))


def stroke_width(patch: np.ndarray) -> float:
    """Step 6: the mean stroke width of a patch (h, w), in px: 2 x (pixels above INK_LEVEL) / (the edges between
    those pixels and the others, the patch's edge included); a stroke of width s and length l gives about s."""
    ink = np.pad(patch > INK_LEVEL, 1)
    edges = np.count_nonzero(ink[1:] != ink[:-1]) + np.count_nonzero(ink[:, 1:] != ink[:, :-1])
    return 2 * np.count_nonzero(ink) / max(edges, 1)


def as_strokes(patch: np.ndarray) -> np.ndarray:
    """Step 6: the fitted patch (h, w) float32 at full brightness, dilated once when its strokes are thin."""
    patch = patch / patch.max()
    if stroke_width(patch) < STROKE_MIN:
        patch = np.asarray(Image.fromarray(patch).filter(ImageFilter.MaxFilter(3)))
    return patch


def centre_of_mass(patch: np.ndarray) -> tuple[float, float]:
    """Step 7: (row, column) centre of mass in pixel indices, summed one pixel at a time in row-major order
    (as web/app.js does, so that both sides round alike)."""
    total = rows = cols = 0.0
    for (i, j), v in np.ndenumerate(patch.astype(np.float64)):
        total += v
        rows += i * v
        cols += j * v
    return rows / total, cols / total


def mnist_style(grey: np.ndarray, name: str = "image") -> np.ndarray:
    """Steps 2-7: grey (H, W) in [0, 1] (as from `load_grey`) -> (28, 28) float32 in [0, 1], ink 1, MNIST-style.
    Raises NoInkError (a ValueError) naming `name` when there is no ink."""
    ink = ink_only(grey, name)
    ys, xs = np.nonzero(ink > INK_LEVEL)
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    nh, nw = fitted_size(*crop.shape)
    patch = as_strokes(np.asarray(Image.fromarray(crop.astype(np.float32)).resize((nw, nh), Image.BOX)))
    cy, cx = centre_of_mass(patch)
    top = min(max(math.floor(FRAME / 2 - cy), 0), FRAME - nh)
    left = min(max(math.floor(FRAME / 2 - cx), 0), FRAME - nw)
    frame = np.zeros((FRAME, FRAME), np.float32)
    frame[top:top + nh, left:left + nw] = patch
    return frame


def to_input(source, name: str | None = None) -> torch.Tensor:
    """An image file, PIL image or array -> the model's input (1, 1, 28, 28) float32, normalised like MNIST. Raises
    NoInkError (a ValueError) naming the file when the image has no ink, ValueError or OSError when it cannot be read
    as an image (`load_grey`)."""
    name = name or _name_of(source)
    return normalised(mnist_style(load_grey(source, name), name))


def normalised(image: np.ndarray) -> torch.Tensor:
    """Step 8: a (28, 28) image in [0, 1] -> (1, 1, 28, 28) float32, (x - MNIST_MEAN) / MNIST_STD."""
    return torch.from_numpy((image - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)).view(1, 1, FRAME, FRAME)


def classify(source, model: torch.nn.Module, name: str | None = None) -> Prediction:
    """Classify one image (a file, PIL image or array) of a digit with `model`: the digit, its class
    probabilities and the 28x28 image the model saw. Raises NoInkError (a ValueError) for an image with no ink,
    ValueError or OSError for one that cannot be read (`load_grey`)."""
    name = name or _name_of(source)
    image = mnist_style(load_grey(source, name), name)
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


# Pen paths of the ten digits, as a person might draw them: strokes of (x, y) points in the unit square.
PEN_PATHS = {
    0: [[(0.5 + 0.22 * math.sin(t), 0.5 - 0.33 * math.cos(t)) for t in np.linspace(0, 2 * math.pi, 25)]],
    1: [[(0.45, 0.25), (0.55, 0.15), (0.55, 0.85)]],
    2: [[(0.28, 0.32), (0.35, 0.2), (0.5, 0.15), (0.65, 0.2), (0.72, 0.32), (0.68, 0.45), (0.3, 0.82), (0.75, 0.82)]],
    3: [[(0.3, 0.2), (0.5, 0.14), (0.68, 0.22), (0.66, 0.36), (0.48, 0.47), (0.68, 0.56), (0.7, 0.72), (0.5, 0.85),
         (0.3, 0.8)]],
    4: [[(0.45, 0.15), (0.28, 0.58), (0.75, 0.58)], [(0.62, 0.3), (0.62, 0.88)]],
    5: [[(0.7, 0.15), (0.35, 0.15), (0.32, 0.45), (0.55, 0.42), (0.7, 0.55), (0.68, 0.75), (0.5, 0.85), (0.3, 0.8)]],
    6: [[(0.65, 0.15), (0.45, 0.3), (0.33, 0.55), (0.35, 0.75), (0.5, 0.85), (0.65, 0.75), (0.65, 0.6), (0.5, 0.52),
         (0.35, 0.6)]],
    7: [[(0.28, 0.18), (0.72, 0.18), (0.45, 0.85)]],
    8: [[(0.5 + 0.16 * math.sin(2 * t), 0.5 - 0.35 * math.cos(t)) for t in np.linspace(0, 2 * math.pi, 33)]],
    9: [[(0.5 + 0.17 * math.cos(t), 0.32 - 0.15 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 21)],
        [(0.67, 0.32), (0.64, 0.85)]],
}


def pen_digit(digit: int, width: int = 20, size: int = 276, canvas: tuple[int, int] = (280, 280),
              at: tuple[int, int] = (2, 2)) -> Image.Image:
    """A digit drawn with a pen (PEN_PATHS) `width` px wide, black on a white RGB canvas (width, height) px:
    its unit square `size` px wide with its top left corner `at` (x, y). The default is the web page's pad."""
    image = Image.new("RGB", canvas, "white")
    draw = ImageDraw.Draw(image)
    for stroke in PEN_PATHS[digit]:
        draw.line([(at[0] + size * x, at[1] + size * y) for x, y in stroke], fill="black", width=width, joint="curve")
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
