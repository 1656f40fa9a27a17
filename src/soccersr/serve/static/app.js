// The page: add photos, send each as its own job, follow the queue, compare and download.
//
// One job per photo: each gets its own progress and result, and a bad photo fails alone. Uploads
// go one at a time; a full server queue (429) is waited out and retried. Every API call carries
// the token when the server needs one (from the link's #token=..., or typed in; kept per tab).

import { makeZip } from "./zip.js";
import { Viewer } from "./viewer.js";

const POLL_MS = 700;
const POLL_AT_ONCE = 8;
const IMAGE_NAME = /\.(jpe?g|jpe|png|webp|tiff?|bmp)$/i;
const FORMAT_LABELS = { auto: "Same as the photo", png: "PNG", jpeg: "JPEG", webp: "WebP", tiff: "TIFF (no preview in most browsers)" };

const $ = (selector) => document.querySelector(selector);
const items = []; // {id, file, name, settings, jobId, job, state, el}
let token = sessionStorage.getItem("soccersr-token") || "";
let uploading = false;
let polling = false;
let nextItemId = 0;
const viewer = new Viewer($("#viewer"));
let viewing = null; // {item, url}

// --- the API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(path, { ...options, headers });
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`;
  try {
    message = (await response.json()).error || message;
  } catch (_) {
    /* not JSON: keep the status line */
  }
  if (response.status === 401) askForToken();
  throw new ApiError(response.status, message, Number(response.headers.get("Retry-After")) || 5);
}

function askForToken() {
  $("#token-panel").hidden = false;
  $("#token").focus();
}

function announce(text) {
  $("#status").textContent = text;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- settings ----------------------------------------------------------------------------

async function loadSettings() {
  let info;
  try {
    info = await (await api("/api/models")).json();
  } catch (error) {
    if (error.status !== 401) $("#limits").textContent = `The server did not answer: ${error.message}`;
    return false;
  }
  const model = $("#model");
  model.replaceChildren(
    ...info.models.map((m) => {
      const option = new Option(m.scale ? `${m.name} (×${m.scale})` : m.name, m.name);
      option.dataset.description = m.description;
      return option;
    }),
  );
  model.value = info.default;
  const format = $("#format");
  format.replaceChildren(...info.formats.map((f) => new Option(FORMAT_LABELS[f] || f, f)));
  showModelHelp();
  const mb = info.max_upload_bytes / 2 ** 20;
  const mp = info.max_pixels ? `, ${Math.round(info.max_pixels / 1e6)} megapixels` : "";
  $("#limits").textContent = `Up to ${Math.round(mb * 10) / 10} MB per photo${mp}. JPEG, PNG, WebP, TIFF or BMP.`;
  return true;
}

function showModelHelp() {
  const selected = $("#model").selectedOptions[0];
  $("#model-help").textContent = selected ? selected.dataset.description : "";
}

function currentSettings() {
  return { model: $("#model").value, outscale: $("#outscale").value, format: $("#format").value };
}

// --- adding photos -----------------------------------------------------------------------

function addFiles(files, { onlyImageNames = false } = {}) {
  const chosen = [...files].filter((f) => !onlyImageNames || (IMAGE_NAME.test(f.name) && !f.name.startsWith(".")));
  for (const file of chosen) {
    const item = { id: nextItemId++, file, name: file.webkitRelativePath || file.name, settings: currentSettings() };
    item.el = renderItem(item);
    items.push(item);
    setState(item, "waiting", "Waiting to upload");
  }
  $("#queue-empty").hidden = items.length > 0;
  if (chosen.length) announce(`${chosen.length} photo${chosen.length === 1 ? "" : "s"} added`);
  pumpUploads();
}

// A dropped folder arrives as a directory entry: walk it (readEntries returns a batch at a time).
async function filesFromEntry(entry) {
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const found = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const child of batch) found.push(...(await filesFromEntry(child)));
  }
  return found;
}

async function handleDrop(event) {
  event.preventDefault();
  $("#drop-zone").classList.remove("dragging");
  const entries = [...event.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return addFiles(event.dataTransfer.files);
  const direct = entries.filter((e) => e.isFile);
  const folders = entries.filter((e) => e.isDirectory);
  addFiles(await Promise.all(direct.map((e) => new Promise((ok, bad) => e.file(ok, bad)))));
  for (const folder of folders) addFiles(await filesFromEntry(folder), { onlyImageNames: true });
}

// --- the queue ---------------------------------------------------------------------------

function renderItem(item) {
  const li = document.createElement("li");
  li.className = "item";
  const thumb = document.createElement("img");
  thumb.className = "thumb";
  thumb.alt = "";
  item.localUrl = URL.createObjectURL(item.file);
  thumb.src = item.localUrl;
  const meta = document.createElement("div");
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = item.name;
  const state = document.createElement("div");
  state.className = "state";
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute("aria-label", `${item.name} progress`);
  meta.append(name, state, progress);
  const actions = document.createElement("div");
  actions.className = "actions";
  const compare = button("Compare", `Compare ${item.name} before and after`, () => openViewer(item));
  const download = button("Download", `Download the result of ${item.name}`, () => downloadItem(item));
  const retry = button("Retry", `Upload ${item.name} again`, () => {
    item.jobId = null;
    setState(item, "waiting", "Waiting to upload");
    pumpUploads();
  });
  compare.disabled = download.disabled = true;
  retry.hidden = true;
  actions.append(compare, download, retry);
  li.append(thumb, meta, actions);
  $("#queue").append(li);
  Object.assign(item, { stateEl: state, progressEl: progress, compareEl: compare, downloadEl: download, retryEl: retry });
  return li;
}

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function setState(item, state, text, progress) {
  item.state = state;
  item.el.dataset.state = state;
  item.stateEl.textContent = text;
  if (progress !== undefined) item.progressEl.value = progress;
  item.compareEl.disabled = item.downloadEl.disabled = state !== "done";
  item.retryEl.hidden = state !== "failed";
  $("#download-all").disabled = !items.some((i) => i.state === "done");
}

async function pumpUploads() {
  if (uploading) return;
  uploading = true;
  try {
    for (let item; (item = items.find((i) => i.state === "waiting")); ) await upload(item);
  } finally {
    uploading = false;
  }
}

async function upload(item) {
  const body = new FormData();
  body.append("file", item.file, item.file.name);
  for (const [key, value] of Object.entries(item.settings)) if (value) body.append(key, value);
  setState(item, "uploading", "Uploading…", 0);
  for (;;) {
    try {
      const created = await (await api("/api/jobs", { method: "POST", body })).json();
      item.jobId = created.id;
      setState(item, "queued", "In the queue", 0);
      pollJobs();
      return;
    } catch (error) {
      if (error.status === 429) {
        setState(item, "uploading", "The server queue is full; trying again shortly…", 0);
        await sleep(error.retryAfter * 1000);
      } else if (error.status === 401) {
        setState(item, "waiting", "Waiting for the token");
        return new Promise((resolve) => (item.resume = resolve));
      } else {
        setState(item, "failed", error.message, 0);
        announce(`${item.name}: ${error.message}`);
        return;
      }
    }
  }
}

async function pollJobs() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      const active = items.filter((i) => i.jobId && (i.state === "queued" || i.state === "running"));
      if (!active.length) break;
      // Jobs run in order: the first few are the ones that can change; a long queue costs no more requests.
      for (const item of active.slice(0, POLL_AT_ONCE)) {
        try {
          const job = await (await api(`/api/jobs/${item.jobId}`)).json();
          showJob(item, job);
        } catch (error) {
          if (error.status === 404) setState(item, "failed", "The server no longer has this job", 0);
          else if (error.status !== 401) item.stateEl.textContent = `Waiting for the server (${error.message})`;
        }
      }
      await sleep(POLL_MS);
    }
  } finally {
    polling = false;
  }
}

function showJob(item, job) {
  item.job = job;
  const file = job.files[0];
  if (job.status === "done") {
    setState(item, "done", `Done: ${file.output_width}×${file.output_height}`, 1);
    announce(`${item.name} is done`);
  } else if (job.status === "failed") {
    setState(item, "failed", job.error || "Failed", 0);
    announce(`${item.name} failed: ${job.error}`);
  } else if (job.status === "running") {
    setState(item, "running", `Upscaling… ${Math.round(job.progress * 100)}%`, job.progress);
  } else {
    setState(item, "queued", "In the queue", 0);
  }
}

// --- results -----------------------------------------------------------------------------

async function resultBlob(item) {
  return (await api(`/api/jobs/${item.jobId}/result`)).blob();
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function downloadItem(item) {
  try {
    saveBlob(await resultBlob(item), item.job.files[0].output_name);
  } catch (error) {
    announce(`${item.name}: ${error.message}`);
  }
}

async function downloadAll() {
  const done = items.filter((i) => i.state === "done");
  const all = $("#download-all");
  all.disabled = true;
  try {
    const entries = [];
    for (const [n, item] of done.entries()) {
      all.textContent = `Fetching ${n + 1} of ${done.length}…`;
      entries.push({ name: item.job.files[0].output_name, blob: await resultBlob(item) });
    }
    saveBlob(await makeZip(entries), "soccersr-results.zip");
    announce(`Zip of ${entries.length} results saved`);
  } catch (error) {
    announce(`Download all failed: ${error.message}`);
  } finally {
    all.textContent = "Download all (zip)";
    all.disabled = false;
  }
}

async function openViewer(item) {
  try {
    const blob = await resultBlob(item);
    if (viewing) URL.revokeObjectURL(viewing.url);
    viewing = { item, url: URL.createObjectURL(blob) };
    const file = item.job.files[0];
    viewer.open({
      name: item.name,
      beforeUrl: item.localUrl,
      afterUrl: viewing.url,
      width: file.output_width,
      height: file.output_height,
    });
    $("#viewer-heading").focus();
  } catch (error) {
    announce(`${item.name}: ${error.message}`);
  }
}

// --- wiring ------------------------------------------------------------------------------

function takeTokenFromLink() {
  const match = location.hash.match(/token=([^&]+)/);
  if (!match) return;
  token = decodeURIComponent(match[1]);
  sessionStorage.setItem("soccersr-token", token);
  history.replaceState(null, "", location.pathname + location.search); // keep it out of the address bar
}

function wire() {
  $("#files").addEventListener("change", (e) => {
    addFiles(e.target.files);
    e.target.value = "";
  });
  $("#folder").addEventListener("change", (e) => {
    addFiles(e.target.files, { onlyImageNames: true });
    e.target.value = "";
  });
  const zone = $("#drop-zone");
  // A photo dropped anywhere on the page is added, not opened by the browser in place of the page.
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("dragging");
  });
  document.addEventListener("dragleave", (e) => {
    if (!e.relatedTarget) zone.classList.remove("dragging");
  });
  document.addEventListener("drop", handleDrop);
  $("#model").addEventListener("change", showModelHelp);
  $("#download-all").addEventListener("click", downloadAll);
  $("#viewer-download").addEventListener("click", () => viewing && downloadItem(viewing.item));
  $("#token-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    token = $("#token").value.trim();
    sessionStorage.setItem("soccersr-token", token);
    if (await loadSettings()) {
      $("#token-panel").hidden = true;
      for (const item of items) if (item.resume) item.resume(), delete item.resume;
      pumpUploads();
      pollJobs();
    }
  });
}

takeTokenFromLink();
wire();
loadSettings();
