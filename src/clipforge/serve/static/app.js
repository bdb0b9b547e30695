// clipforge page: search (when the server has an index) and zero-shot classification. No dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("clipforge-key") || "", classifyFile: null, searchFile: null };

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.key) h["Authorization"] = "Bearer " + state.key;
  return h;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({}, options, { headers: headers((options || {}).headers) }));
  const body = (response.headers.get("content-type") || "").includes("json") ? await response.json() : null;
  if (response.status === 401) {
    $("key-form").hidden = false;
    $("api-key").focus();
  }
  if (!response.ok) {
    const e = (body && body.error) || {};
    throw new Error((e.field ? e.field + ": " : "") + (e.message || response.statusText));
  }
  return body;
}

async function start() {
  try {
    const info = await api("/v1/info");
    $("status").textContent = "model " + info.model + " (" + (info.family || "?") + ", " + info.embed_dim + "-d)" +
      (info.search ? " · index loaded" : " · no index");
    $("search-panel").hidden = !info.search;
    document.body.dataset.ready = "1";
    showError("");
  } catch (err) {
    $("status").textContent = "not ready";
    showError(err.message);
    if (!/API key/.test(err.message)) setTimeout(start, 1000);
  }
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function busy(form, on) {
  form.querySelectorAll("button").forEach((b) => { b.disabled = on; });
  form.setAttribute("aria-busy", on ? "true" : "false");
}

// --- search -----------------------------------------------------------------------------------------------
async function search(event) {
  event.preventDefault();
  const form = $("search-form");
  const text = $("search-text").value.trim();
  if (!text && !state.searchFile) { showError("type a text query or drop an image"); return; }
  const body = { k: Number($("search-k").value) || 12, sort: $("filter-sort").value };
  if (text) body.text = text;
  if ($("search-auto").checked) body.min_score = "auto";
  for (const name of ["after", "before", "camera", "near", "folder"]) {
    const value = $("filter-" + name).value.trim();
    if (value) body[name] = value;
  }
  busy(form, true);
  try {
    if (state.searchFile) body.image = await readAsDataURL(state.searchFile);
    const result = await api("/v1/search", { method: "POST", body: JSON.stringify(body),
                                              headers: { "Content-Type": "application/json" } });
    renderHits(result.results, result.reason);
    showError("");
  } catch (err) {
    showError(err.message);
  } finally {
    busy(form, false);
  }
}

function renderHits(hits, reason) {
  const list = $("search-results");
  list.replaceChildren();
  if (!hits.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = reason || "no results";
    if (reason) {  // auto found no match: offer the closest images anyway
      const all = document.createElement("button");
      all.type = "button";
      all.className = "link";
      all.textContent = "show all";
      all.addEventListener("click", () => { $("search-auto").checked = false; $("search-form").requestSubmit(); });
      li.append(" ", all);
    }
    list.append(li);
    return;
  }
  for (const hit of hits) {
    const li = document.createElement("li");
    li.className = "hit";
    li.dataset.id = hit.id;
    li.dataset.score = hit.score;
    const a = document.createElement("a");
    a.href = hit.image_url;
    a.addEventListener("click", (event) => { event.preventDefault(); openViewer(hit, img.alt); });
    const img = document.createElement("img");
    img.alt = hit.path.split("/").slice(-2).join("/");
    img.loading = "lazy";
    loadImage(img, hit.thumbnail_url);
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.innerHTML = '<span class="score"></span> <span class="name"></span>';
    meta.querySelector(".score").textContent = hit.score.toFixed(3);
    meta.querySelector(".name").textContent = img.alt;
    if (hit.taken) {
      const when = document.createElement("span");
      when.className = "taken";
      when.textContent = hit.taken.slice(0, 10);
      if (hit.taken_from === "mtime") when.title = "no date in the photo: the file's modification date";
      meta.append(" ", when);
    }
    a.append(img, meta);
    li.append(a);
    list.append(li);
  }
}

async function openViewer(hit, name) {
  // The full image (a JPEG rendering for HEIC/RAW files), fetched with the API key like the thumbnails.
  const image = document.createElement("img");  // made here, so the page never holds an empty <img>
  image.id = "viewer-image";
  image.alt = name;
  $("viewer-box").replaceChildren(image);
  $("viewer-caption").textContent = [name, hit.taken, hit.camera].filter(Boolean).join(" · ");
  $("viewer").showModal();
  await loadImage(image, hit.image_url);
}

async function loadImage(img, url) {
  // Thumbnails need the API key too, so they are fetched and shown as object URLs.
  try {
    const response = await fetch(url, { headers: headers() });
    if (response.ok) img.src = URL.createObjectURL(await response.blob());
  } catch (err) { /* the score and name still show */ }
}

// --- classify ---------------------------------------------------------------------------------------------
function parseLabels(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter((s) => s.length);
}

async function classify(event) {
  event.preventDefault();
  const form = $("classify-form");
  const labels = parseLabels($("labels").value);
  if (!state.classifyFile) { showError("choose an image to classify"); return; }
  if (!labels.length) { showError("type at least one label"); $("labels").focus(); return; }
  const data = new FormData();
  data.append("images", state.classifyFile, state.classifyFile.name || "image");
  labels.forEach((l) => data.append("labels", l));
  const template = $("templates").value.trim();
  if (template) data.append("templates", template);
  busy(form, true);
  try {
    const result = await api("/v1/classify", { method: "POST", body: data });
    renderBars(result.results[0]);
    showError("");
  } catch (err) {
    showError(err.message);
  } finally {
    busy(form, false);
  }
}

function renderBars(scores) {
  const list = $("classify-results");
  list.replaceChildren();
  for (const { label, score } of scores) {
    const li = document.createElement("li");
    li.className = "bar";
    li.dataset.label = label;
    li.dataset.score = score;
    const pct = (100 * score).toFixed(1) + "%";
    li.innerHTML = '<div class="label"><span class="name"></span><span class="value"></span></div>' +
      '<div class="track" role="img"><div class="fill"></div></div>';
    li.querySelector(".name").textContent = label;
    li.querySelector(".value").textContent = pct;
    li.querySelector(".track").setAttribute("aria-label", label + " " + pct);
    li.querySelector(".fill").style.width = pct;
    list.append(li);
  }
}

// --- drop zones -------------------------------------------------------------------------------------------
function dropZone(zoneId, inputId, onFile) {
  const zone = $(zoneId), input = $(inputId);
  input.addEventListener("change", () => { if (input.files[0]) onFile(input.files[0]); });
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) onFile(file);
  });
}

function setClassifyFile(file) {
  state.classifyFile = file;
  // the preview <img> exists only once a file is chosen: before that an empty-state hint, never a broken image
  let preview = $("classify-preview");
  if (!preview) {
    preview = document.createElement("img");
    preview.id = "classify-preview";
    preview.alt = "the image to classify";
    $("classify-preview-box").append(preview);
  }
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  $("classify-empty").hidden = true;
}

function setSearchFile(file) {
  state.searchFile = file;
  $("search-query-image").textContent = file ? "image query: " + file.name + " (press Search)" : "";
  $("search-query").hidden = !file;
  if (!file) $("search-file").value = "";
}

$("search-form").addEventListener("submit", search);
$("viewer").addEventListener("close", () => $("viewer-box").replaceChildren());
$("classify-form").addEventListener("submit", classify);
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.key = $("api-key").value.trim();
  sessionStorage.setItem("clipforge-key", state.key);
  $("key-form").hidden = true;
  start();
});
dropZone("classify-drop", "classify-file", setClassifyFile);
dropZone("search-drop", "search-file", setSearchFile);
$("search-clear-image").addEventListener("click", () => { setSearchFile(null); $("search-text").focus(); });
start();
