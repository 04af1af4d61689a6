"""The web demo (web/): the exported ONNX models against PyTorch, in Python (onnxruntime) and in a real browser
(Debian's headless Chromium, driven by Playwright): digits drawn with the mouse, the page's 28x28 against the
Python preprocessing of the same canvas image, and missing or stale model files reported in words."""
import base64
import contextlib
import functools
import http.server
import io
import json
import os
import shutil
import statistics
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from era_s7 import digits
from era_s7.results import REPO_ROOT
from era_s7.tools import export
from era_s7.tools.predict import STEP_WEIGHTS, load_model

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches out to the network (closed networks refuse it, many times a start).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]
SCREENSHOT = REPO_ROOT / "web" / "screenshot.png"  # the README's picture: written when missing, then committed
TOLERANCE = 1e-4  # max |logit difference| between the exported models and PyTorch
# Arrays travel into the page as base64 (far faster than JSON lists): decoded there by these expressions.
BYTES_FROM_BASE64 = "Uint8Array.from(atob(b64), c => c.charCodeAt(0))"
FLOAT32_FROM_BASE64 = f"new Float32Array({BYTES_FROM_BASE64}.buffer)"

PEN_PATHS = digits.PEN_PATHS  # the ten digits as a person might draw them


def pytorch_logits(name: str, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return load_model(name)(x).numpy()


# ---------------------------------------------------------------- the export, checked in Python
def test_the_exported_models_are_those_of_the_committed_weights():
    assert export.stale_exports() == [], "run `make web` (or python -m era_s7.tools.export) to export them again"


@pytest.mark.parametrize("name", list(STEP_WEIGHTS))
def test_onnx_logits_match_pytorch_on_200_test_images(mnist, name):
    x = mnist["x_test"][:200]
    onnx_file = export.MODELS_DIR / export.read_manifest()[name]["onnx"]
    diff = np.abs(export.onnx_logits(onnx_file.read_bytes(), x) - pytorch_logits(name, x)).max()
    print(f"{name}: max |ONNX (onnxruntime) - PyTorch| logit difference on 200 test images: {diff:.2e}")
    assert diff <= TOLERANCE


def test_export_redoes_only_the_models_whose_weights_changed(tmp_path):
    results, models = tmp_path / "results", tmp_path / "models"
    shutil.copytree(export.MODELS_DIR, models)
    results.mkdir()
    for weights in STEP_WEIGHTS.values():
        shutil.copy(REPO_ROOT / "results" / weights, results / weights)
    assert export.stale_exports(results, models) == []
    model = load_model("Model_1")
    with torch.no_grad():
        model.head[-2].weight.mul_(2)  # the weights change...
    torch.save(model.state_dict(), results / "step1.pt")
    assert export.stale_exports(results, models) == ["Model_1: step1.onnx was not exported from the current "
                                                     "results/step1.pt"]  # ...so the export is stale
    lines = []
    export.export(results, models, log=lines.append)
    assert ["exported" in line for line in lines] == [True, False, False]
    assert export.stale_exports(results, models) == []
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(export.onnx_logits((models / "step1.onnx").read_bytes(), x) - expected).max() <= TOLERANCE


def test_the_export_without_the_web_extra_says_how_to_install_it(monkeypatch, capsys):
    """After the README's `pip install -e .` onnxscript is missing (None in sys.modules: `import onnxscript` fails)."""
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert export.main([]) == 2
    err = capsys.readouterr().err
    assert "onnxscript" in err and "`web` extra" in err and 'pip install -e ".[web]"' in err


def test_the_vendored_runtime_is_the_pinned_one():
    pinned = json.loads((REPO_ROOT / "web" / "package.json").read_text())["dependencies"]
    header = (REPO_ROOT / "web" / "vendor" / "ort.wasm.min.js").read_text()[:200]
    assert f"ONNX Runtime Web v{pinned['onnxruntime-web']}" in header


# ---------------------------------------------------------------- the page, in a real browser
@contextlib.contextmanager
def served(root: Path):
    """An HTTP server on 127.0.0.1 (a free port) serving `root`, in a thread; yields its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        message = f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def open_demo(browser, base_url: str):
    """A new page with the demo loaded and its models ready; page errors fail the test."""
    page = browser.new_page(viewport={"width": 1180, "height": 540})
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(f"{base_url}/web/")
    page.evaluate("window.demo.ready")
    assert not errors, errors
    return page


@pytest.fixture(scope="module")
def demo(browser):
    with served(REPO_ROOT) as url:
        page = open_demo(browser, url)
        yield page
        page.close()


def test_browser_logits_match_pytorch_on_200_test_images(demo, mnist):
    x = mnist["x_test"][:200]
    for name in STEP_WEIGHTS:
        in_browser = np.array(demo.evaluate(f"([name, b64]) => window.demo.logits(name, {FLOAT32_FROM_BASE64}, 200)",
                                            [name, base64.b64encode(x.numpy().tobytes()).decode()]))
        diff = np.abs(in_browser - pytorch_logits(name, x)).max()
        print(f"{name}: max |ONNX (onnxruntime-web, Chromium) - PyTorch| logit difference on 200 test images: "
              f"{diff:.2e}")
        assert diff <= TOLERANCE


def test_page_preprocessing_is_the_python_preprocessing(demo):
    """The same images through web/app.js and era_s7/digits.py: the same 28x28 within 1/255 per pixel; among
    them thin pen strokes, which step 6 brightens and dilates."""
    rendered = [image for image, _ in digits.rendered_digits(6, seed=5)]
    dark = Image.fromarray(255 - np.asarray(rendered[0]))
    blue_on_transparent = np.zeros((150, 120, 4), np.uint8)
    blue_on_transparent[40:110, 50:62] = (20, 40, 160, 255)
    thin = [digits.pen_digit(d, width, 300, (420, 360), (60, 30)) for d, width in ((3, 1), (4, 3), (8, 6))]
    assert all(digits.stroke_width(digits.mnist_style(digits.load_grey(t))) >= digits.STROKE_MIN for t in thin)
    images = rendered + thin + [dark, Image.fromarray(blue_on_transparent, "RGBA"), Image.new("RGB", (40, 30), "white")]
    differences = []
    for image in images:
        rgba = np.asarray(image.convert("RGBA"))
        in_page = demo.evaluate(f"([b64, h, w]) => window.demo.mnistStyle({BYTES_FROM_BASE64}, h, w)",
                                [base64.b64encode(rgba.tobytes()).decode(), *rgba.shape[:2]])
        try:
            in_python = digits.mnist_style(digits.load_grey(image))
        except digits.NoInkError:
            assert in_page is None  # no ink: the page shows nothing rather than a guess
            continue
        differences.append(np.abs(np.array(in_page).reshape(28, 28) - in_python).max())
    print(f"page vs Python preprocessing, {len(differences)} images with ink: max |difference| {max(differences):.1e}")
    assert max(differences) <= 1 / 255


def draw(page, strokes):
    """Draw strokes (lists of unit-square points) on the page's pad with the mouse."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        at = [(box["x"] + 2 + x * (box["width"] - 4), box["y"] + 2 + y * (box["height"] - 4)) for x, y in stroke]
        page.mouse.move(*at[0])
        page.mouse.down()
        for point in at[1:]:
            page.mouse.move(*point, steps=3)
        page.mouse.up()
    page.evaluate("window.demo.idle()")


def shown_digits(page) -> dict[str, int]:
    return {name: int(page.locator(f"#panel-{name} .digit").inner_text()) for name in STEP_WEIGHTS}


def test_drawn_digits_are_read_as_python_reads_the_same_canvas(demo, tmp_path):
    """Offline once loaded; for each drawn digit: the page's 28x28 is Python's for the canvas image, each model
    shows the digit PyTorch predicts for it, and step 3 reads the digit drawn."""
    demo.context.set_offline(True)
    differences = []
    try:
        for digit, strokes in PEN_PATHS.items():
            demo.click("#clear")
            before = demo.evaluate("window.demo.timings.length")
            draw(demo, strokes)
            assert demo.evaluate("window.demo.timings.length") - before > 3  # it updated while drawing
            png = base64.b64decode(demo.evaluate("document.getElementById('pad').toDataURL()").split(",")[1])
            in_python = digits.mnist_style(digits.load_grey(Image.open(io.BytesIO(png))))
            in_page = np.array(demo.evaluate("Array.from(window.demo.lastImage)")).reshape(28, 28)
            differences.append(np.abs(in_page - in_python).max())
            assert differences[-1] <= 1 / 255, digit
            x = digits.normalised(in_python)
            expected = {name: int(pytorch_logits(name, x).argmax()) for name in STEP_WEIGHTS}
            assert shown_digits(demo) == expected, digit
            assert expected["Model_3"] == digit
    finally:
        demo.context.set_offline(False)
    timings = demo.evaluate("window.demo.timings")
    print(f"drawn digits: page vs Python 28x28, max |difference| {max(differences):.1e}; "
          f"page updates while drawing: {len(timings)}, median {statistics.median(timings):.1f} ms, "
          f"90th percentile {np.percentile(timings, 90):.1f} ms")
    assert statistics.median(timings) < 50
    demo.screenshot(path=tmp_path / "demo.png", full_page=True)
    if not SCREENSHOT.exists():
        shutil.copy(tmp_path / "demo.png", SCREENSHOT)


def site_copy(tmp_path: Path) -> Path:
    """A copy of the site (web/ and results/) in tmp_path, to break."""
    shutil.copytree(REPO_ROOT / "web", tmp_path / "web", ignore=shutil.ignore_patterns("node_modules"))
    shutil.copytree(REPO_ROOT / "results", tmp_path / "results", ignore=shutil.ignore_patterns("figures", "sweeps"))
    return tmp_path


def statuses(page) -> dict[str, tuple[str, bool]]:
    """Each model panel's status line and whether it is shown as a problem."""
    return {name: (page.locator(f"#panel-{name} .status").inner_text(),
                   "problem" in page.locator(f"#panel-{name} .status").get_attribute("class")) for name in STEP_WEIGHTS}


def test_missing_stale_and_foreign_model_files_are_reported_in_words(browser, tmp_path):
    """A copy of the site where results/step1.pt changed after the export, models/step2.onnx is gone and
    models/step3.onnx is a Git LFS pointer (onnxruntime's own error must not replace the page's sentence)."""
    site = site_copy(tmp_path)
    (site / "results" / "step1.pt").write_bytes(b"retrained")
    (site / "web" / "models" / "step2.onnx").unlink()
    (site / "web" / "models" / "step3.onnx").write_text("version https://git-lfs.github.com/spec/v1\n"
                                                         f"oid sha256:{'0' * 64}\nsize 31337\n")
    with served(site) as url:
        page = open_demo(browser, url)
        status = statuses(page)
        page.close()
    assert status["Model_1"][0].startswith("stale: results/step1.pt has changed") and "make web" in status["Model_1"][0]
    assert status["Model_2"][0].startswith("models/step2.onnx is missing") and "make web" in status["Model_2"][0]
    assert status["Model_3"][0].startswith("models/step3.onnx is not the file the manifest lists (stale or replaced): "
                                           "run `make web`. (onnxruntime could not load it either: ")
    assert all(problem for _, problem in status.values())


@pytest.mark.parametrize("wasm, said", [(None, "is missing or unreachable (HTTP 404)"),
                                        (b"<!DOCTYPE html><html><body>Not found</body></html>",
                                         'is not WebAssembly (it starts "<!DOCTYPE html>", like a web page)')],
                         ids=["missing", "an-html-page"])
def test_a_missing_or_html_runtime_is_named_not_blamed_on_the_models(browser, tmp_path, wasm, said):
    """Without the runtime's .wasm no model runs: each panel names it, and the status line after drawing says that
    no model is loaded (not 'three models 0.3 ms')."""
    site = site_copy(tmp_path)
    runtime = site / "web" / "vendor" / "ort-wasm-simd-threaded.wasm"
    runtime.unlink() if wasm is None else runtime.write_bytes(wasm)
    with served(site) as url:
        page = open_demo(browser, url)
        status = statuses(page)
        draw(page, PEN_PATHS[7])
        timing = page.locator("#timing").inner_text()
        page.close()
    for sentence, problem in status.values():
        assert sentence.startswith(f"the runtime's vendor/ort-wasm-simd-threaded.wasm {said}") and problem, sentence
        assert "models/step" not in sentence and "make web-vendor" in sentence
    assert "no model is loaded" in timing and "models " not in timing, timing


def test_opened_as_a_file_says_so_and_how_to_serve_it(browser):
    """Double-clicking web/index.html: the file:// origin lets the page read no other file."""
    page = browser.new_page()
    page.goto((REPO_ROOT / "web" / "index.html").as_uri())
    page.evaluate("window.demo.ready")
    for sentence, problem in statuses(page).values():
        assert sentence.startswith("this page was opened as a file (file://)") and problem, sentence
        assert "python -m http.server" in sentence and "http://localhost:8000/web/" in sentence
    page.close()


def touch_draw(page, strokes):
    """Draw strokes (lists of unit-square points) on the pad with a finger: touch events, as a phone sends them."""
    cdp = page.context.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        at = [(box["x"] + 2 + x * (box["width"] - 4), box["y"] + 2 + y * (box["height"] - 4)) for x, y in stroke]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": at[0][0], "y": at[0][1]}]})
        for (x0, y0), (x1, y1) in zip(at, at[1:]):
            for t in (1 / 3, 2 / 3, 1):
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
                    {"x": x0 + t * (x1 - x0), "y": y0 + t * (y1 - y0)}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()
    page.evaluate("window.demo.idle()")


def test_on_a_phone_the_pad_and_the_three_predictions_fit_one_screen(browser):
    """360x740 with touch: the pad and every model's predicted digit on the screen without scrolling, digits drawn
    with a finger read as Python reads the same canvas, and a tap leaves a dot; at 280 px wide the pad fits too."""
    with served(REPO_ROOT) as url:
        context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True)
        page = context.new_page()
        page.goto(f"{url}/web/")
        page.evaluate("window.demo.ready")
        assert all(sentence.endswith("up to date.") and not problem for sentence, problem in statuses(page).values())
        boxes = [page.locator(selector).bounding_box() for selector in
                 ["#pad"] + [f"#panel-{name} .digit" for name in STEP_WEIGHTS]]
        assert all(b["x"] >= 0 and b["x"] + b["width"] <= 360 and b["y"] + b["height"] <= 740 for b in boxes), boxes
        for digit in (2, 4, 7):
            page.click("#clear")
            touch_draw(page, PEN_PATHS[digit])
            png = base64.b64decode(page.evaluate("document.getElementById('pad').toDataURL()").split(",")[1])
            in_python = digits.mnist_style(digits.load_grey(Image.open(io.BytesIO(png))))
            in_page = np.array(page.evaluate("Array.from(window.demo.lastImage)")).reshape(28, 28)
            assert np.abs(in_page - in_python).max() <= 1 / 255, digit
            assert shown_digits(page)["Model_3"] == digit
        page.click("#clear")
        page.touchscreen.tap(boxes[0]["x"] + 100, boxes[0]["y"] + 100)
        page.evaluate("window.demo.idle()")
        assert page.evaluate("window.demo.lastImage !== null")  # the dot is ink
        page.set_viewport_size({"width": 280, "height": 560})
        pad = page.locator("#pad").bounding_box()
        assert pad["x"] >= 0 and pad["x"] + pad["width"] <= 280
        assert page.evaluate("document.documentElement.scrollWidth") <= 280
        context.close()
