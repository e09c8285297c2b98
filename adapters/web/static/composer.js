// The message box: a question (with the files in the tray) or a command (/reset, /model),
// and the question given back to it when the server refuses it.
import { chooseModel, describeModels } from "./header.js";
import { showTray } from "./images.js";
import { botMessage, questionId, showText, showWaiting, userMessage, welcome } from "./messages.js";
import { showNotice, state, updateButtons, view } from "./page.js";
import { send } from "./socket.js";
import { giveBackTools } from "./tools.js";

export function submit() {
  const text = view.input.value;
  const images = state.pending;  // the files, images or not
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
  if (images.length) frame.files = images.map(({ name, type, data }) => ({ name, type, data }));
  send(frame);
  view.input.value = "";
  state.pending = [];
  showTray();
  showNotice("");
  resizeInput();
  updateButtons();
}

function startOver() {
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  send({ type: "reset" });
  view.input.value = "";
  resizeInput();
  updateButtons();
}

export function resizeInput() {
  view.input.style.height = "auto";
  view.input.style.height = `${view.input.scrollHeight}px`;
}

export function onRefused(event) {
  const waiting = state.waiting.get(event.question);
  if (waiting?.again) {
    showText(waiting.reply, waiting.before, false);
    giveBackTools(waiting.reply, waiting.tools);
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
