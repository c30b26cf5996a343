// The labelling page of sklearn-taskres. Plain JavaScript, no dependency, no build step.
//
// Two lanes of images are held ahead, already decoded, so that a key press shows the next
// image at once: the policy's picks (chosen by the model with every saved label, asked for
// again after each refit) and uniform random picks (the audits, and the fallback when labels
// come faster than refits: a stale model's pick is never shown while a random one is there).
// Every change (a decision, an undo, a skip, a grid, a class) leaves at once on one ordered
// channel of its own, never behind reads; it is retried until the server has it, sent again
// on closing the tab, and the page says how many are not saved yet. Everything that came from
// a file or from the person (file names, class names) goes into the page as text.
"use strict";

const RANKED = 6;          // the policy's picks held ahead
const RANDOM = 8;          // uniform random picks held ahead
const BATCH = 100;         // most changes per request
const GRID_SIZE = 24;      // images per grid page
const POLL_MS = 1000;      // how often the state is read while the page is open
const RETRY_MS = [250, 500, 1000, 2000, 4000];

const $ = (id) => document.getElementById(id);
const page = {
  state: null,             // the server's state (counts, classes, models, estimates)
  current: null,           // the item on screen
  ranked: [],              // the policy's picks, best first
  rankedKind: "model",     // "coverage" (cold start: any order of them is good) or "model"
  rankedBasis: -1,         // decisions of this page the choosing model had seen
  random: [],              // uniform random picks
  images: new Map(),       // index -> {img, ready, decoded}: image bytes prefetched
  view: "single",
  grid: [],
  rejected: new Set(),
  modelVersion: null,
  pressedAt: null,
  outbox: [],              // changes not saved yet, in order: {change, item, weight, sent}
  sending: false,
  failures: 0,
  offline: null,           // why the server is not answering, or null
  history: [],             // the items decided on this page, the last one last (for undo)
  made: 0,                 // weight of the changes made on this page (decisions count 1)
  saved: 0,                // weight of those the server has answered
  asking: false,           // a request for the next images is on its way
  askAgain: false,
  savedWaiters: [],
};
const pageId = Array.from(crypto.getRandomValues(new Uint8Array(8)),
  (byte) => byte.toString(16).padStart(2, "0")).join("");
let changeCount = 0;
// Key press to next image shown, in milliseconds, and what was shown (read by the benchmark).
window.labellingLatencies = [];
window.labellingStats = { changes: 0, saved: 0, ranked: 0, random: 0, stale: 0 };

// ---------------------------------------------------------------- reads

async function request(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (error) { /* not JSON */ }
    throw new Error(message);
  }
  return response.json();
}

