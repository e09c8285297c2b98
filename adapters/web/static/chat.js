// The chat page: one websocket to the bot; each answer streams into every tab showing its
// conversation, labelled with the model that wrote it, and can be stopped (Stop, Esc) or written
// again (Regenerate). The sidebar lists the browser's conversations (open, rename, delete, new);
// the header picks the conversation's model; images go with a question (attached, pasted or
// dropped), read here as data URLs and shown from them. Copy works on plain http too.
//
// Nothing received is ever parsed as HTML. Text reaches the page only as Text nodes
// (append/textContent), Markdown becomes elements built here one by one, and a link is made
// only for an http(s) URL. So <script> or <img onerror> written by the model or a person shows
// as the text it is. The only images shown are the person's own files, from the data URLs read here.
"use strict";

const $ = (id) => document.getElementById(id);
const view = { messages: $("messages"), scroller: $("scroller"), input: $("input"), send: $("send"),
               stop: $("stop"), new: $("new"), notice: $("notice"), status: $("status"), model: $("model"),
               models: $("models"), attach: $("attach"), file: $("file"), tray: $("tray"),
               list: $("conversations"), heading: $("heading"), menu: $("menu") };
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
const state = { socket: null, connected: false, maxChars: 100000, maxImages: 0, maxImageBytes: 10000000,
                models: [] /* {id, name, vision} */, model: null /* the conversation's */, retryMs: 500, asked: 0,
                pending: [] /* images to send with the next question: {name, type, data} (data: null while read) */,
                pasted: 0,
                waiting: new Map() /* question id -> {reply, question, text, images, again, before} */,
                replies: new Map() /* reply id -> its message while it streams */,
                texts: new WeakMap() /* message -> its text, for Copy */,
                conversation: sessionStorage.getItem("conversation") || "" /* the one shown */,
                conversations: [] /* {id, title}, the most recently used first */ };

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
  const copy = copyButton(() => code, "Copy the code");
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

// ---- copying ------------------------------------------------------------------------------

// navigator.clipboard exists only on https and localhost: elsewhere (and when it refuses) the
// text is selected in a hidden textarea and copied the old way.
async function copyText(text) {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* refused: the old way below */ }
  const focused = document.activeElement;
  const area = el("textarea", "offscreen");
  area.value = text;
  area.readOnly = true;
  area.setAttribute("aria-hidden", "true");
  document.body.append(area);
  area.select();
  let copied = false;
  try { copied = document.execCommand("copy"); } catch { copied = false; }
  area.remove();
  focused?.focus?.();
  return copied;
}

