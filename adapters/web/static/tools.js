// Tools in an answer: a chip per call (its name, a spinner while it runs, then ✓ and its seconds
// or ✗ and why), opening to its arguments and result; a question with Run / Cancel before a tool
// that asks first; the sources the calls found, as numbered links under the answer. And the
// header's Tools menu: what each tool does, which ask first, and the servers that are down.
//
// A tool's arguments and result are whatever a server or the model wrote: they are shown only as
// text (Text nodes, textContent), never parsed as HTML; a source is a link only for an http(s) URL.
import { setCited } from "./citations.js";
import { icon } from "./icons.js";
import { link, renderMarkdown } from "./markdown.js";
import { el, showNotice, state, view } from "./page.js";
import { send } from "./socket.js";

const shown = new WeakMap();  // answer message -> Map("call:<id>" | "ask:<key>" -> its element)

// The message showing the answer to `question` (asked in this page, or seen streaming in it).
function answerFor(question) {
  const waiting = state.waiting.get(question)?.reply;
  if (waiting) return waiting;
  return [...view.messages.querySelectorAll(".message.bot")].find((message) => message.dataset.question === question);
}

function itemsOf(message) {
  if (!shown.has(message)) shown.set(message, new Map());
  return shown.get(message);
}

// The box above the answer's text holding its chips and questions, made when first needed.
function boxOf(message) {
  let box = message.querySelector(".tool-calls");
  if (!box) {
    box = el("div", "tool-calls");
    message.querySelector(".body").before(box);
  }
  return box;
}

function seconds(value) {
  return `${Number(value).toFixed(1)} s`;
}

// A chip: <details> whose summary is the call, and whose content is its arguments and result.
function chip() {
  const status = el("span", "tool-status");
  const name = el("code", "tool-name");
  const note = el("span", "tool-note");
  const details = el("details", "tool-call", el("summary", "", status, name, note));
  details.append(el("div", "tool-label", "Arguments"), el("pre", "tool-arguments"),
                 el("div", "tool-label", "Result"), el("pre", "tool-result"));
  return details;
}

function fill(node, call) {
  node.dataset.state = call.state;  // running | done | failed
  node.setAttribute("aria-busy", String(call.state === "running"));
  node.querySelector(".tool-status").replaceChildren(...(call.state === "running" ? [] : [icon(call.state === "done" ? "done" : "failed", 12)]));
  node.querySelector(".tool-name").textContent = String(call.name ?? "");
  let note = "";
  if (call.state === "done" && call.seconds !== undefined) note = seconds(call.seconds);
  else if (call.state === "failed" && call.error) note = String(call.error);
  node.querySelector(".tool-note").textContent = note;
  node.title = call.server ? `${call.name} (${call.server})` : String(call.name ?? "");
  node.querySelector(".tool-arguments").textContent = String(call.arguments ?? "");
  const result = node.querySelector(".tool-result");
  result.textContent = call.state === "running" ? "running…" : String(call.result || (call.error ? "" : "(empty)"));
  result.classList.toggle("empty", !call.result);
}

// `tool` {question, call, name, server, state, arguments, result?, seconds?, error?}
export function onTool(event, message = answerFor(event.question)) {
  if (!message) return;
  const items = itemsOf(message);
  let node = items.get(`call:${event.call}`);
  if (!node) {
    node = chip();
    items.set(`call:${event.call}`, node);
    boxOf(message).append(node);
  }
  fill(node, event);
}

// `sources` {question, urls, cited?}: a numbered list under the answer's text; the passages its [n] marks cite.
export function onSources(event, message = answerFor(event.question)) {
  if (!message) return;
  if (Array.isArray(event.cited)) setCited(message, event.cited);
  if (!Array.isArray(event.urls)) return;
  const links = event.urls.map((url) => link(String(url), String(url))).filter((node) => node.tagName === "A");
  message.querySelector(".sources")?.remove();
  if (!links.length) return;
  const list = el("ol", "", ...links.map((anchor) => el("li", "", anchor)));
  message.querySelector(".body").after(el("div", "sources", el("div", "tool-label", "Sources"), list));
}

function waitFor(secondsToAnswer) {
  const value = Number(secondsToAnswer);
  if (!(value > 0)) return "";
  return value >= 60 ? `${Math.round(value / 60)} min` : `${value} s`;
}