function showError(error) {
  const box = $("message");
  box.textContent = String(error && error.message ? error.message : error);
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

// ---------------------------------------------------------------- changes, saved in order

function describe(entry) {
  const change = entry.change;
  const name = entry.item ? entry.item.name : "";
  if (change.op === "decide") return `${name} → ${change.none ? "none of these" : change.label}`;
  if (change.op === "undo") return `undo ${name}`.trim();
  if (change.op === "skip") return `skip ${name}`;
  if (change.op === "grid") return `${change.accepted.length} image(s) → ${change.label}`;
  return `new class ${change.name}`;
}

function renderUnsaved() {
  const n = page.outbox.length;
  const box = $("unsaved");
  box.hidden = n === 0;
  box.textContent = `${n} change${n === 1 ? "" : "s"} not saved yet`;
  const offline = $("offline");
  offline.hidden = page.offline === null;
  if (page.offline !== null) {
    offline.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = `The labelling server is not answering (${page.offline}). `;
    const what = document.createElement("span");
    what.textContent = n
      ? `${n} change${n === 1 ? " is" : "s are"} not saved: `
        + page.outbox.map(describe).join(", ") + ". They are sent again while this page is open."
      : "Every decision made here is saved.";
    offline.append(title, what);
  }
}

// Queue `change` to be saved; `weight` is how many labels it changes (for the freshness of picks).
function save(change, { item = null, weight = 0, done = null } = {}) {
  changeCount += 1;
  change.id = `${pageId}-${changeCount}`;
  page.outbox.push({ change, item, weight, done, sent: false });
  page.made += weight;
  window.labellingStats.changes += 1;
  renderUnsaved();
  pump();
}

function whenSaved() {
  if (!page.outbox.length) return Promise.resolve();
  return new Promise((resolve) => page.savedWaiters.push(resolve));
}

function answered(entry, result) {
  page.outbox.splice(page.outbox.indexOf(entry), 1);
  page.saved += entry.weight;
  window.labellingStats.saved += 1;
  if (!result.ok) showError(`Not saved: ${describe(entry)}: ${result.error}`);
  else if (entry.done) entry.done(result);
}

async function pump() {
  if (page.sending || !page.outbox.length) return;
  page.sending = true;
  const batch = page.outbox.slice(0, BATCH);
  for (const entry of batch) entry.sent = true;
  let body = null;
  try {
    const response = await fetch("/api/changes", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ changes: batch.map((entry) => entry.change) }),
    });
    try { body = await response.json(); } catch (error) { body = null; }
    if (!body || !Array.isArray(body.results)) {
      throw new Error(`${response.status} ${response.statusText}`.trim());
    }
  } catch (error) {
    // Not answered (the server is gone, or refused the request as a whole): kept, sent again.
    page.failures += 1;
    page.offline = error instanceof TypeError ? "it may have been stopped" : String(error.message);
    renderUnsaved();
    const wait = RETRY_MS[Math.min(page.failures - 1, RETRY_MS.length - 1)];
    setTimeout(() => { page.sending = false; pump(); }, wait);
    return;
  }
  page.failures = 0;
  page.offline = null;
  const byId = new Map(batch.map((entry) => [entry.change.id, entry]));
  for (const result of body.results) {
    const entry = byId.get(result.id);
    if (entry) answered(entry, result);
  }
  page.sending = false;
  renderUnsaved();
  if (body.state) renderState(body.state);
  if (page.outbox.length) pump();
  else page.savedWaiters.splice(0).forEach((resolve) => resolve());
  askForNext(body.state ? body.state.version : undefined);
}

// On closing or leaving: whatever is not saved yet goes in one request that outlives the page
// (the server applies each change once, so one already on its way is not applied twice).
function sendTheRest() {
  if (!page.outbox.length) return;
  fetch("/api/changes", {
    method: "POST", keepalive: true, headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ changes: page.outbox.map((entry) => entry.change) }),
  }).catch(() => {});
}

// ---------------------------------------------------------------- the lanes

function prefetch(item) {
  let image = page.images.get(item.index);
  if (!image) {
    const img = new Image();
    img.alt = "";
    img.src = `/api/image/${item.index}`;
    image = { img, decoded: false };
    image.ready = img.decode().then(() => { image.decoded = true; return true; }, () => false);
    page.images.set(item.index, image);
  }
  item.image = image;
  return item;
}

function pendingIndices() {
  const indices = [];
  for (const { change } of page.outbox) {
    if (change.index !== undefined && change.index !== null) indices.push(change.index);
    if (change.op === "grid") indices.push(...change.accepted, ...change.rejected);
  }
  return indices;
}

function heldIndices() {
  const held = [...page.ranked, ...page.random].map((item) => item.index);
  if (page.current) held.unshift(page.current.index);
  return held;
}

// Ask for fresh picks; with `after`, once the model has been refitted on that version.
async function askForNext(after) {
  if (page.asking) { page.askAgain = true; return; }
  page.asking = true;
  const basis = page.saved;
  const hold = heldIndices();
  const pending = [...new Set(pendingIndices())];  // decided here, the decisions on their way
  const wanted = Math.max(RANDOM - page.random.length, 0);
  try {
    const lanes = await request(`/api/next?ranked=${RANKED}&random=${wanted}`
      + `&hold=${hold.join(",")}&pending=${pending.join(",")}`
      + (after === undefined ? "" : `&after=${after}`));
    const taken = new Set([...heldIndices(), ...pendingIndices()]);
    const current = page.current ? page.current.index : null;
    page.ranked = lanes.ranked.filter((item) => item.index !== current
      && !pendingIndices().includes(item.index)).map(prefetch);
    page.rankedKind = lanes.kind;
    page.rankedBasis = basis - lanes.missing;
    for (const item of lanes.random) {
      if (!taken.has(item.index) && page.random.length < RANDOM) page.random.push(prefetch(item));
    }
    const keep = new Set(heldIndices());
    for (const index of [...page.images.keys()]) {
      if (!keep.has(index) && page.images.size > 4 * (RANKED + RANDOM)) page.images.delete(index);
    }
  } catch (error) {
    if (page.offline === null) showError(error);
  } finally {
    page.asking = false;
  }
  if (!page.current && page.view === "single") advance();
  if (page.askAgain) { page.askAgain = false; askForNext(); }
}