function copyButton(text, title) {
  const button = el("button", "copy", "Copy");
  button.type = "button";
  button.title = title;
  button.addEventListener("click", async () => {
    button.textContent = (await copyText(text())) ? "Copied" : "Couldn't copy";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}

// ---- the conversation ---------------------------------------------------------------------

function welcome() {
  view.messages.replaceChildren(el("div", "welcome",
    el("div", "logo", "M"), el("h1", "", "What can I help with?"),
    el("div", "", "Answers appear as the model writes them. Your conversations stay in this browser, listed on the left.")));
}

function append(node) {
  view.messages.querySelector(".welcome")?.remove();
  const pinned = view.scroller.scrollHeight - view.scroller.scrollTop - view.scroller.clientHeight < 80;
  view.messages.append(node);
  if (pinned) view.scroller.scrollTop = view.scroller.scrollHeight;
}

// The person's message: the images sent with it (or, from the history, how many there were), then its text.
function userMessage(text, { images = [], count = 0 } = {}) {
  const body = el("div", "body");
  if (images.length) body.append(el("div", "thumbs", ...images.map(picture)));
  else if (count) body.append(el("div", "images-marker", `🖼 ${count} image${count === 1 ? "" : "s"}`));
  if (text) body.append(text);
  const message = el("div", "message user", body);
  state.texts.set(message, text);
  message.append(el("div", "actions", copyButton(() => state.texts.get(message) ?? "", "Copy this message")));
  append(message);
  return message;
}

function picture(image) {
  const img = el("img");
  img.alt = image.name;
  img.title = image.name;
  if (image.data) img.src = image.data;  // a data: URL read from the person's own file
  return img;
}

function botMessage() {
  const body = el("div", "body");
  const label = el("div", "model-label");
  const message = el("div", "message bot", el("div", "logo", "M"), el("div", "content", body, label));
  const again = el("button", "again", "↻ Regenerate");
  again.type = "button";
  again.title = "Write this answer again";
  again.hidden = true;
  again.addEventListener("click", () => regenerate(message));
  label.after(el("div", "actions", copyButton(() => state.texts.get(message) ?? "", "Copy this answer"), again));
  append(message);
  return message;
}

function showWaiting(message) {
  message.dataset.state = "waiting";
  message.querySelector(".model-label").textContent = "";
  message.querySelector(".body").replaceChildren(el("div", "typing", el("span"), el("span"), el("span")));
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
  state.texts.set(message, text);
  message.dataset.state = streaming ? "streaming" : "done";
  if (pinned) view.scroller.scrollTop = view.scroller.scrollHeight;
}

function showLabel(message, model) {
  if (!model) return;
  const label = message.querySelector(".model-label");
  label.textContent = model;
  label.title = `Answered by ${model}`;
}

// The conversation as stored (an answer that failed ends with its reason, as it did live), then
// the answers being written in it, which go on streaming here.
function showHistory(history, live = []) {
  state.waiting.clear();
  state.replies.clear();
  if (!history.length && !live.length) return welcome();
  view.messages.replaceChildren();
  for (const entry of history) {
    if (entry.role === "user") userMessage(entry.text, { count: entry.images || 0 });
    else showText(botMessage(), entry.text, false);
  }
  for (const answer of live) {
    const message = botMessage();
    showLabel(message, answer.model);
    if (answer.reply) {
      state.replies.set(answer.reply, message);
      showText(message, answer.text, true);
    } else {
      showWaiting(message);
      state.waiting.set(answer.question, { reply: message, question: null });
    }
  }
}

function onReply(event) {
  let message = state.replies.get(event.reply);
  if (!message) {
    message = state.waiting.get(event.question)?.reply ?? botMessage();
    state.waiting.delete(event.question);
    state.replies.set(event.reply, message);
  }
  showLabel(message, event.model);
  showText(message, event.text, event.streaming);
  if (!event.streaming) state.replies.delete(event.reply);
  updateButtons();
}

// A question asked in another tab of this conversation (or again), now being answered.
function onAsked(event) {
  if (state.waiting.has(event.question)) return;  // asked here
  let reply;
  if (event.again) {
    const last = view.messages.lastElementChild;
    reply = last?.classList.contains("bot") ? last : botMessage();
  } else {
    userMessage(event.text ?? "", { count: event.images || 0 });
    reply = botMessage();
  }
  showWaiting(reply);
  state.waiting.set(event.question, { reply, question: null });
  updateButtons();
}

function onRefused(event) {
  const waiting = state.waiting.get(event.question);
  if (waiting?.again) {
    showText(waiting.reply, waiting.before, false);
  } else if (waiting) {  // given back to the box: nothing typed or attached is lost
    if (!view.input.value) view.input.value = waiting.text;
    if (!state.pending.length) {
      state.pending = waiting.images;
      showTray();
    }
    resizeInput();
    waiting.question?.remove();
    waiting.reply.remove();
    if (!view.messages.childElementCount) welcome();
  }
  state.waiting.delete(event.question);
  showNotice(event.reason);
  updateButtons();
}

function regenerate(message) {
  if (!state.connected || busy()) return;
  const id = questionId();
  state.waiting.set(id, { reply: message, question: null, again: true, before: state.texts.get(message) ?? "" });
  showWaiting(message);
  state.socket.send(JSON.stringify({ type: "again", id }));
  showNotice("");
  updateButtons();
}

function stop() {
  if (state.connected && busy()) state.socket.send(JSON.stringify({ type: "stop" }));
}

// ---- the conversations --------------------------------------------------------------------

function showConversations(items) {
  state.conversations = items;
  view.list.replaceChildren(...items.map(conversationItem));
  const current = items.find((item) => item.id === state.conversation);
  view.heading.textContent = current?.title || "New conversation";
}

function conversationItem(item) {
  const open = el("button", item.title ? "open" : "open untitled", item.title || "New conversation");
  open.type = "button";
  open.title = item.title || "A conversation with nothing asked yet";
  open.addEventListener("click", () => openConversation(item.id));
  const rename = el("button", "icon rename", "✎");
  rename.type = "button";
  rename.title = "Rename";
  rename.setAttribute("aria-label", `Rename ${item.title || "this conversation"}`);
  const remove = el("button", "icon delete", "✕");
  remove.type = "button";
  remove.title = "Delete";
  remove.setAttribute("aria-label", `Delete ${item.title || "this conversation"}`);
  const row = el("div", "conversation", open, el("span", "tools", rename, remove));
  row.dataset.id = item.id;
  if (item.id === state.conversation) {
    row.classList.add("current");
    open.setAttribute("aria-current", "true");
  }
  rename.addEventListener("click", () => startRename(row, open, item));
  remove.addEventListener("click", () => deleteConversation(item));
  return row;
}

function startRename(row, open, item) {
  const input = el("input");
  input.value = item.title;
  input.maxLength = 80;
  input.setAttribute("aria-label", "New title");
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title && title !== item.title && state.connected) {
      state.socket.send(JSON.stringify({ type: "rename", id: item.id, title }));
      open.textContent = title;  // until the list comes back
      open.classList.remove("untitled");
    }
    input.replaceWith(open);
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); finish(true); }
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
  open.replaceWith(input);
  input.focus();
  input.select();
}

