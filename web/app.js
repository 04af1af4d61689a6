// The demo: draw on #pad; the drawing is preprocessed the way MNIST was made, shown in #seen, and classified
// by the three steps' models (ONNX files exported by `make web`, run by onnxruntime-web).
"use strict";

// ---- The MNIST-style preprocessing: stage B (the MNIST framing) of era_s7/digits.py's docstring, which defines
// ---- it; each function here mirrors the Python function of the same name, step by step (tests/test_web.py
// ---- checks they agree). Stage A there (photo clean-up: size, bit depth, alpha, uneven light) is Python only:
// ---- this pad is an opaque 8-bit canvas on evenly white paper, for which stage A is step 1 unchanged.
const FRAME = 28, FIT = 20;          // MNIST: 28x28 images, the ink fitted into 20x20
const NO_INK_CONTRAST = 0.2;         // step 3: less contrast than this is no ink
const INK_LEVEL = 0.3;               // step 4: a pixel is ink when its stretched value is above this
const LUMA = [19595, 38470, 7471];   // step 1: Pillow's convert("L") weights, in 1/65536
const STROKE_MIN = 1.6;              // step 6: a patch with thinner strokes than this is dilated once
const MNIST_MEAN = 0.1307, MNIST_STD = 0.3081;

// Step 1: RGBA bytes (h * w * 4) -> grey in [0, 1], 0 black, 1 white; transparent pixels count as white.
function loadGrey(rgba, h, w) {
  const grey = new Float64Array(h * w);
  for (let i = 0; i < h * w; i++) {
    const luma = (rgba[4 * i] * LUMA[0] + rgba[4 * i + 1] * LUMA[1] + rgba[4 * i + 2] * LUMA[2] + 32768) >> 16;
    const alpha = rgba[4 * i + 3] / 255;
    grey[i] = luma / 255 * alpha + (1 - alpha);
  }
  return grey;
}

function median(values) {
  const v = Float64Array.from(values).sort(), mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

// The median of the pixels on the image's border (each counted once).
function borderMedian(x, h, w) {
  if (Math.min(h, w) < 3) return median(x);
  const border = [];
  for (let j = 0; j < w; j++) border.push(x[j], x[(h - 1) * w + j]);
  for (let i = 1; i < h - 1; i++) border.push(x[i * w], x[i * w + w - 1]);
  return median(border);
}

// Steps 2-3: light background -> inverted; background 0, strongest ink 1. null when there is no ink.
function inkOnly(grey, h, w) {
  const x = borderMedian(grey, h, w) > 0.5 ? grey.map(g => 1 - g) : grey.slice();
  const bg = borderMedian(x, h, w), top = x.reduce((a, b) => Math.max(a, b));
  if (top - bg < NO_INK_CONTRAST) return null;
  return x.map(v => Math.min(Math.max((v - bg) / (top - bg), 0), 1));
}

// Step 5: the box (h, w) with its longer side scaled to FIT, rounded half up, each at least 1.
function fittedSize(h, w) {
  const longer = Math.max(h, w);
  return [Math.max(1, Math.floor((2 * FIT * h + longer) / (2 * longer))),
          Math.max(1, Math.floor((2 * FIT * w + longer) / (2 * longer)))];
}

// Pillow's BOX filter weights (libImaging/Resample.c, precompute_coeffs): for each output pixel, the first
// input pixel and the weights of the input pixels whose centres fall inside its footprint.
function boxCoeffs(inSize, outSize) {
  const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = 0.5 * filterscale;
  const ss = 1.0 / filterscale, out = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5));
    const k = [];
    let ww = 0;
    for (let x = xmin; x < xmax; x++) {
      const t = (x - center + 0.5) * ss;
      k.push(t > -0.5 && t <= 0.5 ? 1 : 0);
      ww += k[k.length - 1];
    }
    out.push({ xmin, k: k.map(v => (ww !== 0 ? v / ww : v)) });
  }
  return out;
}

// Image.resize((nw, nh), Image.BOX) of a float32 ("F") image: horizontal pass, then vertical, float32 between.
function resizeBox(src, h, w, nh, nw) {
  const horiz = boxCoeffs(w, nw), vert = boxCoeffs(h, nh);
  const tmp = new Float32Array(h * nw), out = new Float32Array(nh * nw);
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < nw; xx++) {
      const { xmin, k } = horiz[xx];
      let s = 0.0;
      for (let x = 0; x < k.length; x++) s += src[y * w + xmin + x] * k[x];
      tmp[y * nw + xx] = s;
    }
  }
  for (let yy = 0; yy < nh; yy++) {
    const { xmin: ymin, k } = vert[yy];
    for (let xx = 0; xx < nw; xx++) {
      let s = 0.0;
      for (let y = 0; y < k.length; y++) s += tmp[(ymin + y) * nw + xx] * k[y];
      out[yy * nw + xx] = s;
    }
  }
  return out;
}

