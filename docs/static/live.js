/* Live widgets: the bundled models sample in the reader's browser, with onnxruntime-web (its WebAssembly build).
   docs/live.py exports the networks (_live/NAME.onnx) and every number the loops need (_live/live.json), all read
   from the fashiondiff package; the loops below are fashiondiff.diffusion.sample and fashiondiff.flow.sample again,
   step for step. Each live widget's still (what the notebook saved) stays in the page: it is what shows when the
   page is read from disk (browsers run WebAssembly modules only for pages served over http), when the script
   fails, and in print. Nothing is loaded from outside the site. */
(function () {
  "use strict";
  const served = location.protocol === "http:" || location.protocol === "https:";
  const base = "_live/";

  /* ---- loading: onnxruntime-web, live.json and one session per network, each once ---- */
  let loading = null;
  function load() {
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = base + "ort/ort.wasm.min.js";
        s.onload = resolve;
        s.onerror = () => reject(new Error("onnxruntime-web did not load"));
        document.head.appendChild(s);
      }).then(() => {
        ort.env.wasm.numThreads = 1;                     // no SharedArrayBuffer without cross-origin isolation
        ort.env.wasm.wasmPaths = new URL(base + "ort/", location.href).href;
        return fetch(base + "live.json");
      }).then((r) => { if (!r.ok) throw new Error("live.json: " + r.status); return r.json(); });
    }
    return loading;
  }
  const sessions = {};
  function session(file) {
    if (!sessions[file]) sessions[file] = ort.InferenceSession.create(base + file);
    return sessions[file];
  }
  // one network call at a time: a WebAssembly session runs one request at once
  let queue = Promise.resolve();
  function run(file, feeds) {
    const next = queue.then(() => session(file)).then((s) => s.run(feeds)).then((r) => r.out.data);
    queue = next.catch(() => null);
    return next;
  }

  /* ---- noise: a seeded generator in the page (Mulberry32, Box-Muller), or given arrays (tests) ---- */
  function gaussian(seed) {
    let a = seed >>> 0;
    const uniform = () => {
      a = (a + 0x6D2B79F5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
    };
    return (size) => {
      const out = new Float32Array(size);
      for (let i = 0; i < size; i += 2) {
        const r = Math.sqrt(-2 * Math.log(uniform())), phi = 2 * Math.PI * uniform();
        out[i] = r * Math.cos(phi);
        if (i + 1 < size) out[i + 1] = r * Math.sin(phi);
      }
      return out;
    };
  }
  function given(arrays) {
    let k = 0;
    return (size) => {
      if (k >= arrays.length) throw new Error("the sampler drew more noise than was given");
      const a = Float32Array.from(arrays[k++]);
      if (a.length !== size) throw new Error("given noise has " + a.length + " numbers, not " + size);
      return a;
    };
  }

  /* ---- the network with classifier-free guidance: fashiondiff.guidance.predict ---- */
  const f32 = Math.fround;
  async function net(g, x, n, t, labels) {
    const times = g.t_type === "int64"
      ? new ort.Tensor("int64", new BigInt64Array(n).fill(BigInt(t)), [n])
      : new ort.Tensor("float32", new Float32Array(n).fill(t), [n]);
    return run(g.onnx, {
      x: new ort.Tensor("float32", x, [n, ...g.sample_shape]),
      t: times,
      y: new ort.Tensor("int64", BigInt64Array.from(labels, (v) => BigInt(v)), [n]),
    });
  }
  async function predict(g, x, labels, t, w) {
    const n = labels.length;
    if (w === 1) return net(g, x, n, t, labels);
    const nulls = labels.map(() => g.null);
    if (w === 0) return net(g, x, n, t, nulls);
    const both = new Float32Array(2 * x.length);
    both.set(x);
    both.set(x, x.length);
    const out = await net(g, both, 2 * n, t, labels.concat(nulls));
    const guided = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const uncond = out[x.length + i];
      guided[i] = uncond + f32(w) * f32(out[i] - uncond);
    }
    return guided;
  }
  function guidanceAt(st, sigma) {                                 // SamplingConfig.guidance_at
    const s = sigma === null ? Infinity : sigma, iv = st.guidance_interval;
    if (!iv || (iv[0] <= s && s <= (iv[1] === null ? Infinity : iv[1]))) return st.guidance;
    return 1;
  }

  /* ---- the loops ---- */
  // between two steps, let the page paint and answer (the network runs on the page's own thread) and say how far
  const between = (calls, k, total) => { calls.progress(k, total); return new Promise((r) => setTimeout(r, 0)); };

  async function sampleDiffusion(g, labels, st, noise, calls) {  // fashiondiff.diffusion.sample
    const size = labels.length * g.sample_shape.reduce((a, b) => a * b, 1);
    let x = noise(size);
    const ts = g.timesteps[st.steps];
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i], s = i + 1 < ts.length ? ts[i + 1] : 0;
      const w = guidanceAt(st, g.sigma[t]);
      calls.n += w === 0 || w === 1 ? 1 : 2;
      await between(calls, i, ts.length);
      const out = await predict(g, x, labels, t, w);
      const abT = f32(g.abar[t]), abS = f32(g.abar[s]);
      const rootT = f32(Math.sqrt(abT)), restT = f32(Math.sqrt(f32(1 - abT)));
      const x0 = new Float32Array(size);
      for (let j = 0; j < size; j++) {
        let v = g.prediction === "x0" ? out[j]
          : g.prediction === "eps" ? (x[j] - restT * out[j]) / rootT
          : rootT * x[j] - restT * out[j];
        if (g.clip !== null) v = Math.min(g.clip, Math.max(-g.clip, v));
        x0[j] = v;
      }
      if (s === 0) { x = x0; continue; }
      const next = new Float32Array(size);
      if (st.sampler === "ddpm") {                                 // NoiseSchedule.posterior
        const a = f32(abT / abS);
        const c0 = f32(Math.sqrt(abS) * (1 - a) / (1 - abT)), ct = f32(Math.sqrt(a) * (1 - abS) / (1 - abT));
        const sd = f32(Math.sqrt(f32((1 - a) * (1 - abS) / (1 - abT))));
        const z = noise(size);
        for (let j = 0; j < size; j++) next[j] = c0 * x0[j] + ct * x[j] + sd * z[j];
      } else {                                                     // DDIM, Song et al. 2021 eq. 12
        const ownEps = g.prediction === "eps" && g.clip === null;
        const sigma = f32(st.eta * Math.sqrt((1 - abS) / (1 - abT) * (1 - abT / abS)));
        const c0 = f32(Math.sqrt(abS)), ce = f32(Math.sqrt(1 - abS - sigma * sigma));
        const z = st.eta ? noise(size) : null;
        for (let j = 0; j < size; j++) {
          const eps = ownEps ? out[j] : (x[j] - rootT * x0[j]) / restT;
          next[j] = c0 * x0[j] + ce * f32(eps) + (z ? sigma * z[j] : 0);
        }
      }
      x = next;
    }
    return x;
  }
  async function sampleFlow(g, labels, st, noise, calls) {       // fashiondiff.flow.sample
    const size = labels.length * g.sample_shape.reduce((a, b) => a * b, 1);
    let x = noise(size);
    const grid = g.grid[st.steps];
    for (let k = 0; k + 1 < grid.length; k++) {
      const [t, sigmaT] = grid[k], [tn, sigmaN] = grid[k + 1];
      const w = guidanceAt(st, sigmaT);
      calls.n += w === 0 || w === 1 ? 1 : 2;
      await between(calls, k, grid.length - 1);
      const v = await predict(g, x, labels, t, w);
      const dt = f32(tn - t);
      const euler = new Float32Array(size);
      for (let j = 0; j < size; j++) euler[j] = x[j] + dt * v[j];
      if (st.sampler === "consistency") {
        const fresh = tn > 0 ? noise(size) : null;
        for (let j = 0; j < size; j++) {                         // (1 - t') x0_hat + t' fresh, x0_hat = x - t v
          euler[j] = f32(1 - tn) * f32(x[j] - f32(t) * v[j]) + (fresh ? f32(tn) * fresh[j] : 0);
        }
      } else if (st.sampler === "heun" && tn > 0) {
        const w2 = guidanceAt(st, sigmaN);
        calls.n += w2 === 0 || w2 === 1 ? 1 : 2;
        const v2 = await predict(g, euler, labels, tn, w2);
        for (let j = 0; j < size; j++) euler[j] = x[j] + f32(dt * 0.5) * f32(v[j] + v2[j]);
      }
      x = euler;
    }
    return x;
  }
  async function decode(file, z, n, shape) {
    if (!file) return z;
    return run(file, { z: new ort.Tensor("float32", z, [n, ...shape]) });
  }

  /* The page's sampler: images (n, 1, H, W) in [-1, 1] for ``labels`` as the settings say (sampler, steps,
     guidance, guidance_interval, eta), from noise drawn with ``seed`` or from the arrays ``noise`` (in order). */
  async function sample(name, settings, labels, seedOrNoise, progress = () => {}) {
    const live = await load(), g = live.generators[name];
    if (!g) throw new Error("no live model " + name);
    const row = live.samplers[settings.sampler];
    if (!row || row.process !== g.process) throw new Error(`the page does not run ${settings.sampler} for ${name}`);
    const noise = Array.isArray(seedOrNoise) ? given(seedOrNoise) : gaussian(seedOrNoise);
    const calls = { n: 0, progress };
    const loop = g.process === "diffusion" ? sampleDiffusion : sampleFlow;
    const z = await loop(g, labels, settings, noise, calls);
    const images = await decode(g.decode, z, labels.length, g.sample_shape);
    return { images, calls: calls.n };
  }
  /* NoiseExplorer's x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (DDPM eq. 4) for its images and noise. */
  async function noised(T, kind, t) {
    const nd = (await load()).noise, ab = f32(nd.abar[kind][T][t]);
    const a = f32(Math.sqrt(ab)), b = f32(Math.sqrt(f32(1 - ab)));
    return Float32Array.from(nd.images, (x0, j) => a * x0 + b * nd.noise[j]);
  }
  /* LatentInterpolator's decode((1 - a) z_first + a z_second). */
  async function interpolate(name, first, second, a) {
    const it = (await load()).interpolate[name], d = it.latent_shape.reduce((p, q) => p * q, 1);
    const z = new Float32Array(d);
    for (let j = 0; j < d; j++) z[j] = f32(1 - a) * it.latents[first * d + j] + f32(a) * it.latents[second * d + j];
    return decode(it.decode, z, 1, it.latent_shape);
  }
  window.fashiondiffLive = { load, sample, noised, interpolate, gaussian };

  /* ---- drawing: a row of (n, 1, H, W) images, grey, pixels kept square ---- */
  // in one row, or in two where the panel is narrower than one row (a phone)
  function draw(canvas, images, n, side, zoom) {
    const gap = 4, ctx = canvas.getContext("2d"), room = canvas.parentElement.clientWidth;
    const cols = n > 3 && n * (side * zoom + gap) - gap > room ? Math.ceil(n / 2) : n, rows = Math.ceil(n / cols);
    canvas.width = cols * (side * zoom + gap) - gap;
    canvas.height = rows * (side * zoom + gap) - gap;
    ctx.clearRect(0, 0, canvas.width, canvas.height);                // the page's ground between the pictures
    const one = new ImageData(side, side), small = document.createElement("canvas");
    small.width = small.height = side;
    ctx.imageSmoothingEnabled = false;
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < side * side; p++) {
        const v = Math.round((Math.min(1, Math.max(-1, images[i * side * side + p])) + 1) * 127.5);
        one.data.set([v, v, v, 255], 4 * p);
      }
      small.getContext("2d").putImageData(one, 0, 0);
      ctx.drawImage(small, (i % cols) * (side * zoom + gap), Math.floor(i / cols) * (side * zoom + gap),
                    side * zoom, side * zoom);
    }
  }

  /* ---- controls ---- */
  function control(label, input) {
    const l = document.createElement("label");
    l.className = "widget-control";
    const s = document.createElement("span");
    s.className = "widget-label";
    s.textContent = label;
    l.append(s, input);
    if (input.type === "range") {
      const o = document.createElement("output");
      const show = () => { o.textContent = input.value; };
      input.addEventListener("input", show);
      show();
      l.append(o);
    }
    return l;
  }
  function select(options, value) {                               // options: [[label, value], ...]
    const s = document.createElement("select");
    for (const [label, v] of options) s.add(new Option(label, JSON.stringify(v)));
    s.value = JSON.stringify(value);
    if (s.selectedIndex < 0) s.selectedIndex = 0;
    s.read = () => JSON.parse(s.value);
    return s;
  }
  function range(min, max, step, value) {
    const r = document.createElement("input");
    Object.assign(r, { type: "range", min, max, step });
    r.value = value;
    r.read = () => Number(r.value);
    return r;
  }
  function row(...items) {
    const d = document.createElement("div");
    d.className = "widget-hbox";
    d.append(...items);
    return d;
  }

  /* Each widget: build the controls from the still's values, redraw on every change (the last change wins). */
  function panel(build) {
    const box = document.createElement("div"), status = document.createElement("div");
    const canvas = document.createElement("canvas");
    box.className = "live-panel widget-vbox";
    status.className = "widget-text live-status";
    canvas.className = "live-canvas";
    let busy = false, again = false;
    const redraw = async () => {
      if (busy) { again = true; return; }
      busy = true;
      do {                                                         // controls moved while drawing: draw again
        again = false;
        try {
          status.textContent = await paint(canvas, (text) => { status.textContent = text; });
        } catch (e) {
          status.textContent = "could not draw: " + e.message;
        }
      } while (again);
      box.dataset.draws = String(Number(box.dataset.draws || 0) + 1);
      busy = false;
    };
    // a cheap widget (no sampling loop) follows a slider as it moves; a sampler redraws when the slider is let go
    const { controls, paint, eager } = build();
    for (const c of controls) {
      c.querySelectorAll("select, input").forEach((i) => i.addEventListener(eager ? "input" : "change", redraw));
    }
    box.append(...controls, canvas, status);
    return { box, redraw };
  }

  function noiseWidget(live, init) {
    const nd = live.noise;
    const T = select(Object.keys(nd.abar.linear).map((k) => [k, Number(k)]), Number(init.T || 10));
    const kind = select(Object.keys(nd.abar).map((k) => [k, k]), init.schedule || "linear");
    const t = range(0, T.read(), 1, init.t === undefined ? 5 : init.t);
    const label = document.createElement("div");
    label.className = "widget-text";
    let shownT = T.read();
    T.addEventListener("input", () => {             // as NoiseExplorer: t keeps its fraction of the way (runs first)
      const t0 = t.read();
      t.max = T.read();
      t.value = Math.round(t0 * T.read() / shownT);
      t.dispatchEvent(new Event("input"));
      shownT = T.read();
    });
    return {
      eager: true,
      controls: [row(control("T", T), control("schedule", kind)), control("t", t), label],
      async paint(canvas) {
        const ab = nd.abar[kind.read()][T.read()][t.read()], snr = t.read() > 0 ? ab / (1 - ab) : Infinity;
        label.textContent = `t = ${t.read()} of T = ${T.read()} (${kind.read()}):  abar_t = ${ab.toFixed(4)},  ` +
          `SNR = ${Number.isFinite(snr) ? snr.toPrecision(3) : "inf"}`;
        draw(canvas, await noised(T.read(), kind.read(), t.read()), nd.shape[0], nd.shape[2], 4);
        return "";
      },
    };
  }

  // "w at": the still's menu ("sigma 0.5..2", "every step"), else the model's own interval and every step
  function interval(label) {
    const m = /^sigma ([\d.e+-]+)\.\.([\d.e+-]+|inf)$/.exec(label || "");
    return m ? [Number(m[1]), m[2] === "inf" ? null : Number(m[2])] : null;
  }
  function intervals(labels, own) {
    if (!labels) labels = own ? [`sigma ${own[0]}..${own[1] === null ? "inf" : own[1]}`, "every step"] : ["every step"];
    return labels.map((l) => [l, interval(l)]);
  }

  function sampleWidget(live, name, init) {
    const g = live.generators[name], d = g.sampling, classes = live.classes;
    const samplers = Object.entries(live.samplers).filter(([, s]) => s.process === g.process);
    const label = select(classes.map((c, i) => [c, i]), Math.max(0, classes.indexOf(init.class)));
    // a sampler the page does not run (the solvers of notebook 15) starts the panel at the model's own
    const own = samplers.some(([s]) => s === init.sampler) ? init.sampler : d.sampler;
    const sampler = select(samplers.map(([s]) => [s, s]), own);
    const seed = range(0, 99, 1, init.seed || 0);
    const steps = range(1, g.max_steps, 1, Math.min(g.max_steps, init.steps || d.steps));
    const eta = range(0, 1, 0.25, init.eta === undefined ? d.eta : init.eta);
    const w = range(0, 5, 0.5, init.guidance === undefined ? d.guidance : init.guidance);
    const where = select(intervals(init["w at options"], d.guidance_interval), interval(init["w at"]));
    const summary = document.createElement("div");
    summary.className = "widget-text";
    let chosenEta = eta.read();                                    // DDIM's eta, kept while a fixed-eta sampler runs
    eta.addEventListener("input", () => { if (!eta.disabled) chosenEta = eta.read(); });
    const fixEta = () => {
      const fixed = live.samplers[sampler.read()].fixed_eta;
      eta.disabled = fixed !== null;
      eta.value = fixed !== null ? fixed : chosenEta;
      eta.dispatchEvent(new Event("input"));
      summary.textContent = live.samplers[sampler.read()].summary;
    };
    sampler.addEventListener("change", fixEta);
    fixEta();
    const etaControl = control("eta", eta);
    etaControl.hidden = samplers.every(([, s]) => s.fixed_eta !== null);  // a flow's samplers: eta is never a choice
    const n = 8;                                                  // as many as the notebooks' explorers draw
    return {
      controls: [row(control("class", label), control("sampler", sampler)), summary, control("seed", seed),
                 control("steps", steps), etaControl, row(control("guidance", w), control("w at", where))],
      async paint(canvas, say) {
        const st = { sampler: sampler.read(), steps: steps.read(), guidance: w.read(),
                     guidance_interval: where.read(), eta: eta.read() };
        const started = performance.now();
        const { images, calls } = await sample(name, st, Array(n).fill(label.read()), seed.read(),
                                               (k, total) => say(`sampling: step ${k + 1} of ${total}`));
        const side = Math.round(Math.sqrt(images.length / n));
        draw(canvas, images, n, side, side <= 16 ? 4 : 2);
        const seconds = ((performance.now() - started) / 1000).toFixed(2);
        return `${calls} network call${calls === 1 ? "" : "s"} per image, ${seconds} s` +
          (st.guidance === 0 ? " (w = 0: unconditional, the class is not used)" : "");
      },
    };
  }

  function interpolateWidget(live, name, init) {
    const it = live.interpolate[name], classes = live.classes, side = 28, d = side * side;
    const first = select(classes.map((c, i) => [c, i]), Math.max(0, classes.indexOf(init.from)));
    const second = select(classes.map((c, i) => [c, i]), Math.max(0, classes.indexOf(init.to)));
    const a = range(0, 1, 0.1, init.a === undefined ? 0.5 : init.a);
    return {
      eager: true,
      controls: [row(control("from", first), control("to", second)), control("a", a)],
      async paint(canvas) {
        const middle = await interpolate(name, first.read(), second.read(), a.read());
        const images = new Float32Array(3 * d);
        images.set(it.images.slice(first.read() * d, (first.read() + 1) * d));
        images.set(middle, d);
        images.set(it.images.slice(second.read() * d, (second.read() + 1) * d), 2 * d);
        draw(canvas, images, 3, side, 3);
        return "left: the first test image of \"from\"; middle: the decoder at a; right: that of \"to\"";
      },
    };
  }

  // what the live panel runs, and what of the notebook's panel it leaves out
  function sampleCaption(live, name, init) {
    const g = live.generators[name], cap = g.model_max_steps > g.max_steps;
    const missing = (init["sampler options"] || []).filter((s) => !(s in live.samplers));
    return `Live, in your browser (onnxruntime-web): the bundled ${name} model, ${g.summary}. Seeds draw their ` +
      "noise in the page, so a seed's samples differ from Python's." +
      (missing.length ? ` The notebook's panel also offers ${missing.join(", ")}.` : "") +
      (cap ? ` Steps here go up to ${g.max_steps}, in the notebook ${g.model_max_steps}.` : "");
  }

  function start(host) {
    const still = host.querySelector(".widget-still");
    if (!served) {
      const note = document.createElement("p"), page = location.pathname.split("/").pop();
      note.className = "widget-note live-off";
      note.textContent = "A still picture. To try it live, serve the site: python -m http.server -d " +
        `docs/_build/html, then open http://localhost:8000/${page}.`;
      host.append(note);
      return;
    }
    load().then((live) => {
      const init = JSON.parse(host.dataset.initial || "{}"), kind = host.dataset.live, name = host.dataset.model;
      const make = { noise: () => noiseWidget(live, init), sample: () => sampleWidget(live, name, init),
                     interpolate: () => interpolateWidget(live, name, init) }[kind];
      const { box, redraw } = panel(make);
      const caption = document.createElement("p");
      caption.className = "widget-note";
      caption.textContent = kind === "sample" ? sampleCaption(live, name, init)
        : "Live: computed in your browser, no Python needed.";
      box.append(caption);
      host.insertBefore(box, still);
      still.classList.add("live-replaced");
      return redraw();
    }).catch((e) => {
      const note = document.createElement("p");
      note.className = "widget-note live-off";
      note.textContent = "The live version could not start (" + e.message + "); this is the still.";
      host.append(note);
    });
  }
  document.querySelectorAll(".live-widget").forEach(start);
})();
