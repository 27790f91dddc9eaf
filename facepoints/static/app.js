// The facepoints page: upload a photo, draw the API's points and boxes on a canvas.
// Points and boxes are drawn here so their toggles are instant; pose axes and the
// glasses effect come from POST /v1/render (the same drawing code as the API).
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_CANVAS_SIDE = 1600; // enough detail on screen without huge canvases for 50-megapixel photos
const REGIONS = [ // iBUG 68: [first, last, colour]
  [0, 16, "#e6194b"], [17, 26, "#3cb44b"], [27, 35, "#ffe119"], [36, 47, "#0082c8"], [48, 67, "#f58231"],
];

const view = { file: null, result: null, photo: null, rendered: new Map(), request: 0, draws: 0 };

function setState(state, message) {
  $("app").dataset.state = state;
  $("status").textContent = message;
}

function query(extra) {
  const params = new URLSearchParams({ max_faces: $("max-faces").value || "20", ...extra });
  if ($("model").value) params.set("model", $("model").value);
  return params.toString();
}

async function post(path, extra) {
  const body = new FormData();
  body.append("image", view.file, view.file.name);
  const response = await fetch(`${path}?${query(extra)}`, { method: "POST", body });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const err = await response.json();
      if (err.error) message = err.error.message;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return response;
}

async function analyse(file) {
  const request = ++view.request;
  view.file = file;
  view.result = null;
  view.photo = null;
  view.rendered.clear();
  $("download").disabled = true;
  $("app").dataset.faces = "0";
  setState("busy", `Finding faces in ${file.name}…`);
  try {
    const result = await (await post("/v1/landmarks", {})).json();
    let photo = null;
    try {
      photo = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (_) { photo = null; } // e.g. TIFF: browsers cannot show it, the server can
    if (photo && (photo.width !== result.width || photo.height !== result.height)) photo = null;
    if (!photo) photo = await renderedBase({ pose: false, glasses: false });
    if (request !== view.request) return; // a newer photo was chosen meanwhile
    view.result = result;
    view.photo = photo;
    await draw();
    fillTable(result);
    $("download").disabled = false;
    $("app").dataset.faces = String(result.faces.length);
    const more = result.faces_found > result.faces.length ? ` (${result.faces_found} found, best ${result.faces.length} kept)` : "";
    setState("done", `${result.faces.length} face(s) in ${file.name}${more}, ${result.width} × ${result.height} pixels.`);
  } catch (err) {
    if (request !== view.request) return;
    setState("error", `Could not process ${file.name}: ${err.message}`);
    clearCanvas();
    fillTable({ faces: [] });
  }
}

async function renderedBase({ pose, glasses }) {
  const key = `${pose}-${glasses}`;
  if (!view.rendered.has(key)) {
    const extra = { points: "false", boxes: "false", pose: String(pose) };
    if (glasses) extra.effect = "glasses";
    const blob = await (await post("/v1/render", extra)).blob();
    view.rendered.set(key, await createImageBitmap(blob));
  }
  return view.rendered.get(key);
}

function clearCanvas() {
  const canvas = $("canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.setAttribute("aria-label", "No result");
  $("caption").textContent = "No result.";
}

async function draw() {
  const result = view.result;
  if (!result) return;
  const pose = $("show-pose").checked, glasses = $("show-glasses").checked;
  let base = view.photo;
  if (pose || glasses) {
    try {
      base = await renderedBase({ pose, glasses });
    } catch (err) {
      setState("error", `Could not draw pose axes or glasses: ${err.message}`);
    }
  }
  const canvas = $("canvas");
  const scale = Math.min(1, MAX_CANVAS_SIDE / Math.max(result.width, result.height));
  canvas.width = Math.max(1, Math.round(result.width * scale));
  canvas.height = Math.max(1, Math.round(result.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.drawImage(base, 0, 0, canvas.width, canvas.height);
  const px = (v) => (v + 0.5) * scale; // pixel centres are at integers (facepoints.geometry)
  const line = Math.max(1.5, Math.max(canvas.width, canvas.height) / 400);
  result.faces.forEach((face, i) => {
    const [x0, y0, x1, y1] = face.box;
    if ($("show-boxes").checked) {
      ctx.strokeStyle = "#ffff00";
      ctx.lineWidth = line;
      ctx.strokeRect(px(x0), px(y0), (x1 - x0) * scale, (y1 - y0) * scale);
      ctx.fillStyle = "#ffff00";
      ctx.font = `${Math.round(line * 8)}px system-ui, sans-serif`;
      ctx.fillText(String(i + 1), px(x0), Math.max(line * 8, px(y0) - line * 2));
    }
    if ($("show-points").checked) {
      face.points.forEach(([x, y], k) => {
        const region = face.points.length === 68 ? REGIONS.find(([a, b]) => k >= a && k <= b) : null;
        ctx.fillStyle = region ? region[2] : "#00ff00";
        ctx.beginPath();
        ctx.arc(px(x), px(y), line * 1.2, 0, 2 * Math.PI);
        ctx.fill();
      });
    }
  });
  const n = result.faces.length;
  canvas.setAttribute("aria-label", `${view.file.name} with ${n} face(s) marked`);
  $("caption").textContent = `${view.file.name}: ${n} face(s); model ${result.model}, ${result.scheme} points.`;
  $("app").dataset.draws = String(++view.draws); // lets tests (and curious users) see that a redraw finished
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (v === null || v === undefined) return "–";
  return String(v);
}

function fillTable(result) {
  const body = $("faces").querySelector("tbody");
  body.replaceChildren();
  result.faces.forEach((face, i) => {
    const row = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = String(i + 1);
    row.appendChild(th);
    cell(row, face.box.map((v) => v.toFixed(1)).join(", "));
    cell(row, face.detection_score.toFixed(2));
    cell(row, (face.scores.reduce((a, b) => a + b, 0) / Math.max(1, face.scores.length)).toFixed(2));
    cell(row, face.pose ? [face.pose.yaw, face.pose.pitch, face.pose.roll].map((v) => v.toFixed(1)).join(" / ") : "–");
    const cues = cell(row, "");
    if (face.expression) {
      const list = document.createElement("ul");
      for (const [name, value] of Object.entries(face.expression)) {
        if (typeof value === "object" && value !== null) continue;
        const item = document.createElement("li");
        item.textContent = `${name.replaceAll("_", " ")}: ${fmt(value)}`;
        list.appendChild(item);
      }
      cues.appendChild(list);
    } else {
      cues.textContent = "–";
    }
    body.appendChild(row);
  });
}

function download() {
  if (!view.result) return;
  const blob = new Blob([JSON.stringify({ file: view.file.name, ...view.result }, null, 1)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${view.file.name.replace(/\.[^.]*$/, "")}.landmarks.json`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function loadModels() {
  try {
    const info = await (await fetch("/v1/models")).json();
    for (const name of info.models) {
      const option = new Option(name, name, name === info.default, name === info.default);
      $("model").appendChild(option);
    }
  } catch (_) {
    $("model").appendChild(new Option("default", ""));
  }
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) analyse(e.target.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) analyse(file);
  });
  for (const id of ["show-points", "show-boxes", "show-pose", "show-glasses"]) $(id).addEventListener("change", draw);
  for (const id of ["model", "max-faces"]) $(id).addEventListener("change", () => { if (view.file) analyse(view.file); });
  $("download").addEventListener("click", download);
  loadModels();
}

setup();