// The next image: the policy's pick while it is fresh (its model lacks at most the decision
// just made), an audit as often as the audit share says, a random pick otherwise.
function choose() {
  const share = page.state ? page.state.audit_share : 0.25;
  const fresh = page.rankedKind === "coverage" || page.rankedBasis >= page.made - 1;
  const head = page.ranked[0];
  if (head && fresh && head.image.decoded && !(page.random.length && Math.random() < share)) {
    window.labellingStats.ranked += 1;
    return page.ranked.shift();
  }
  const ready = page.random.findIndex((item) => item.image.decoded);
  if (ready >= 0 || page.random.length) {
    window.labellingStats.random += 1;
    return page.random.splice(Math.max(ready, 0), 1)[0];
  }
  if (head) { window.labellingStats.stale += 1; return page.ranked.shift(); }
  return null;
}

function advance() {
  page.current = choose();
  if (page.current) {
    const index = page.current.index;
    page.ranked = page.ranked.filter((item) => item.index !== index);
    page.random = page.random.filter((item) => item.index !== index);
  }
  show();
  if (page.ranked.length + page.random.length < RANDOM) askForNext();
}

async function show() {
  const item = page.current;
  renderItem();
  if (!item) return;
  if (!item.image) prefetch(item);
  await item.image.ready;
  if (page.current !== item) return;
  const frame = $("frame");
  frame.replaceChildren(item.image.img);
  item.image.img.id = "image";
  if (page.pressedAt !== null) {
    const pressedAt = page.pressedAt;
    page.pressedAt = null;
    requestAnimationFrame(() => setTimeout(() => {
      window.labellingLatencies.push(performance.now() - pressedAt);
      if (window.labellingLatencies.length > 5000) window.labellingLatencies.shift();
    }, 0));
  }
}

// ---------------------------------------------------------------- decisions

function decide(label) {
  const item = page.current;
  if (!item || page.view !== "single") return;
  const change = label === null ? { op: "decide", index: item.index, none: true }
    : { op: "decide", index: item.index, label };
  item.editing = false;
  page.history.push(item);
  save(change, { item, weight: 1 });
  advance();
}

function skip() {
  const item = page.current;
  if (!item) return;
  save({ op: "skip", index: item.index }, { item });
  advance();
}

function putBack(item) {
  if (!item) return;
  if (item.audit) page.random.unshift(item);
  else page.ranked.unshift(item);
}

function undo() {
  const last = page.history.pop();
  if (!last) {
    // Nothing decided on this page: the server withdraws its last decision.
    save({ op: "undo" }, {
      weight: 1,
      done: (result) => {
        if (!result.item) return;
        putBack(page.current);
        page.current = prefetch(result.item);
        show();
      },
    });
    return;
  }
  const unsent = page.outbox.findIndex((entry) => entry.item === last && !entry.sent
    && entry.change.op === "decide");
  if (unsent >= 0) {
    const [entry] = page.outbox.splice(unsent, 1);  // never sent: nothing to take back
    page.made -= entry.weight;
    renderUnsaved();
  } else {
    save({ op: "undo", index: last.index }, { item: last, weight: 1 });
  }
  putBack(page.current);
  page.current = last;
  show();
}

async function change(entry) {
  try {
    const [item] = await request(`/api/queue?n=0&hold=${entry.index}`);
    if (!item) return;
    putBack(page.current);
    page.current = prefetch(Object.assign(item, { editing: true }));
    show();
  } catch (error) {
    showError(error);
  }
}

// ---------------------------------------------------------------- rendering

function visibleClasses() {
  const classes = page.state ? page.state.classes : [];
  const filter = $("filter").value.trim().toLowerCase();
  return classes
    .map((cls, position) => Object.assign({ position }, cls))
    .filter((cls) => !filter || cls.label.toLowerCase().includes(filter)
      || cls.name.toLowerCase().includes(filter));
}

