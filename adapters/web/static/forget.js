// The sidebar's Forget me: after a confirmation in the page, everything this chat keeps about the person goes
// (every conversation of the browser, their instructions, the question counters). The server then shows a fresh
// conversation in every tab and says here what was deleted (a notice, set as text).
import { showNotice, state, view } from "./page.js";
import { send } from "./socket.js";

const $ = (id) => document.getElementById(id);
const ui = { button: $("forget-button"), confirm: $("forget-confirm"), yes: $("forget-yes"), no: $("forget-no") };

function ask() {
  ui.confirm.hidden = false;
  ui.button.hidden = true;
  ui.button.setAttribute("aria-expanded", "true");
  ui.no.focus();
}

function close() {
  ui.confirm.hidden = true;
  ui.button.hidden = false;
  ui.button.setAttribute("aria-expanded", "false");
}

function forget() {
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  close();
  document.body.classList.remove("sidebar");
  send({ type: "forget" });
  showNotice("Deleting what this chat keeps about you…", "info");
  view.input.focus();
}

ui.button.addEventListener("click", ask);
ui.no.addEventListener("click", () => { close(); ui.button.focus(); });
ui.yes.addEventListener("click", forget);
ui.confirm.addEventListener("keydown", (event) => {
  if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); close(); ui.button.focus(); }
});
