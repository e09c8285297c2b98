// The chat page: one websocket to the bot; each answer streams into the tab that asked.
//
// Nothing received is ever parsed as HTML. Text reaches the page only as Text nodes
// (append/textContent), Markdown becomes elements built here one by one, and a link is made
// only for an http(s) URL. So <script> or <img onerror> written by the model or a person shows
// as the text it is.
"use strict";

const $ = (id) => document.getElementById(id);
const view = { messages: $("messages"), scroller: $("scroller"), input: $("input"), send: $("send"),
               reset: $("reset"), notice: $("notice"), status: $("status"), model: $("model") };
const state = { socket: null, connected: false, maxChars: 100000, retryMs: 500, asked: 0,
                waiting: new Map() /* question id -> its reply element */, replies: new Map() };

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

// ---- Markdown, built as elements ----------------------------------------------------------

function renderMarkdown(text, into) {
  into.replaceChildren();
  for (const block of splitCodeBlocks(text)) {
    if (block.code !== undefined) into.append(codeBlock(block.lang, block.code));
    else renderText(block.lines, into);
  }
}

// Fenced code blocks apart from the rest; a fence still open (the model is writing it) runs to the end.
function splitCodeBlocks(text) {
  const blocks = [];
  let lines = [];
  let fence = null;
  for (const line of text.split("\n")) {
    if (fence) {
      const close = line.match(/^\s*(`{3,}|~{3,})\s*$/);
      if (close && close[1][0] === fence.mark[0] && close[1].length >= fence.mark.length) {
        blocks.push({ lang: fence.lang, code: fence.lines.join("\n") });
        fence = null;
      } else fence.lines.push(line.replace(fence.indent, ""));
      continue;
    }
    const open = line.match(/^(\s*)(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/);  // indented too: inside a list item
    if (open) {
      blocks.push({ lines });
      lines = [];
      // The code's lines lose as much indentation as the fence has.
      fence = { indent: new RegExp(`^\\s{0,${open[1].length}}`), mark: open[2], lang: open[3], lines: [] };
    } else lines.push(line);
  }
  if (fence) blocks.push({ lang: fence.lang, code: fence.lines.join("\n") });
  blocks.push({ lines });
  return blocks.filter((block) => block.code !== undefined || block.lines.some((line) => line.trim()));
}

function codeBlock(lang, code) {
  const copy = el("button", "", "Copy");
  copy.type = "button";
  copy.addEventListener("click", () => navigator.clipboard.writeText(code).then(() => {
    copy.textContent = "Copied";
    setTimeout(() => { copy.textContent = "Copy"; }, 1500);
  }));
  if (!navigator.clipboard) copy.hidden = true;  // only on https or localhost
  const codeElement = el("code", "", code);
  if (lang) codeElement.dataset.lang = lang;
  return el("div", "codeblock", el("div", "bar", el("span", "", lang || "code"), copy), el("pre", "", codeElement));
}

// Paragraphs (a line break inside one is kept), bullet and numbered lists, headings.
function renderText(lines, into) {
  let paragraph = null;
  let list = null;
  for (const line of lines) {
    const heading = line.match(/^#{1,6}\s+(.*)$/);
    const item = line.match(/^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/);
    if (!line.trim()) {
      paragraph = list = null;
    } else if (heading) {
      paragraph = list = null;
      into.append(inline(heading[1], el("h4")));
    } else if (item) {
      const tag = item[1] ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== tag) {
        list = into.appendChild(el(tag));
        if (item[2]) list.start = Number(item[2]);
      }
      paragraph = null;
      list.append(inline(item[3], el("li")));
    } else if (list && /^\s{2,}\S/.test(line)) {
      list.lastElementChild.append(el("br"));
      inline(line.trim(), list.lastElementChild);
    } else {
      list = null;
      if (paragraph) paragraph.append(el("br"));
      else paragraph = into.appendChild(el("p", line.startsWith("⚠️") ? "warning" : ""));
      inline(line, paragraph);
    }
  }
}

const INLINE = new RegExp([
  /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source,                    // 1, 2: `code`
  /\*\*(?=\S)([\s\S]*?\S)\*\*/.source,                             // 3: **bold**
  /(?<!\w)__(?=\S)([\s\S]*?\S)__(?!\w)/.source,                    // 4: __bold__
  /\*(?![\s*])([^*\n]*?[^\s*])\*/.source,                          // 5: *italic*
  /(?<!\w)_(?![\s_])([^_\n]*?[^\s_])_(?!\w)/.source,               // 6: _italic_
  /\[([^\]\n]+)\]\((https?:\/\/[^\s()]+)\)/.source,               // 7, 8: [label](http…)
  /(https?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]])/.source,           // 9: a bare http(s) URL
].join("|"), "g");

function inline(text, into) {
  let done = 0;
  for (const match of text.matchAll(INLINE)) {
    into.append(text.slice(done, match.index));
    const [, , code, bold, bold2, italic, italic2, label, target, url] = match;
    if (code !== undefined) into.append(el("code", "", code.length > 2 && code.startsWith(" ") && code.endsWith(" ") ? code.slice(1, -1) : code));
    else if (bold !== undefined || bold2 !== undefined) into.append(inline(bold ?? bold2, el("strong")));
    else if (italic !== undefined || italic2 !== undefined) into.append(inline(italic ?? italic2, el("em")));
    else if (label !== undefined) into.append(link(target, label));
    else into.append(link(url, url));
    done = match.index + match[0].length;
  }
  into.append(text.slice(done));
  return into;
}

function link(url, label) {
  let parsed;
  try { parsed = new URL(url); } catch { return document.createTextNode(label); }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return document.createTextNode(label);
  const anchor = el("a", "", label);
  anchor.href = parsed.href;
  anchor.target = "_blank";
  anchor.rel = "noopener noreferrer nofollow";
  return anchor;
}

// ---- the conversation ---------------------------------------------------------------------

function welcome() {
  view.messages.replaceChildren(el("div", "welcome",
    el("div", "logo", "M"), el("h1", "", "What can I help with?"),
    el("div", "", "Answers appear as the model writes them. Your conversation stays in this browser until you start a new one.")));
}

function append(node) {
  view.messages.querySelector(".welcome")?.remove();
  const pinned = view.scroller.scrollHeight - view.scroller.scrollTop - view.scroller.clientHeight < 80;
  view.messages.append(node);
  if (pinned) view.scroller.scrollTop = view.scroller.scrollHeight;
}

function userMessage(text) {
  const message = el("div", "message user", el("div", "body", text));
  append(message);
  return message;
}

function botMessage() {
  const body = el("div", "body");
  const message = el("div", "message bot", el("div", "logo", "M"), body);
  append(message);
  return message;
}

function showText(message, text, streaming) {
  const body = message.querySelector(".body");
  const pinned = view.scroller.scrollHeight - view.scroller.scrollTop - view.scroller.clientHeight < 80;
  renderMarkdown(text, body);
  if (streaming) {  // the caret goes right after the last character, in whatever element holds it
    let end = body;
    while (end.lastChild?.nodeType === Node.ELEMENT_NODE && end.lastChild.tagName !== "BR") end = end.lastChild;
    end.append(el("span", "caret"));
  }
  message.dataset.state = streaming ? "streaming" : "done";
  if (pinned) view.scroller.scrollTop = view.scroller.scrollHeight;
}

function showHistory(history) {
  state.waiting.clear();
  state.replies.clear();
  if (!history.length) return welcome();
  view.messages.replaceChildren();
  for (const entry of history) {
    if (entry.role === "user") userMessage(entry.text);
    else showText(botMessage(), entry.text, false);
  }
}

function onReply(event) {
  let message = state.replies.get(event.reply);
  if (!message) {
    message = state.waiting.get(event.question) ?? botMessage();
    state.waiting.delete(event.question);
    state.replies.set(event.reply, message);
  }
  showText(message, event.text, event.streaming);
  if (!event.streaming) state.replies.delete(event.reply);
  updateButtons();
}

function onRefused(event) {
  const message = state.waiting.get(event.question);
  if (message) {
    const question = message.previousElementSibling;  // given back to the box: nothing typed is lost
    if (!view.input.value) view.input.value = question.textContent;
    resizeInput();
    question.remove();
    message.remove();
    state.waiting.delete(event.question);
    if (!view.messages.childElementCount) welcome();
  }
  showNotice(event.reason);
  updateButtons();
}

// ---- the connection -----------------------------------------------------------------------

const handlers = {
  hello(event) {
    state.maxChars = event.maxChars;
    view.model.textContent = event.model;
    showHistory(event.history);
  },
  reply: onReply,
  refused: onRefused,
  cleared() { showHistory([]); showNotice(""); },
  notice(event) { showNotice(event.text); },
};

function connect() {
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  state.socket = socket;
  socket.addEventListener("open", () => { state.connected = true; state.retryMs = 500; setStatus(true); });
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (Object.hasOwn(handlers, event.type)) handlers[event.type](event);
  });
  socket.addEventListener("close", (close) => {
    state.connected = false;
    setStatus(false);
    if (close.code === 1009) showNotice("That message was too large to send.");
    setTimeout(connect, state.retryMs);
    state.retryMs = Math.min(state.retryMs * 2, 5000);
  });
}

function setStatus(online) {
  view.status.classList.toggle("online", online);
  view.status.title = online ? "connected" : "reconnecting";
  if (!online) view.model.textContent = "reconnecting…";
  updateButtons();
}

function showNotice(text) {
  view.notice.textContent = text;
}

function updateButtons() {
  const busy = state.waiting.size > 0 || state.replies.size > 0;
  view.send.disabled = !state.connected || busy || !view.input.value.trim();
  view.reset.disabled = !state.connected;
}

// ---- the message box ----------------------------------------------------------------------

function submit() {
  const text = view.input.value;
  if (text.trim() === "/reset") return startOver();
  if (!text.trim() || view.send.disabled) return;
  const length = [...text].length;
  if (length > state.maxChars) {
    return showNotice(`Your message is ${length.toLocaleString("en")} characters long; ` +
                      `the limit is ${state.maxChars.toLocaleString("en")}. Please shorten it or send it in parts.`);
  }
  const id = `q${Date.now().toString(36)}${++state.asked}`;
  userMessage(text);
  const reply = botMessage();
  reply.dataset.state = "waiting";
  reply.querySelector(".body").append(el("div", "typing", el("span"), el("span"), el("span")));
  state.waiting.set(id, reply);
  state.socket.send(JSON.stringify({ type: "ask", id, text }));
  view.input.value = "";
  showNotice("");
  resizeInput();
  updateButtons();
}

function startOver() {
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  state.socket.send(JSON.stringify({ type: "reset" }));
  view.input.value = "";
  resizeInput();
  updateButtons();
}

function resizeInput() {
  view.input.style.height = "auto";
  view.input.style.height = `${view.input.scrollHeight}px`;
}

$("composer").addEventListener("submit", (event) => { event.preventDefault(); submit(); });
view.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});
view.input.addEventListener("input", () => { resizeInput(); updateButtons(); });
view.reset.addEventListener("click", startOver);
welcome();
connect();