function keyOf(position) {
  return position < 9 ? String(position + 1) : position === 9 ? "0" : "";
}

function renderItem() {
  const item = page.current;
  $("filename").textContent = item ? item.name : "";
  $("editing").hidden = !(item && item.editing);
  $("editing-label").textContent = item && item.editing
    ? (item.label === null ? "none of these" : String(item.label)) : "";
  if (!item) {
    $("frame").replaceChildren();
    const state = page.state;
    $("waiting").hidden = false;
    $("waiting").textContent = state && state.n_encoded < state.n_images
      ? `Encoding images (${state.n_encoded} of ${state.n_images}): the next one comes in a moment.`
      : "Every image is decided. Thank you! The model file holds the latest model.";
  } else {
    $("waiting").hidden = true;
  }
  $("suggestion").textContent = item ? item.suggestion : "";
  const box = $("classes");
  const buttons = [];
  visibleClasses().forEach((cls, shown) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "class";
    if (item && item.suggestion === cls.label) button.classList.add("suggested");
    const key = document.createElement("kbd");
    key.textContent = keyOf(shown);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = cls.label;
    const p = item && item.proba ? item.proba[cls.position] : undefined;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fillBar = document.createElement("span");
    fillBar.style.width = `${Math.round(100 * (p || 0))}%`;
    bar.append(fillBar);
    const value = document.createElement("span");
    value.className = "proba";
    value.textContent = p === undefined ? "" : p.toFixed(2);
    button.append(key, name, bar, value);
    button.addEventListener("click", () => { decide(cls.label); });
    buttons.push(button);
  });
  box.replaceChildren(...buttons);
}

function formatEstimate(estimate) {
  return `${estimate.accuracy.toFixed(2)} (${estimate.low.toFixed(2)}–${estimate.high.toFixed(2)})`;
}

function renderState(state) {
  const previous = page.state;
  page.state = state;
  const decided = state.n_labelled + state.n_none;
  $("labelled").textContent = `Labelled ${state.n_labelled} of ${state.n_images}`
    + (state.n_none ? ` (+${state.n_none} none of these)` : "")
    + (state.n_failed ? ` · ${state.n_failed} unreadable` : "");
  const encoding = state.n_encoded + state.n_failed < state.n_images;
  $("encoding").hidden = !encoding;
  $("encoding-text").textContent = `Encoding ${state.n_encoded + state.n_failed} of ${state.n_images}`;
  $("encoding-bar").max = state.n_images;
  $("encoding-bar").value = state.n_encoded + state.n_failed;
  const model = state.model;
  const trained = state.estimate.trained;
  const start = state.estimate.start;
  const serving = $("serving");
  serving.classList.toggle("warning", Boolean(model.trained_after && model.serving === "start"));
  if (model.serving === "trained") {
    serving.textContent = `Serving TaskRes retrained after label ${model.trained_after}`;
  } else if (model.trained_after) {
    serving.textContent = `Serving ${model.start}: the retrained model is not better on the random images`;
  } else {
    serving.textContent = `Serving ${model.start}`;
  }
  $("refitting").hidden = !model.refitting && model.trained_version === state.version;
  const estimate = $("estimate");
  if (trained && start) {
    const worse = Boolean(model.trained_after && model.serving === "start");
    estimate.textContent = `Estimated accuracy on the unlabelled images, from ${trained.n} random `
      + `image${trained.n === 1 ? "" : "s"}: retrained ${formatEstimate(trained)}, `
      + `${model.start} ${formatEstimate(start)}`
      + (worse ? ` — the retrained model is worse on these images: ${model.start} is served.`
        : trained.accuracy < start.accuracy ? " (no clear difference yet)." : ".");
    estimate.classList.toggle("warning", worse);
  }
  if (state.n_rejected !== null && state.n_rejected !== undefined) {
    const rejected = ` It would reject ${state.n_rejected} unlabelled image`
      + `${state.n_rejected === 1 ? "" : "s"} as none of these.`;
    estimate.textContent = (trained && start ? estimate.textContent
      : "No accuracy estimate yet: it comes from the randomly drawn images as you label them.")
      + rejected;
  }
  if (state.error) showError(state.error);
  renderRecent(state);
  renderPerClass(state);
  const classesChanged = !previous || previous.classes.length !== state.classes.length;
  if (classesChanged) renderGridClasses();
  renderItem();
  const refitted = page.modelVersion !== null && page.modelVersion !== model.trained_version;
  page.modelVersion = model.trained_version;
  const short = page.ranked.length + page.random.length < RANDOM && decided < state.n_encoded;
  if (refitted || (short && !page.asking)) askForNext();
}

