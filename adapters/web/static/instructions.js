// The conversation's Instructions: its own persona, who the bot is in it (the header's Instructions button
// opens a panel to write, save or clear them). Without them the bot's default applies. They are text only:
// shown in a textarea (its value), never parsed as HTML.
import { showNotice, state, view } from "./page.js";
import { send } from "./socket.js";

const $ = (id) => document.getElementById(id);
const ui = { button: $("instructions-button"), panel: $("instructions-panel"), text: $("instructions-text"),
             count: $("instructions-count"), save: $("instructions-save"), clear: $("instructions-clear"),
             close: $("instructions-close"), status: $("instructions-status") };
let saving = false;  // this page sent instructions and waits to hear they were kept
let shownFor = null;  // the conversation whose instructions the panel shows

// Whether the panel is open with a text not saved yet (kept when the same conversation is shown again).
function edited() {
  return !ui.panel.hidden && ui.text.value !== (state.instructions ?? "");
}

// From `hello` (after state.conversation is set): the conversation's instructions ("" for none; null when
// instructions are not available here).
export function showInstructions(text, max) {
  ui.button.hidden = text === null || text === undefined;
  if (max) ui.text.maxLength = max;
  const same = shownFor === state.conversation;
  shownFor = state.conversation;
  saving = false;
  setText(text ?? "", !(same && edited()));
  if (ui.button.hidden || !same) closeInstructions();
}

// `instructions` {conversation, text}: saved or cleared, by this page or another showing the conversation.
export function onInstructions(event) {
  if (event.conversation !== state.conversation) return;
  setText(String(event.text ?? ""), saving || !edited());
  if (saving) closeInstructions();
  saving = false;
}

function setText(text, intoField) {
  state.instructions = text;
  ui.button.classList.toggle("on", Boolean(text));
  ui.button.title = text ? "This conversation's instructions (set)" : "Instructions for this conversation";
  ui.status.textContent = text ? "These apply to this conversation." : "None yet: the bot's default applies.";
  if (intoField) ui.text.value = text;
  counted();
}

function counted() {
  ui.count.textContent = `${ui.text.value.length.toLocaleString("en")} / ${ui.text.maxLength.toLocaleString("en")}`;
  ui.save.disabled = !state.connected || !ui.text.value.trim() || ui.text.value.trim() === state.instructions;
  ui.clear.disabled = !state.connected || !state.instructions;
}

function toggle() {
  if (!ui.panel.hidden) return closeInstructions();
  ui.text.value = state.instructions ?? "";
  ui.panel.hidden = false;
  ui.button.setAttribute("aria-expanded", "true");
  counted();
  ui.text.focus();
}

export function closeInstructions() {
  if (ui.panel.hidden) return false;
  ui.panel.hidden = true;
  ui.button.setAttribute("aria-expanded", "false");
  return true;
}

function save(text) {
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  saving = true;
  send({ type: "instructions", id: state.conversation, text });
}

ui.button.addEventListener("click", toggle);
view.toolsButton.addEventListener("click", closeInstructions);  // one panel at a time
ui.close.addEventListener("click", () => { closeInstructions(); view.input.focus(); });
ui.text.addEventListener("input", counted);
ui.save.addEventListener("click", () => save(ui.text.value));
ui.clear.addEventListener("click", () => { ui.text.value = ""; save(""); });
ui.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); ui.save.click(); }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !event.defaultPrevented && ui.panel.contains(event.target) && closeInstructions()) {
    event.preventDefault();
    ui.button.focus();
  }
});
