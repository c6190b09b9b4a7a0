// streamgru live view: Server-Sent Events from /events, one canvas per stream.
// No dependencies, no build step. Every text from the server goes through textContent.
"use strict";

const MAX_LANES = 4; // input channels drawn (the model's outputs get a lane of their own)
const views = new Map(); // stream id -> view state
let windowS = 10;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function stat(label, cls) {
  const s = el("span", "stat " + cls);
  s.append(label + " ");
  const b = el("b", "", "–");
  s.append(b);
  return [s, b];
}

function makeView(id) {
  const section = el("section", "stream");
  section.dataset.stream = id;
  section.dataset.frames = "0";
  section.dataset.points = "0";
  section.dataset.beatsShown = "0";
  section.dataset.beatsTotal = "0";
  const head = el("header");
  head.append(el("h2", "", id));
  const [hrS, hr] = stat("heart rate", "hr");
  const [lostS, lost] = stat("samples lost", "lost");
  const [latS, lat] = stat("latency", "lat");
  const [rateS, rate] = stat("rate", "fs");
  head.append(hrS, lostS, latS, rateS);
  const canvas = el("canvas");
  section.append(head, canvas);
  const empty = document.getElementById("empty");
  if (empty) empty.remove();
  document.getElementById("streams").append(section);
  return { section, canvas, hr, lost, lat, rate, at: [], min: [], max: [], beats: [],
           fs: 0, bucket: 1, nInputs: 0, labels: [] };
}

function merge(v, msg) {
  v.fs = msg.fs; v.bucket = msg.bucket; v.nInputs = msg.n_inputs; v.labels = msg.labels;
  // Points not after the last one kept: a new connection (the ring again from its start) or a
  // stream that started its index again; start afresh, or old points would never be dropped.
  const back = msg.at.length && v.at.length && msg.at[0] <= v.at[v.at.length - 1];
  if (back) v.beats = [];
  if (msg.skipped || back) { v.at = []; v.min = []; v.max = []; }
  const k = msg.min.length;
  while (v.min.length < k) { v.min.push([]); v.max.push([]); }
  for (let j = 0; j < msg.at.length; j++) v.at.push(msg.at[j]);
  for (let c = 0; c < k; c++) {
    for (let j = 0; j < msg.at.length; j++) { v.min[c].push(msg.min[c][j]); v.max[c].push(msg.max[c][j]); }
  }
  for (const b of msg.beats) v.beats.push(b);
  v.section.dataset.beatsTotal = String(Number(v.section.dataset.beatsTotal) + msg.beats.length);
  const latest = v.at.length ? v.at[v.at.length - 1] + v.bucket : 0;
  const oldest = latest - windowS * v.fs;
  let drop = 0;
  while (drop < v.at.length && v.at[drop] < oldest) drop++;
  if (drop) {
    v.at.splice(0, drop);
    for (let c = 0; c < k; c++) { v.min[c].splice(0, drop); v.max[c].splice(0, drop); }
  }
  v.beats = v.beats.filter((b) => b[0] >= oldest);
  v.hr.textContent = msg.hr === null ? "–" : msg.hr.toFixed(0) + " bpm";
  v.lost.textContent = String(msg.lost);
  v.lat.textContent = msg.latency_ms === null ? "–" : msg.latency_ms.toFixed(1) + " ms";
  v.rate.textContent = v.fs + " Hz";
  v.latest = latest;
}

function lanesOf(v) {
  const lanes = [];
  for (let c = 0; c < Math.min(v.nInputs, MAX_LANES); c++) lanes.push({ c, color: "--sig" });
  if (v.min.length > v.nInputs) lanes.push({ c: v.nInputs, color: "--out" });
  return lanes;
}

function draw(v) {
  const cv = v.canvas;
  const dpr = window.devicePixelRatio || 1;
  const W = Math.max(1, Math.round(cv.clientWidth * dpr));
  const H = Math.max(1, Math.round(cv.clientHeight * dpr));
  if (cv.width !== W || cv.height !== H) { cv.width = W; cv.height = H; }
  const g = cv.getContext("2d");
  const css = getComputedStyle(document.documentElement);
  g.clearRect(0, 0, W, H);
  const lanes = lanesOf(v);
  if (!lanes.length || !v.at.length) return;
  const span = windowS * v.fs;
  const x = (i) => W - ((v.latest - i) / span) * W;
  const laneH = H / lanes.length;
  g.font = `${12 * dpr}px system-ui, sans-serif`;
  lanes.forEach((lane, n) => {
    const lo = v.min[lane.c], hi = v.max[lane.c];
    let a = Infinity, b = -Infinity;
    for (let j = 0; j < lo.length; j++) {
      if (lo[j] !== null && lo[j] < a) a = lo[j];
      if (hi[j] !== null && hi[j] > b) b = hi[j];
    }
    if (!(b > a)) { a -= 1; b += 1; }
    const top = n * laneH + 4 * dpr, h = laneH - 8 * dpr;
    const y = (val) => top + h - ((val - a) / (b - a)) * h;
    g.strokeStyle = css.getPropertyValue(lane.color).trim() || "#5ec8f2";
    g.lineWidth = Math.max(1, dpr);
    g.beginPath();
    for (let j = 0; j < lo.length; j++) {
      if (lo[j] === null || hi[j] === null) continue;
      const px = x(v.at[j]);
      g.moveTo(px, y(hi[j]));
      g.lineTo(px, y(lo[j]) + 0.5);
      if (j + 1 < lo.length && lo[j + 1] !== null) g.lineTo(x(v.at[j + 1]), y(lo[j + 1]));
    }
    g.stroke();
    g.fillStyle = css.getPropertyValue("--dim").trim() || "#7d8a96";
    g.fillText(v.labels[lane.c] || "", 6 * dpr, top + 12 * dpr);
  });
  g.strokeStyle = css.getPropertyValue("--beat").trim() || "#ff5d73";
  g.fillStyle = g.strokeStyle;
  g.lineWidth = 2 * dpr;
  let shown = 0;
  for (const [index] of v.beats) {
    const px = x(index);
    if (px < 0 || px > W) continue;
    shown++;
    g.beginPath(); g.moveTo(px, 0); g.lineTo(px, H); g.stroke();
    g.fillText("♥", px + 3 * dpr, 14 * dpr);
  }
  v.section.dataset.beatsShown = String(shown);
}

function onMessage(ev) {
  const msg = JSON.parse(ev.data);
  windowS = msg.window_s || windowS;
  const status = document.getElementById("status");
  status.dataset.state = "live";
  status.textContent = "live · " + new Date(msg.t * 1000).toLocaleTimeString();
  for (const [id, s] of Object.entries(msg.streams)) {
    let v = views.get(id);
    if (!v) { v = makeView(id); views.set(id, v); }
    merge(v, s);
    draw(v);
    v.section.dataset.frames = String(Number(v.section.dataset.frames) + 1);
    v.section.dataset.points = String(v.at.length);
    v.section.dataset.latest = String(v.latest);
  }
  for (const [id, v] of views) { // a stream the daemon no longer runs (a reload) leaves the page
    if (!(id in msg.streams)) { v.section.remove(); views.delete(id); }
  }
}

const source = new EventSource("events");
source.onmessage = onMessage;
source.onerror = () => {
  const status = document.getElementById("status");
  status.dataset.state = "lost";
  status.textContent = "connection lost: retrying…";
};