function renderRecent(state) {
  const list = $("recent");
  const entries = state.recent.slice().reverse().map((entry) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    const label = document.createElement("strong");
    label.textContent = entry.label === null ? "none of these" : entry.label;
    const name = document.createElement("span");
    name.className = "muted";
    name.textContent = ` ${entry.name}`;
    button.append(label, name);
    button.addEventListener("click", () => change(entry));
    li.append(button);
    return li;
  });
  list.replaceChildren(...entries);
}

function renderPerClass(state) {
  const rows = state.classes.map((cls) => {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = cls.label;
    const count = document.createElement("td");
    count.className = "n";
    count.textContent = String(cls.count);
    if (cls.count === 0) tr.className = "empty";
    tr.append(name, count);
    return tr;
  });
  $("per-class").replaceChildren(...rows);
}

async function refreshState() {
  renderState(await request("/api/state"));
}

// ---------------------------------------------------------------- the grid

function renderGridClasses() {
  const select = $("grid-class");
  const chosen = select.value;
  const options = page.state.classes.map((cls) => {
    const option = document.createElement("option");
    option.value = cls.label;
    option.textContent = cls.label;
    return option;
  });
  select.replaceChildren(...options);
  if (chosen) select.value = chosen;
}

function openGrid() {
  page.view = "grid";
  $("single").hidden = true;
  $("grid").hidden = false;
  if (page.current) $("grid-class").value = page.current.suggestion;
  loadGrid();
}

function closeGrid() {
  page.view = "single";
  $("grid").hidden = true;
  $("single").hidden = false;
  const rejected = page.gridRejected || [];
  page.gridRejected = [];
  if (!rejected.length) {
    if (!page.current) advance();
    return;
  }
  // The images the grid said were not of its class come first, to be labelled one by one.
  whenSaved().then(async () => {
    const items = await request(`/api/queue?n=0&hold=${rejected.join(",")}`);
    const undecided = items.filter((item) => !item.decided).map(prefetch);
    const shown = new Set(undecided.map((item) => item.index));
    putBack(page.current);
    page.ranked = page.ranked.filter((item) => !shown.has(item.index));
    page.random = page.random.filter((item) => !shown.has(item.index));
    page.current = undecided.shift() || null;
    page.ranked = [...undecided, ...page.ranked];
    if (!page.current) advance();
    else show();
  }).catch(showError);
}

function loadGrid() {
  const label = $("grid-class").value;
  whenSaved().then(async () => {
    const items = await request(`/api/grid?label=${encodeURIComponent(label)}&n=${GRID_SIZE}`);
    page.grid = items;
    page.rejected = new Set();
    const figures = items.map((item) => {
      const figure = document.createElement("figure");
      figure.tabIndex = 0;
      const img = document.createElement("img");
      img.alt = "";
      img.src = `/api/image/${item.index}?size=thumbnail`;
      const caption = document.createElement("figcaption");
      const p = item.proba[page.state.classes.findIndex((cls) => cls.label === label)];
      caption.textContent = `${item.name} · ${p.toFixed(2)}`;
      figure.append(img, caption);
      figure.dataset.index = String(item.index);
      const toggle = () => {
        if (page.rejected.has(item.index)) page.rejected.delete(item.index);
        else page.rejected.add(item.index);
        figure.classList.toggle("rejected", page.rejected.has(item.index));
        renderGridCount();
      };
      figure.addEventListener("click", toggle);
      figure.addEventListener("keydown", (event) => {
        if (event.key === " ") { event.preventDefault(); toggle(); }
      });
      return figure;
    });
    $("grid-images").replaceChildren(...figures);
    $("grid-empty").hidden = items.length > 0;
    renderGridCount();
  }).catch(showError);
}

function renderGridCount() {
  $("grid-count").textContent = String(page.grid.length - page.rejected.size);
}