// Step 6: the mean stroke width in px, 2 x (pixels above INK_LEVEL) / (their edges, the patch's edge included).
function strokeWidth(patch, nh, nw) {
  const ink = (i, j) => i >= 0 && i < nh && j >= 0 && j < nw && patch[i * nw + j] > INK_LEVEL;
  let area = 0, edges = 0;
  for (let i = -1; i < nh; i++) {
    for (let j = -1; j < nw; j++) {
      const here = ink(i, j);
      if (i >= 0 && j >= 0 && here) area++;
      if (j >= 0 && here !== ink(i + 1, j)) edges++;
      if (i >= 0 && here !== ink(i, j + 1)) edges++;
    }
  }
  return 2 * area / Math.max(edges, 1);
}

// Step 6: the patch at full brightness; dilated once (Pillow's MaxFilter(3): the max of each pixel's 3x3
// neighbourhood within the patch) when its strokes are thinner than STROKE_MIN.
function asStrokes(patch, nh, nw) {
  const top = patch.reduce((a, b) => Math.max(a, b));
  const bright = patch.map(v => v / top);
  if (strokeWidth(bright, nh, nw) >= STROKE_MIN) return bright;
  const out = new Float32Array(nh * nw);
  for (let i = 0; i < nh; i++) {
    for (let j = 0; j < nw; j++) {
      let m = -Infinity;
      for (let di = -1; di <= 1; di++) {
        for (let dj = -1; dj <= 1; dj++) {
          const y = i + di, x = j + dj;
          if (y >= 0 && y < nh && x >= 0 && x < nw) m = Math.max(m, bright[y * nw + x]);
        }
      }
      out[i * nw + j] = m;
    }
  }
  return out;
}

// Step 7: (row, column) centre of mass in pixel indices, summed one pixel at a time in row-major order.
function centreOfMass(patch, nh, nw) {
  let total = 0, rows = 0, cols = 0;
  for (let i = 0; i < nh; i++) {
    for (let j = 0; j < nw; j++) {
      const v = patch[i * nw + j];
      total += v; rows += i * v; cols += j * v;
    }
  }
  return [rows / total, cols / total];
}

// Steps 2-7: grey (h * w) -> the 28x28 image in [0, 1] (Float32Array, ink 1), or null when there is no ink.
function mnistStyle(grey, h, w) {
  const ink = inkOnly(grey, h, w);
  if (ink === null) return null;
  let y0 = h, y1 = -1, x0 = w, x1 = -1;
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      if (ink[i * w + j] > INK_LEVEL) {
        y0 = Math.min(y0, i); y1 = Math.max(y1, i); x0 = Math.min(x0, j); x1 = Math.max(x1, j);
      }
    }
  }
  const ch = y1 - y0 + 1, cw = x1 - x0 + 1, crop = new Float32Array(ch * cw);
  for (let i = 0; i < ch; i++) {
    for (let j = 0; j < cw; j++) crop[i * cw + j] = ink[(y0 + i) * w + x0 + j];
  }
  const [nh, nw] = fittedSize(ch, cw);
  const patch = asStrokes(resizeBox(crop, ch, cw, nh, nw), nh, nw);
  const [cy, cx] = centreOfMass(patch, nh, nw);
  const top = Math.min(Math.max(Math.floor(FRAME / 2 - cy), 0), FRAME - nh);
  const left = Math.min(Math.max(Math.floor(FRAME / 2 - cx), 0), FRAME - nw);
  const frame = new Float32Array(FRAME * FRAME);
  for (let i = 0; i < nh; i++) {
    for (let j = 0; j < nw; j++) frame[(top + i) * FRAME + left + j] = patch[i * nw + j];
  }
  return frame;
}

// Step 8: normalised like MNIST, as the model's input (1, 1, 28, 28).
function normalised(image) {
  return image.map(v => (v - MNIST_MEAN) / MNIST_STD);
}

// ---- The models: web/models/step<N>.onnx, checked against the manifest written by the export.
const MODELS = [["Model_1", "step1.onnx"], ["Model_2", "step2.onnx"], ["Model_3", "step3.onnx"]];
const sessions = {};  // model name -> onnxruntime session, for the models that loaded
const WASM = "vendor/ort-wasm-simd-threaded.wasm";  // the runtime's WebAssembly, which every model needs
const SERVE = "serve it: `make web`, or `python -m http.server` in the repository's root, then open http://localhost:8000/web/";

