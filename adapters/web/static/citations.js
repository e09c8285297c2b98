// An answer's [n] marks, each a button that shows what it cites when pointed at, tapped or focused: the source's
// label ("Office handbook › Dogs at work", "#general"), the passage's text the answer used (when the server sent it:
// a `sources` frame's `cited`), and its link (http(s) only). Everything shows as text, never as markup.
import { link } from "./markdown.js";
import { el } from "./page.js";

export const MAX_QUOTE_CHARS = 600;
const SOURCE_LINE = /^\[(\d{1,2})\] (?:<(https?:\/\/[^\s<>]+)> )?(.+)$/;
const MARK = /\[(\d{1,2})\]/g;
const quoted = new WeakMap();  // message -> Map(number -> {label, url, text}) the server sent
const texts = new WeakMap();  // message -> the answer's text, as last shown
let popovers = 0;

// The server's word on the passages an answer cites: `cited` [{number, label, url, text}].
export function setCited(message, cited) {
  if (!message || !Array.isArray(cited)) return;
  const known = new Map();
  for (const entry of cited) {
    const number = Number(entry?.number);
    if (Number.isInteger(number) && number > 0) {
      known.set(number, { label: String(entry.label ?? ""), url: String(entry.url ?? ""), text: String(entry.text ?? "") });
    }
  }
  quoted.set(message, known);
  markCitations(message, texts.get(message) ?? "");
}

export function forgetCited(message) {
  quoted.delete(message);
}

// The sources listed under the answer's text ("Sources:", then "[n] <link> label" lines), with what the server sent.
function sourcesOf(message, text) {
  const found = new Map();
  const lines = text.split("\n");
  const start = lines.lastIndexOf("Sources:");
  for (const line of start === -1 ? [] : lines.slice(start + 1)) {
    const match = line.trim().match(SOURCE_LINE);
    if (match) found.set(Number(match[1]), { label: match[3], url: match[2] ?? "", text: "" });
  }
  for (const [number, entry] of quoted.get(message) ?? []) {
    found.set(number, { ...found.get(number), ...entry, label: entry.label || found.get(number)?.label || "" });
  }
  return found;
}

// Each [n] mark of the answer's `text` (as just drawn; not in code, nor in the sources list itself) that names a
// source, made a button.
export function markCitations(message, text) {
  texts.set(message, text);
  const body = message.querySelector(".body");
  const sources = sourcesOf(message, text);
  if (!body) return;
  for (const old of body.querySelectorAll(".cite")) old.replaceWith(old.querySelector(".cite-mark").textContent);
  body.normalize();
  if (!sources.size) return;
  for (const anchor of body.querySelectorAll("a")) {  // a mark linked to its message: "[n]" with the link
    const number = Number(anchor.textContent.match(/^\[(\d{1,2})\]$/)?.[1]);
    if (sources.has(number)) anchor.replaceWith(mark(number, sources.get(number)));
  }
  const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const parent = node.parentElement;
    if (parent.closest("code, pre, a, .cite") || parent.closest("p")?.firstChild?.textContent === "Sources:") continue;
    const parts = [];
    let done = 0;
    for (const match of node.data.matchAll(MARK)) {
      const number = Number(match[1]);
      if (!sources.has(number)) continue;
      parts.push(node.data.slice(done, match.index), mark(number, sources.get(number)));
      done = match.index + match[0].length;
    }
    if (parts.length) node.replaceWith(...parts, node.data.slice(done));
  }
}

function mark(number, source) {
  const button = el("button", "cite-mark", `[${number}]`);
  button.type = "button";
  button.setAttribute("aria-label", `Source ${number}: ${source.label}`);
  button.setAttribute("aria-expanded", "false");
  const popover = el("span", "cite-popover", el("span", "cite-label", source.label));
  popover.id = `cite-${++popovers}`;
  popover.setAttribute("role", "tooltip");
  popover.hidden = true;
  if (source.text) {
    const text = source.text.length > MAX_QUOTE_CHARS ? `${source.text.slice(0, MAX_QUOTE_CHARS - 1).trimEnd()}…` : source.text;
    popover.append(el("span", "cite-text", text));
  }
  const anchor = source.url ? link(source.url, source.url) : null;
  if (anchor?.tagName === "A") popover.append(el("span", "cite-link", anchor));
  button.setAttribute("aria-describedby", popover.id);
  const wrapper = el("span", "cite", button, popover);
  let pinned = false;  // opened by a tap or click: stays until the next one, Escape or focus going elsewhere
  const show = (open) => {
    popover.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (!open) pinned = false;
  };
  wrapper.addEventListener("mouseenter", () => show(true));
  wrapper.addEventListener("mouseleave", () => { if (!pinned && !wrapper.contains(document.activeElement)) show(false); });
  button.addEventListener("focus", () => show(true));
  wrapper.addEventListener("focusout", (event) => { if (!wrapper.contains(event.relatedTarget)) show(false); });
  button.addEventListener("click", () => { pinned = !pinned || popover.hidden; show(pinned); });
  wrapper.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !popover.hidden) { event.stopPropagation(); show(false); }
  });
  return wrapper;
}