function confirmGrid() {
  const label = $("grid-class").value;
  const accepted = page.grid.map((item) => item.index).filter((index) => !page.rejected.has(index));
  const rejected = [...page.rejected];
  if (!page.grid.length) return;
  page.gridRejected = [...(page.gridRejected || []), ...rejected];
  // The images held for the single view may be among them: they leave the lanes.
  const gone = new Set(accepted);
  page.ranked = page.ranked.filter((item) => !gone.has(item.index));
  page.random = page.random.filter((item) => !gone.has(item.index));
  if (page.current && gone.has(page.current.index)) page.current = null;
  save({ op: "grid", label, accepted, rejected }, { weight: accepted.length });
  page.grid = [];
  loadGrid();
}

// ---------------------------------------------------------------- classes

function addClass(event) {
  event.preventDefault();
  const input = $("new-class");
  const name = input.value.trim();
  if (!name) return;
  input.value = "";
  input.blur();
  save({ op: "class", name }, { weight: 1 });
}

// ---------------------------------------------------------------- keys

function toggleHelp(show) {
  $("help").hidden = show === undefined ? !$("help").hidden : !show;
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target === $("filter")) {
    // Enter picks the first match, a digit the match of that number (as on the buttons).
    const matches = visibleClasses();
    const position = event.key === "Enter" ? 0
      : /^[0-9]$/.test(event.key) ? (event.key === "0" ? 9 : Number(event.key) - 1) : null;
    if (position !== null) {
      event.preventDefault();
      const chosen = matches[position];
      $("filter").value = "";
      $("filter").blur();
      if (chosen) { page.pressedAt = performance.now(); decide(chosen.label); }
      else renderItem();
    } else if (event.key === "Escape") {
      $("filter").value = "";
      $("filter").blur();
      renderItem();
    }
    return;
  }
  if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement) return;
  if (!$("help").hidden) {
    if (event.key === "Escape" || event.key === "?") toggleHelp(false);
    return;
  }
  if (page.view === "grid") {
    if (event.key === "Enter") { event.preventDefault(); confirmGrid(); }
    else if (event.key === "Escape" || event.key === "g") closeGrid();
    return;
  }
  const key = event.key;
  if (/^[0-9]$/.test(key)) {
    const position = key === "0" ? 9 : Number(key) - 1;
    const cls = visibleClasses()[position];
    if (cls) { page.pressedAt = performance.now(); decide(cls.label); }
  } else if (key === "Enter") {
    event.preventDefault();
    if (page.current) { page.pressedAt = performance.now(); decide(page.current.suggestion); }
  } else if (key === "n") {
    page.pressedAt = performance.now();
    decide(null);
  } else if (key === "s") {
    page.pressedAt = performance.now();
    skip();
  } else if (key === "Backspace") {
    event.preventDefault();
    undo();
  } else if (key === "?") {
    toggleHelp();
  } else if (key === "/") {
    event.preventDefault();
    $("filter").focus();
  } else if (key === "g") {
    openGrid();
  } else if (key === "Escape") {
    $("filter").value = "";
    renderItem();
  }
}

// ---------------------------------------------------------------- start

function start() {
  document.addEventListener("keydown", onKey);
  $("filter").addEventListener("input", renderItem);
  $("accept").addEventListener("click", () => { if (page.current) decide(page.current.suggestion); });
  $("none").addEventListener("click", () => decide(null));
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("grid-open").addEventListener("click", openGrid);
  $("grid-close").addEventListener("click", closeGrid);
  $("grid-confirm").addEventListener("click", confirmGrid);
  $("grid-class").addEventListener("change", loadGrid);
  $("add-class").addEventListener("submit", addClass);
  $("help-open").addEventListener("click", () => toggleHelp(true));
  $("help-close").addEventListener("click", () => toggleHelp(false));
  window.addEventListener("pagehide", sendTheRest);
  window.addEventListener("beforeunload", (event) => {
    if (!page.outbox.length) return;
    event.preventDefault();
    event.returnValue = "";  // the browser asks before the tab closes with changes unsent
  });
  refreshState().then(() => askForNext()).catch(showError);
  setInterval(() => {
    refreshState().then(() => {
      if (page.offline !== null && !page.outbox.length) { page.offline = null; renderUnsaved(); }
    }, (error) => {
      page.offline = error instanceof TypeError ? "it may have been stopped" : String(error.message);
      renderUnsaved();
    });
  }, POLL_MS);
}

start();