// `confirm` {question, key, tool, server, arguments, seconds}: the question, with Run and Cancel.
export function onConfirm(event, message = answerFor(event.question)) {
  if (!message) return;
  const items = itemsOf(message);
  const key = `ask:${event.key}`;
  if (items.has(key)) return;
  const text = el("div", "tool-question", "May I run ", el("code", "", String(event.tool ?? "")),
                  ` (${event.server ?? ""}) with `, el("code", "", String(event.arguments ?? "")), "?");
  const run = el("button", "run", "Run");
  const cancel = el("button", "cancel", "Cancel");
  const answered = (yes) => {
    if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
    run.disabled = cancel.disabled = true;
    send({ type: "confirm", key: event.key, yes });
    setTimeout(() => { run.disabled = cancel.disabled = false; }, 5000);  // a click that got lost may be tried again
  };
  for (const [button, yes] of [[run, true], [cancel, false]]) {
    button.type = "button";
    button.addEventListener("click", () => answered(yes));
  }
  const wait = waitFor(event.seconds);
  const note = el("span", "tool-wait", wait ? `No answer within ${wait} counts as no.` : "");
  const node = el("div", "tool-ask", text, el("div", "tool-buttons", run, cancel, note));
  items.set(key, node);
  boxOf(message).append(node);
}

// `confirmed` {question, key, approved, text}: the buttons make way for how it was settled.
export function onConfirmed(event, message = answerFor(event.question)) {
  if (!message) return;
  const items = itemsOf(message);
  let node = items.get(`ask:${event.key}`);
  if (!node) {
    node = el("div", "tool-ask");
    items.set(`ask:${event.key}`, node);
    boxOf(message).append(node);
  }
  node.classList.add("settled", event.approved ? "approved" : "declined");
  renderMarkdown(String(event.text ?? ""), node);
}

const replayed = { tool: onTool, sources: onSources, confirm: onConfirm, confirmed: onConfirmed };

// An answer being written when the page (re)connected: its tool frames so far, in order.
export function replayTools(message, frames = []) {
  for (const frame of frames) {
    if (Object.hasOwn(replayed, frame.type)) replayed[frame.type](frame, message);
  }
}

// A stored answer's calls (from the history): {name, arguments, result, state}.
export function showStoredTools(message, calls = []) {
  calls.forEach((call, index) => onTool({ ...call, call: `stored${index}` }, message));
}

// Regenerate: the answer's chips and sources go (given back if the question is refused).
export function takeTools(message) {
  const taken = [message.querySelector(".tool-calls"), message.querySelector(".sources")];
  for (const node of taken) node?.remove();
  shown.delete(message);
  return taken;
}

export function giveBackTools(message, [box, sources] = []) {
  if (box) message.querySelector(".body").before(box);
  if (sources) message.querySelector(".body").after(sources);
}

// -- the Tools menu -------------------------------------------------------------------------

export function showToolsButton(connected) {
  view.toolsButton.hidden = !connected;
  if (!connected) closeToolsPanel();
}

export function toggleToolsPanel() {
  if (!view.toolsPanel.hidden) return closeToolsPanel();
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  view.toolsPanel.replaceChildren(el("div", "tool-label", "Loading the tools…"));
  view.toolsPanel.hidden = false;
  view.toolsButton.setAttribute("aria-expanded", "true");
  send({ type: "tools" });
}

export function closeToolsPanel() {
  if (view.toolsPanel.hidden) return false;
  view.toolsPanel.hidden = true;
  view.toolsButton.setAttribute("aria-expanded", "false");
  return true;
}

// `tools` {connected, uses, summary, tools: [{name, server, description, asksFirst}], down: [{server, problem}]}:
// `summary` says whether this conversation's model uses the tools (and if not, which models do).
export function showToolList(event) {
  if (view.toolsPanel.hidden) return;
  const rows = [el("p", event.uses ? "tool-summary" : "tool-summary tool-unused", String(event.summary ?? ""))];
  if (event.connected && !event.tools.length) rows.push(el("p", "", "No tools are available right now."));
  for (const tool of event.tools) {
    const name = el("div", "tool-entry-name", el("code", "", String(tool.name)));
    if (tool.asksFirst) name.append(el("span", "asks-first", "asks first"));
    const entry = el("li", "tool-entry", name, el("div", "tool-entry-text", String(tool.description || "no description")));
    entry.title = `from ${tool.server}`;
    rows.push(entry);
  }
  const list = el("ul", "tool-list", ...rows.filter((row) => row.tagName === "LI"));
  const down = event.down.map((server) => el("p", "tool-down", "⚠️ ", el("code", "", String(server.server)),
                                             ` is down: ${server.problem}. I keep trying to reach it.`));
  view.toolsPanel.replaceChildren(el("div", "tool-panel-title", "Tools"),
                                  ...rows.filter((row) => row.tagName !== "LI"), list, ...down);
}