async function sha256(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, "0")).join("");
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// [fresh?, a sentence about where the model file came from and whether it is up to date].
async function checkModel(entry, onnx, bytes, manifestProblem) {
  if (!entry) return [false, `${manifestProblem || "models/manifest.json lists no such model"}: run \`make web\` to export.`];
  if (!window.crypto || !crypto.subtle) return [true, "hashes not checked: open this page from localhost or https."];
  const short = entry.weights_sha256.slice(0, 12);
  if (await sha256(bytes) !== entry.onnx_sha256) {
    return [false, `models/${onnx} is not the file the manifest lists (stale or replaced): run \`make web\`.`];
  }
  let weights;
  try {
    weights = await fetchBytes(`../${entry.weights}`);
  } catch (err) {  // e.g. GitHub Pages serving web/ alone
    return [true, `exported from ${entry.weights} (sha256 ${short}…); ${entry.weights} is not reachable from here, so its freshness was checked at export only.`];
  }
  const now = await sha256(weights);
  if (now !== entry.weights_sha256) {
    return [false, `stale: ${entry.weights} has changed since models/${onnx} was exported from it (sha256 ${now.slice(0, 12)}… now, ${short}… then): run \`make web\`.`];
  }
  return [true, `exported from ${entry.weights} (sha256 ${short}…): up to date.`];
}

async function loadModel([name, onnx], manifest, manifestProblem, runtimeProblem) {
  const panel = modelPanel(name);
  if (runtimeProblem) { showStatus(panel, false, runtimeProblem); return; }
  let bytes;
  try {
    bytes = await fetchBytes(`models/${onnx}`);
  } catch (err) {
    showStatus(panel, false, `models/${onnx} is missing or unreachable (${err.message}): run \`make web\` to export and serve it.`);
    return;
  }
  const [ok, sentence] = await checkModel(manifest[name], onnx, bytes, manifestProblem);
  showStatus(panel, ok, sentence);
  try {
    sessions[name] = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  } catch (err) {  // the check's sentence, when it found a problem, says more than onnxruntime's error
    showStatus(panel, false, ok ? `models/${onnx} could not be loaded: ${err.message}`
                                : `${sentence} (onnxruntime could not load it either: ${err.message})`);
  }
}

// Why no model can run here, in words, or null: the page opened as a file, or the runtime's .wasm missing or
// not WebAssembly (e.g. a server's HTML error page in its place).
async function runtimeProblem() {
  if (location.protocol === "file:") {
    return `this page was opened as a file (file://), from which the browser lets it read no other file, so no model loads: ${SERVE}.`;
  }
  let bytes;
  try {
    bytes = await fetchBytes(WASM);
  } catch (err) {
    return `the runtime's ${WASM} is missing or unreachable (${err.message}): restore it (git checkout -- web/vendor/, or \`make web-vendor\`).`;
  }
  if (!(bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d)) {
    const start = new TextDecoder().decode(bytes.slice(0, 15)).replace(/\s+/g, " ");
    return `the runtime's ${WASM} is not WebAssembly (it starts "${start}", like a web page): restore it (git checkout -- web/vendor/, or \`make web-vendor\`).`;
  }
  return null;
}

async function loadModels() {
  ort.env.wasm.wasmPaths = new URL("vendor/", document.baseURI).href;  // relative to the page: works offline
  ort.env.wasm.numThreads = 1;  // a model this small gains nothing from threads
  const runtime = await runtimeProblem();
  let manifest = {}, problem = null;
  try {
    const text = new TextDecoder().decode(await fetchBytes("models/manifest.json"));
    manifest = Object.fromEntries(JSON.parse(text).models.map(e => [e.model, e]));
  } catch (err) {
    problem = `models/manifest.json could not be read (${err.message})`;
  }
  await Promise.all(MODELS.map(m => loadModel(m, manifest, problem, runtime)));
}

// logits (n, 10) of `name` for n images, flat (n * 784) and normalised; the test compares them with PyTorch's.
async function logits(name, flat, n) {
  const input = new ort.Tensor("float32", Float32Array.from(flat), [n, 1, FRAME, FRAME]);
  const out = (await sessions[name].run({ image: input })).logits.data;
  return Array.from({ length: n }, (_, i) => Array.from(out.slice(10 * i, 10 * i + 10)));
}

// ---- The page: the drawing pad, the 28x28 preview, one panel per model.
const pad = document.getElementById("pad"), ctx = pad.getContext("2d", { willReadFrequently: true });
const seen = document.getElementById("seen").getContext("2d");

function clearPad() {
  ctx.fillStyle = "white";
  ctx.fillRect(0, 0, pad.width, pad.height);
  requestUpdate();
}

