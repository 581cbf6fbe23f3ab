// The page of `transferlm serve`: calls the JSON API of the same server and draws the answers.
// Tokens: one coloured box per subword; classes: one bar per label; entities: <mark> over the
// character offsets /tag returns; prompt: reads /generate_stream's server-sent events as they come,
// or classifies the prompt box's text by prompting the decoder (/prompt) into the labels typed.
"use strict";

const $ = (id) => document.getElementById(id);
const TASKS = ["tokenize", "classify", "tag", "embed", "generate"];

function showError(msg) {
  const el = $("error");
  el.textContent = msg;
  el.hidden = !msg;
}

async function post(path, body) {
  const res = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                 body: JSON.stringify(body)});
  const data = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${data.error || ""}`);
  return data;
}

function hue(i) { return (i * 47) % 360; }  // neighbouring tokens get clearly different colours

function labelHue(label) {
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function drawTokens(res) {
  const box = $("tokens");
  box.replaceChildren();
  res.tokens.forEach((tok, i) => {
    const span = document.createElement("span");
    span.className = "tok" + (res.special[i] ? " special" : "");
    span.textContent = res.text[i] === "" ? "\u2423" : res.text[i].replace(/ /g, "\u2423");
    span.title = `id ${res.ids[i]} \u00b7 ${tok} \u00b7 chars ${res.offsets[i][0]}-${res.offsets[i][1]}`;
    span.dataset.id = res.ids[i];
    if (!res.special[i]) span.style.background = `hsl(${hue(i)}, 80%, 86%)`;
    box.appendChild(span);
  });
}

function drawClasses(rows, target = "classes") {
  const box = $(target);
  box.replaceChildren();
  rows.forEach((r, k) => {
    const row = document.createElement("div");
    row.className = "class-row" + (k === 0 ? " best" : "");
    row.dataset.label = r.label;
    row.dataset.score = r.score;
    const label = document.createElement("span");
    label.className = "class-label";
    label.textContent = r.label;
    const track = document.createElement("div");
    track.className = "bar-track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (100 * r.score).toFixed(1) + "%";
    track.appendChild(bar);
    const value = document.createElement("span");
    value.className = "class-value";
    value.textContent = (100 * r.score).toFixed(1) + "%";
    row.append(label, track, value);
    box.appendChild(row);
  });
}

function drawEntities(text, ents) {
  const box = $("entities");
  box.replaceChildren();
  let at = 0;
  for (const e of [...ents].sort((a, b) => a.start - b.start)) {
    if (e.start < at) continue;  // overlapping spans (nested taggers): the first one is drawn
    box.append(document.createTextNode(text.slice(at, e.start)));
    const mark = document.createElement("mark");
    mark.className = "ent";
    mark.dataset.label = e.label;
    mark.title = `${e.label} ${(100 * e.score).toFixed(1)}% \u00b7 chars ${e.start}-${e.end}`;
    mark.style.background = `hsl(${labelHue(e.label)}, 85%, 80%)`;
    const words = document.createElement("span");
    words.className = "ent-text";
    words.textContent = text.slice(e.start, e.end);
    const tag = document.createElement("span");
    tag.className = "ent-label";
    tag.textContent = e.label;
    mark.append(words, tag);
    box.appendChild(mark);
    at = e.end;
  }
  box.append(document.createTextNode(text.slice(at)));
  if (!ents.length) {
    const none = document.createElement("div");
    none.className = "none";
    none.textContent = "no entities found";
    box.appendChild(none);
  }
}

function drawEmbedding(res) {
  const v = res.embeddings[0];
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  $("embedding").textContent =
    `${res.dim} dimensions, length ${norm.toFixed(3)}: [${v.slice(0, 6).map((x) => x.toFixed(3)).join(", ")}, \u2026]`;
}

async function analyse() {
  const text = $("text").value;
  showError("");
  $("analyze").disabled = true;
  $("analyze-status").textContent = "working\u2026";
  const jobs = [];
  const pick = (task) => $(`${task}-model`).value;
  if (!$("tokens-panel").hidden)
    jobs.push(post("/tokenize", {model: pick("tokenize"), inputs: text}).then((r) => drawTokens(r.results[0])));
  if (!$("classes-panel").hidden)
    jobs.push(post("/classify", {model: pick("classify"), inputs: text, truncate: true})
      .then((r) => drawClasses(r.results[0])));
  if (!$("entities-panel").hidden)
    jobs.push(post("/tag", {model: pick("tag"), inputs: text}).then((r) => drawEntities(text, r.results[0])));
  if (!$("embed-panel").hidden)
    jobs.push(post("/embed", {model: pick("embed"), inputs: text, truncate: true}).then(drawEmbedding));
  const done = await Promise.allSettled(jobs);
  const failed = done.filter((d) => d.status === "rejected").map((d) => d.reason.message);
  showError(failed.join("\n"));
  $("analyze").disabled = false;
  $("analyze-status").textContent = failed.length ? "" : "done";
}

async function generate() {
  const out = $("completion-text");
  const status = $("generate-status");
  showError("");
  out.textContent = "";
  delete out.dataset.done;
  $("completion-prompt").textContent = $("chat").checked ? "" : $("prompt").value;
  $("generate").disabled = true;
  status.textContent = "streaming\u2026";
  let n = 0;
  try {
    const res = await fetch("/generate_stream", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({model: $("generate-model").value, inputs: $("prompt").value, chat: $("chat").checked,
                            parameters: {max_new_tokens: parseInt($("max-new-tokens").value, 10)}}),
    });
    if (!res.ok) throw new Error(`/generate_stream: ${res.status} ${(await res.json()).error}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {  // one server-sent event per blank-line-ended block
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const isError = block.startsWith("event: error");
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (!data) continue;
        const ev = JSON.parse(data);
        if (isError) throw new Error(ev.error);
        if (ev.token) {
          n += 1;
          out.textContent += ev.token.text;
          status.textContent = `streaming\u2026 ${n} tokens`;
        } else {
          out.textContent = ev.generated_text;
          status.textContent = `done: ${ev.tokens} tokens (${ev.finish_reason})`;
          out.dataset.done = "true";
        }
      }
    }
  } catch (e) {
    showError(e.message);
    status.textContent = "";
  } finally {
    $("generate").disabled = false;
  }
}

