// The labelling page of sklearn-taskres. Plain JavaScript, no dependency, no build step.
//
// The page holds the next images ahead, already decoded, so a key press shows the next one
// at once; decisions go to the server in order, in the background. Everything that came from
// a file or from the person (file names, class names) goes into the page as text.
"use strict";

const AHEAD = 6;           // images held ahead, decoded
const GRID_SIZE = 24;      // images per grid page
const POLL_MS = 1000;      // how often the state is read while the page is open

const $ = (id) => document.getElementById(id);
const page = {
  state: null,             // the server's state (counts, classes, models, estimates)
  current: null,           // the item on screen
  queue: [],               // the items ahead
  chain: Promise.resolve(),// requests that change or read the queue, in order
  filling: false,
  view: "single",
  grid: [],
  rejected: new Set(),
  modelVersion: null,
  pressedAt: null,
  // Decided or skipped here, the request not answered yet: never taken back into the queue.
  pending: new Set(),
};
// Key press to next image shown, in milliseconds (read by the benchmark).
window.labellingLatencies = [];

// ---------------------------------------------------------------- requests

async function request(path, body) {
  const options = body === undefined
    ? { headers: { Accept: "application/json" } }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (error) { /* not JSON */ }
    throw new Error(message);
  }
  return response.json();
}

// Run `task` after every earlier one: a decision reaches the server before the next queue.
function inOrder(task) {
  page.chain = page.chain.then(task).catch(showError);
  return page.chain;
}

function showError(error) {
  const box = $("message");
  box.textContent = String(error && error.message ? error.message : error);
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

// ---------------------------------------------------------------- the queue

function preload(item) {
  const img = new Image();
  img.alt = "";
  img.src = `/api/image/${item.index}`;
  item.img = img;
  item.ready = img.decode().then(() => true, () => false);
  return item;
}

function heldIndices() {
  const held = page.queue.map((item) => item.index);
  if (page.current) held.unshift(page.current.index);
  return held;
}

// Send a decision about `index` in order; until it is answered the queue leaves it out.
function send(index, path, body, then) {
  page.pending.add(index);
  inOrder(async () => {
    try {
      const answer = await request(path, body);
      if (then) then(answer);
    } finally {
      page.pending.delete(index);
    }
  });
}

// Top the queue up to AHEAD images; with `refresh`, also take fresh predictions for the
// images already held (after a refit or a new class).
function fill(refresh = false) {
  return inOrder(async () => {
    const need = AHEAD - page.queue.length;
    if (need <= 0 && !refresh) return;
    const held = heldIndices();
    const excluded = [...held, ...page.pending];
    const items = await request(`/api/queue?n=${Math.max(need, 0)}&hold=${excluded.join(",")}`);
    const byIndex = new Map(items.map((item) => [item.index, item]));
    if (page.current && byIndex.has(page.current.index) && refresh) {
      const fresh = byIndex.get(page.current.index);
      page.current.proba = fresh.proba;
      page.current.suggestion = fresh.suggestion;
    }
    page.queue = page.queue.map((item) => Object.assign(item, refresh && byIndex.get(item.index)
      ? { proba: byIndex.get(item.index).proba, suggestion: byIndex.get(item.index).suggestion }
      : {}));
    const known = new Set([...heldIndices(), ...excluded, ...page.pending]);
    for (const item of items) {
      if (!known.has(item.index)) page.queue.push(preload(item));
    }
    if (!page.current) advance();
    else renderItem();
  });
}

function advance() {
  page.current = page.queue.shift() || null;
  show();
  fill();
}

async function show() {
  const item = page.current;
  renderItem();
  if (!item) return;
  await item.ready;
  if (page.current !== item) return;
  const frame = $("frame");
  frame.replaceChildren(item.img);
  item.img.id = "image";
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
  const body = label === null ? { index: item.index, none: true } : { index: item.index, label };
  send(item.index, "/api/decide", body, renderState);
  advance();
}

function skip() {
  const item = page.current;
  if (!item) return;
  send(item.index, "/api/skip", { index: item.index });
  advance();
}

function undo() {
  inOrder(async () => {
    const answer = await request("/api/undo", {});
    if (!answer.item) return;
    if (page.current) page.queue.unshift(page.current);
    page.queue = page.queue.filter((item) => item.index !== answer.item.index);
    page.current = preload(answer.item);
    show();
    await refreshState();
  });
}

function change(entry) {
  inOrder(async () => {
    const [item] = await request(`/api/queue?n=0&hold=${entry.index}`);
    if (!item) return;
    if (page.current) page.queue.unshift(page.current);
    page.current = preload(Object.assign(item, { editing: true }));
    show();
  });
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
  if (state.error) showError(state.error);
  renderRecent(state);
  renderPerClass(state);
  const classesChanged = !previous || previous.classes.length !== state.classes.length;
  if (classesChanged) renderGridClasses();
  renderItem();
  if (page.modelVersion !== null && page.modelVersion !== model.trained_version && page.view === "single") {
    page.modelVersion = model.trained_version;
    fill(true);
  }
  page.modelVersion = model.trained_version;
  if (page.queue.length < AHEAD && decided < state.n_encoded) fill();
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
  if (rejected.length) {
    // The images the grid said were not of its class come first, to be labelled one by one.
    inOrder(async () => {
      const items = await request(`/api/queue?n=0&hold=${rejected.join(",")}`);
      const undecided = items.filter((item) => !item.decided);
      const shown = new Set(undecided.map((item) => item.index));
      if (page.current) page.queue.unshift(page.current);
      page.queue = [...undecided.map(preload), ...page.queue.filter((item) => !shown.has(item.index))];
      page.current = page.queue.shift() || null;
      show();
    });
  }
  fill(true);
}

function loadGrid() {
  const label = $("grid-class").value;
  inOrder(async () => {
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
  });
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
  // The images on screen in the single view may be among them: they are asked for again.
  page.queue = page.queue.filter((item) => !accepted.includes(item.index));
  if (page.current && accepted.includes(page.current.index)) page.current = null;
  inOrder(async () => renderState(await request("/api/grid", { label, accepted, rejected })));
  loadGrid();
}

// ---------------------------------------------------------------- classes

function addClass(event) {
  event.preventDefault();
  const input = $("new-class");
  const name = input.value.trim();
  if (!name) return;
  inOrder(async () => {
    const answer = await request("/api/classes", { name });
    input.value = "";
    input.blur();
    renderState(answer.state);
  });
  fill(true);
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
  refreshState().then(() => fill()).catch(showError);
  setInterval(() => { refreshState().catch(showError); }, POLL_MS);
}

start();