function modelPanel(name) {
  const id = `panel-${name}`;
  let panel = document.getElementById(id);
  if (!panel) {
    panel = document.createElement("section");
    panel.className = "model";
    panel.id = id;
    const bars = Array.from({ length: 10 }, (_, d) => `<div class="bar"><span>${d}</span><span class="fill"></span><span></span></div>`);
    panel.innerHTML = `<h2>${name}</h2><p class="digit">&ndash;</p>${bars.join("")}<p class="status">loading&hellip;</p>`;
    document.getElementById("models").append(panel);
  }
  return panel;
}

function showStatus(panel, ok, sentence) {
  const status = panel.querySelector(".status");
  status.textContent = sentence;
  status.classList.toggle("problem", !ok);
}

function showProbabilities(panel, probs) {
  const best = probs ? probs.indexOf(Math.max(...probs)) : -1;
  panel.querySelector(".digit").textContent = probs ? best : "–";
  panel.querySelectorAll(".bar").forEach((bar, d) => {
    const p = probs ? probs[d] : 0;
    bar.classList.toggle("top", d === best);
    bar.querySelector(".fill").style.width = `${(80 * p).toFixed(1)}px`;
    bar.querySelector("span:last-child").textContent = probs ? p.toFixed(2) : "";
  });
}

function softmax(z) {
  const m = Math.max(...z), e = z.map(v => Math.exp(v - m)), s = e.reduce((a, b) => a + b);
  return e.map(v => v / s);
}

function showImage(image) {
  const pixels = seen.createImageData(FRAME, FRAME);
  for (let i = 0; i < FRAME * FRAME; i++) {
    const v = image ? Math.round(255 * image[i]) : 0;
    pixels.data.set([v, v, v, 255], 4 * i);
  }
  seen.putImageData(pixels, 0, 0);
}

// One update: preprocess the pad, show what the models see, run the models, show their predictions.
async function update() {
  const start = performance.now();
  const { data } = ctx.getImageData(0, 0, pad.width, pad.height);
  const image = mnistStyle(loadGrey(data, pad.height, pad.width), pad.height, pad.width);
  demo.lastImage = image;
  showImage(image);
  const prepared = performance.now();
  for (const [name] of MODELS) {
    const z = image && sessions[name] ? (await logits(name, normalised(image), 1))[0] : null;
    showProbabilities(modelPanel(name), z && softmax(z));
  }
  const ms = performance.now() - start, ran = MODELS.filter(([name]) => sessions[name]).length;
  demo.timings.push(ms);
  const models = ran ? `, ${["", "one model", "two models", "three models"][ran]} ${(ms - prepared + start).toFixed(1)} ms`
                     : "; no model is loaded: each panel says why";
  document.getElementById("timing").textContent = image
    ? `Updated in ${ms.toFixed(1)} ms (preprocessing ${(prepared - start).toFixed(1)} ms${models}).`
    : "Draw a digit in the box.";
}

// Updates never overlap: a request during an update runs once that update is done.
let running = null, again = false;
function requestUpdate() {
  if (running) { again = true; return running; }
  running = (async () => {
    try {
      do { again = false; await update(); } while (again);
    } finally {
      running = null;
    }
  })();
  return running;
}

let last = null;  // the pen's previous point while it is down
function point(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * pad.width / r.width, (event.clientY - r.top) * pad.height / r.height];
}
pad.addEventListener("pointerdown", event => {
  pad.setPointerCapture(event.pointerId);
  last = point(event);
  ctx.fillStyle = "black";  // a dot: a tap is ink too (a line of length zero draws nothing)
  ctx.beginPath();
  ctx.arc(...last, PEN_WIDTH / 2, 0, 2 * Math.PI);
  ctx.fill();
  requestUpdate();
});
pad.addEventListener("pointermove", event => { if (last) draw(point(event)); });
for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => { last = null; requestUpdate(); });

const PEN_WIDTH = 20;  // in canvas pixels (the canvas is 280 x 280, whatever size it is shown at)
function draw(to) {
  Object.assign(ctx, { strokeStyle: "black", lineWidth: PEN_WIDTH, lineCap: "round", lineJoin: "round" });
  ctx.beginPath();
  ctx.moveTo(...last);
  ctx.lineTo(...to);
  ctx.stroke();
  last = to;
  requestUpdate();
}

document.getElementById("clear").addEventListener("click", clearPad);

// For the browser test (tests/test_web.py): the preprocessing, the models, and the page's state.
const demo = window.demo = {
  timings: [], lastImage: null, logits,
  mnistStyle: (rgba, h, w) => { const im = mnistStyle(loadGrey(rgba, h, w), h, w); return im && Array.from(im); },
  idle: () => running || Promise.resolve(),
};
MODELS.forEach(([name]) => modelPanel(name));
clearPad();
demo.ready = loadModels().then(requestUpdate);