function deleteConversation(item) {
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  const name = item.title ? `“${item.title}”` : "this conversation";
  if (!confirm(`Delete ${name}? Its messages are forgotten.`)) return;
  state.socket.send(JSON.stringify({ type: "delete", id: item.id }));
}

function openConversation(id) {
  document.body.classList.remove("sidebar");
  if (id === state.conversation) return;
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  state.socket.send(JSON.stringify({ type: "open", id }));
}

function newConversation() {
  document.body.classList.remove("sidebar");
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  state.socket.send(JSON.stringify({ type: "new" }));
  view.input.focus();
}

// ---- the connection -----------------------------------------------------------------------

const handlers = {
  hello(event) {
    state.maxChars = event.maxChars;
    state.maxImages = event.maxImages ?? 0;
    state.maxImageBytes = event.maxImageBytes ?? state.maxImageBytes;
    state.models = event.models;
    view.models.replaceChildren(...event.models.map((model) => {
      const option = el("option", "", model.vision ? `${model.name} · sees images` : model.name);
      option.value = model.id;
      return option;
    }));
    if (event.conversation !== state.conversation) showNotice("");
    state.conversation = event.conversation;
    sessionStorage.setItem("conversation", state.conversation);
    showConversations(event.conversations ?? []);
    showModel(event.model);
    showHistory(event.history, event.live ?? []);
    updateButtons();
  },
  model(event) { showModel(event.model); },
  reply: onReply,
  asked: onAsked,
  refused: onRefused,
  conversations(event) { showConversations(event.items); },
  cleared() { showHistory([]); showNotice(""); updateButtons(); },
  notice(event) { showNotice(event.text, event.level); },
};

function connect() {
  const query = state.conversation ? `?conversation=${encodeURIComponent(state.conversation)}` : "";
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${query}`);
  state.socket = socket;
  socket.addEventListener("open", () => { state.connected = true; state.retryMs = 500; setStatus(true); });
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (Object.hasOwn(handlers, event.type)) handlers[event.type](event);
  });
  socket.addEventListener("close", (close) => {
    if (state.socket !== socket) return;
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
  showHeader();
  updateButtons();
}

// The header names the conversation's model: a picker when there are several, else just its name.
function showModel(model) {
  state.model = model;
  showHeader();
}

function showHeader() {
  const picker = state.connected && state.model !== null && state.models.length > 1;
  view.models.hidden = !picker;
  view.model.hidden = picker;
  if (!state.connected) view.model.textContent = state.model ? "reconnecting…" : "connecting…";
  else if (state.model) view.model.textContent = state.model.name;
  if (picker) view.models.value = state.model.id;
}

function chooseModel(name) {
  if (!state.connected) {
    showHeader();
    return showNotice("Not connected yet: try again in a moment.");
  }
  state.socket.send(JSON.stringify({ type: "model", id: name }));
}

function describeModels() {
  if (!state.model) return showNotice("Not connected yet: try again in a moment.");
  const lines = [`This conversation answers with ${state.model.name}.`];
  if (state.models.length > 1) {
    for (const model of state.models) lines.push(`• ${model.name}${model.vision ? " (sees images)" : ""}`);
    lines.push("Pick one in the header, or type /model and its name.");
  }
  showNotice(lines.join("\n"), "info");
}

function showNotice(text, level = "warning") {
  view.notice.textContent = text;
  view.notice.classList.toggle("info", level === "info");
}

// An answer is on its way in the conversation shown (asked here or in another tab).
function busy() {
  return state.waiting.size > 0 || state.replies.size > 0;
}

function updateButtons() {
  const reading = state.pending.some((image) => !image.data);
  const something = view.input.value.trim() || state.pending.length;
  view.send.disabled = !state.connected || busy() || reading || !something;
  view.stop.hidden = !busy();
  view.stop.disabled = !state.connected;
  view.new.disabled = !state.connected;
  view.models.disabled = !state.connected;
  view.attach.hidden = !state.maxImages;
  // Regenerate: the last answer only, once it is done.
  const last = view.messages.lastElementChild;
  for (const button of view.messages.querySelectorAll(".again")) {
    button.hidden = button.closest(".message") !== last || busy() || !state.connected;
  }
}

// ---- images to send -----------------------------------------------------------------------

function addImages(files, pasted = false) {
  const problems = [];
  const megabytes = Math.round(state.maxImageBytes / 1e6);
  for (const file of files) {
    const name = pasted ? `pasted image ${++state.pasted}.${file.type.split("/")[1] || "png"}` : file.name || "image";
    if (!state.maxImages) {
      problems.push("This chat doesn't take images.");
      break;
    }
    if (!IMAGE_TYPES.includes(file.type)) {
      problems.push(`${name} isn't a PNG, JPEG, WebP or GIF image.`);
    } else if (file.size > state.maxImageBytes) {
      problems.push(`${name} is larger than ${megabytes} MB, the most one image may be.`);
    } else if (state.pending.length >= state.maxImages) {
      problems.push(`You can send up to ${state.maxImages} image${state.maxImages === 1 ? "" : "s"} with one message.`);
      break;
    } else {
      readImage(file, name);
    }
  }
  showNotice(problems.join(" "));
  showTray();
  updateButtons();
}

