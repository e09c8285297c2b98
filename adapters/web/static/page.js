// What the modules share: the page's elements, the state of the conversation shown, and the
// notice and buttons that follow it.

const $ = (id) => document.getElementById(id);
export const view = { messages: $("messages"), scroller: $("scroller"), input: $("input"), send: $("send"),
                      stop: $("stop"), new: $("new"), notice: $("notice"), status: $("status"), model: $("model"),
                      models: $("models"), attach: $("attach"), file: $("file"), tray: $("tray"),
                      list: $("conversations"), heading: $("heading"), menu: $("menu"), composer: $("composer"),
                      toolsButton: $("tools-button"), toolsPanel: $("tools-panel") };
export const state = { connected: false, maxChars: 100000, maxImages: 0, maxImageBytes: 10000000,
                       /* what a question may carry besides images (the server's hello says) */
                       maxFiles: 0, maxFilesBytes: 0, maxDocumentBytes: 0, maxTextBytes: 0, documentTypes: [], textTypes: [],
                       models: [] /* {id, name, vision} */, model: null /* the conversation's */,
                       pending: [] /* files to send with the next question: {name, type, size, kind, data} (data: null while read) */,
                       waiting: new Map() /* question id -> {reply, question, text, images, again, before, tools} */,
                       replies: new Map() /* reply id -> its message while it streams */,
                       conversation: sessionStorage.getItem("conversation") || "" /* the one shown */,
                       conversations: [] /* {id, title}, the most recently used first */ };

export function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

export function showNotice(text, level = "warning") {
  view.notice.textContent = text;
  view.notice.classList.toggle("info", level === "info");
}

// An answer is on its way in the conversation shown (asked here or in another tab).
export function busy() {
  return state.waiting.size > 0 || state.replies.size > 0;
}

export function updateButtons() {
  const reading = state.pending.some((pending) => !pending.data);
  const something = view.input.value.trim() || state.pending.length;
  view.send.disabled = !state.connected || busy() || reading || !something;
  view.stop.hidden = !busy();
  view.stop.disabled = !state.connected;
  view.new.disabled = !state.connected;
  view.models.disabled = !state.connected;
  view.attach.hidden = !state.maxImages && !state.maxFiles;
  // Regenerate: the last answer only, once it is done.
  const last = view.messages.lastElementChild;
  for (const button of view.messages.querySelectorAll(".again")) {
    button.hidden = button.closest(".message") !== last || busy() || !state.connected;
  }
}
