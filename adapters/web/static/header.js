// The header: whether the page is connected, and the conversation's model, as a picker when
// there are several, else just its name.
import { el, showNotice, state, updateButtons, view } from "./page.js";
import { send } from "./socket.js";

// The models this chat offers (from hello): the picker's options.
export function showModels(models) {
  state.models = models;
  view.models.replaceChildren(...models.map((model) => {
    const option = el("option", "", model.vision ? `${model.name} · sees images` : model.name);
    option.value = model.id;
    return option;
  }));
}

export function setStatus(online) {
  view.status.classList.toggle("online", online);
  view.status.title = online ? "connected" : "reconnecting";
  showHeader();
  updateButtons();
}

export function showModel(model) {
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

export function chooseModel(name) {
  if (!state.connected) {
    showHeader();
    return showNotice("Not connected yet: try again in a moment.");
  }
  send({ type: "model", id: name });
}

export function describeModels() {
  if (!state.model) return showNotice("Not connected yet: try again in a moment.");
  const lines = [`This conversation answers with ${state.model.name}.`];
  if (state.models.length > 1) {
    for (const model of state.models) lines.push(`• ${model.name}${model.vision ? " (sees images)" : ""}`);
    lines.push("Pick one in the header, or type /model and its name.");
  }
  showNotice(lines.join("\n"), "info");
}