async function promptClassify() {
  const status = $("prompt-status");
  showError("");
  $("prompt-classify").disabled = true;
  status.textContent = "scoring\u2026";
  try {
    const labels = $("prompt-labels").value.split(",").map((s) => s.trim()).filter((s) => s);
    const r = await post("/prompt", {model: $("generate-model").value, inputs: $("prompt").value, labels,
                                     calibrate: $("prompt-calibrate").value, overflow: "clip"});
    drawClasses(r.results[0].probabilities, "prompt-classes");
    status.textContent = `done: ${r.results[0].label}`;
  } catch (e) {
    showError(e.message);
    status.textContent = "";
  } finally {
    $("prompt-classify").disabled = false;
  }
}

async function init() {
  const {models} = await (await fetch("/models")).json();
  $("served").textContent = "Serving " + models.map((m) => `${m.name} (${m.kind})`).join(", ");
  for (const task of TASKS) {
    const select = $(`${task}-model`);
    // sentence-pair classifiers need a second text, which this page does not ask for
    for (const m of models.filter((m) => m.tasks.includes(task) && !(task === "classify" && m.pairs))) {
      const opt = document.createElement("option");
      opt.value = opt.textContent = m.name;
      select.appendChild(opt);
    }
    const has = select.options.length > 0;
    const panel = {tokenize: "tokens-panel", classify: "classes-panel", tag: "entities-panel",
                   embed: "embed-panel", generate: "prompt-section"}[task];
    $(panel).hidden = !has;
  }
  $("text-section").hidden = ["tokens-panel", "classes-panel", "entities-panel", "embed-panel"]
    .every((p) => $(p).hidden);
  $("analyze").addEventListener("click", analyse);
  $("generate").addEventListener("click", generate);
  $("prompt-classify-controls").hidden = !models.some((m) => m.tasks.includes("prompt"));
  $("prompt-classify").addEventListener("click", promptClassify);
  document.body.dataset.ready = "true";
}

init().catch((e) => showError("could not list the models: " + e.message));
