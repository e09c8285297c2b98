// The sidebar: the browser's conversations, most recently used first, to open, rename, delete
// or start anew.
import { icon } from "./icons.js";
import { el, showNotice, state, view } from "./page.js";
import { send } from "./socket.js";

export function showConversations(items) {
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
  const rename = el("button", "icon rename", icon("rename"));
  rename.type = "button";
  rename.title = "Rename";
  rename.setAttribute("aria-label", `Rename ${item.title || "this conversation"}`);
  const remove = el("button", "icon delete", icon("close"));
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
      send({ type: "rename", id: item.id, title });
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
  send({ type: "delete", id: item.id });
}

function openConversation(id) {
  document.body.classList.remove("sidebar");
  if (id === state.conversation) return;
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  send({ type: "open", id });
}

export function newConversation() {
  document.body.classList.remove("sidebar");
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  send({ type: "new" });
  view.input.focus();
}