function readImage(file, name) {
  const image = { name, type: file.type, data: null };
  state.pending.push(image);
  const reader = new FileReader();
  reader.addEventListener("load", () => {
    image.data = reader.result;
    showTray();
    updateButtons();
  });
  reader.addEventListener("error", () => {
    removeImage(image);
    showNotice(`${name} could not be read.`);
  });
  reader.readAsDataURL(file);
}

function removeImage(image) {
  state.pending = state.pending.filter((pending) => pending !== image);
  showTray();
  updateButtons();
}

// The images waiting to be sent, each with a button that takes it out.
function showTray() {
  view.tray.replaceChildren(...state.pending.map((image) => {
    const remove = el("button", "", "×");
    remove.type = "button";
    remove.title = `Remove ${image.name}`;
    remove.setAttribute("aria-label", `Remove ${image.name}`);
    remove.addEventListener("click", () => { removeImage(image); view.input.focus(); });
    return el("div", image.data ? "thumb" : "thumb loading", picture(image), remove);
  }));
}

// ---- the message box ----------------------------------------------------------------------

function submit() {
  const text = view.input.value;
  const images = state.pending;
  if (!images.length && text.trim() === "/reset") return startOver();
  const command = !images.length && text.trim().match(/^\/model(?:\s+([\s\S]+))?$/);
  if (command) {
    if (command[1]) chooseModel(command[1].trim());
    else describeModels();
    view.input.value = "";
    resizeInput();
    return updateButtons();
  }
  if ((!text.trim() && !images.length) || view.send.disabled) return;
  const length = [...text].length;
  if (length > state.maxChars) {
    return showNotice(`Your message is ${length.toLocaleString("en")} characters long; ` +
                      `the limit is ${state.maxChars.toLocaleString("en")}. Please shorten it or send it in parts.`);
  }
  const id = questionId();
  const question = userMessage(text, { images });
  const reply = botMessage();
  showWaiting(reply);
  state.waiting.set(id, { reply, question, text, images });
  const frame = { type: "ask", id, text };
  if (images.length) frame.images = images.map(({ name, type, data }) => ({ name, type, data }));
  state.socket.send(JSON.stringify(frame));
  view.input.value = "";
  state.pending = [];
  showTray();
  showNotice("");
  resizeInput();
  updateButtons();
}

function questionId() {
  return `q${Date.now().toString(36)}${++state.asked}`;
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
view.input.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData?.files ?? [])].filter((file) => file.type.startsWith("image/"));
  if (!files.length) return;  // text is pasted as usual
  event.preventDefault();
  addImages(files, true);
});
view.attach.addEventListener("click", () => view.file.click());
view.file.addEventListener("change", () => {
  addImages([...view.file.files]);
  view.file.value = "";  // the same file may be chosen again
  view.input.focus();
});
// A file dropped anywhere on the page is attached, rather than opened in place of the chat.
document.addEventListener("dragover", (event) => {
  if (event.dataTransfer?.types.includes("Files")) event.preventDefault();
});
document.addEventListener("drop", (event) => {
  if (!event.dataTransfer?.files.length) return;
  event.preventDefault();
  addImages([...event.dataTransfer.files]);
});
view.models.addEventListener("change", () => chooseModel(view.models.value));
view.new.addEventListener("click", newConversation);
view.stop.addEventListener("click", () => { stop(); view.input.focus(); });
view.menu.addEventListener("click", () => document.body.classList.toggle("sidebar"));
view.scroller.addEventListener("click", () => document.body.classList.remove("sidebar"));  // narrow screens
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !event.defaultPrevented && busy()) {
    event.preventDefault();
    stop();
  }
});
welcome();
connect();
