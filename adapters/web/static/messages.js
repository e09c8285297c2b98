// The conversation shown: the person's messages, and the answers as they stream in, each
// labelled with the model that wrote it, with Copy, 👍 / 👎 once finished (votes.js) and (the last one) Regenerate.
import { forgetCited, markCitations } from "./citations.js";
import { copyButton } from "./copy.js";
import { icon } from "./icons.js";
import { fileChip, picture } from "./images.js";
import { renderMarkdown } from "./markdown.js";
import { busy, el, showNotice, state, updateButtons, view } from "./page.js";
import { send } from "./socket.js";
import { onSources, replayTools, showStoredTools, takeTools } from "./tools.js";
import { hideVotes, showVotes } from "./votes.js";

const texts = new WeakMap();  // message -> its text, for Copy
let asked = 0;

export function welcome() {
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

// The person's message: the images sent with it (or, from the history, how many there were), the
// names of its other files, then its text.
export function userMessage(text, { images = [], count = 0, files = [] } = {}) {
  const body = el("div", "body");
  const pictures = images.filter((image) => image.kind === "image");
  const names = [...files, ...images.filter((image) => image.kind !== "image").map((file) => file.name)];
  if (pictures.length) body.append(el("div", "thumbs", ...pictures.map(picture)));
  else if (count) body.append(el("div", "images-marker", icon("image"), `${count} image${count === 1 ? "" : "s"}`));
  if (names.length) body.append(el("div", "files", ...names.map(fileChip)));
  if (text) body.append(text);
  const message = el("div", "message user", body);
  texts.set(message, text);
  message.append(el("div", "actions", copyButton(() => texts.get(message) ?? "", "Copy this message")));
  append(message);
  return message;
}

export function botMessage() {
  const body = el("div", "body");
  const label = el("div", "model-label");
  const message = el("div", "message bot", el("div", "logo", "M"), el("div", "content", body, label));
  const again = el("button", "again", icon("again", 12), " Regenerate");
  again.type = "button";
  again.title = "Write this answer again";
  again.hidden = true;
  again.addEventListener("click", () => regenerate(message));
  label.after(el("div", "actions", copyButton(() => texts.get(message) ?? "", "Copy this answer"), again));
  append(message);
  return message;
}

export function showWaiting(message) {
  message.dataset.state = "waiting";
  hideVotes(message);  // an answer written again is voted on anew
  forgetCited(message);  // and cites anew
  message.querySelector(".thought")?.remove();  // an answer written again thinks again
  message.querySelector(".model-label").textContent = "";
  message.querySelector(".body").replaceChildren(el("div", "typing", el("span"), el("span"), el("span")));
}

export function showText(message, text, streaming) {
  const body = message.querySelector(".body");
  const pinned = view.scroller.scrollHeight - view.scroller.scrollTop - view.scroller.clientHeight < 80;
  renderMarkdown(text, body);
  markCitations(message, text);
  if (streaming) {  // the caret goes right after the last character, in whatever element holds it
    let end = body;
    while (end.lastChild?.nodeType === Node.ELEMENT_NODE && end.lastChild.tagName !== "BR"
           && !end.lastChild.classList.contains("cite")) end = end.lastChild;
    end.append(el("span", "caret"));
  }
  texts.set(message, text);
  message.dataset.state = streaming ? "streaming" : "done";
  if (pinned) view.scroller.scrollTop = view.scroller.scrollHeight;
}

// A thinking model's thought: closed at the top of the answer (above its tool calls), one click away (its text as
// text, never markup).
function showThought(message, thought) {
  if (!thought || message.querySelector(".thought")) return;
  const text = el("div", "thought-text");
  text.textContent = String(thought.text ?? "");
  const details = el("details", "thought", el("summary", "", icon("thought"), ` Thought for ${Number(thought.seconds)} s`), text);
  message.querySelector(".content").prepend(details);
}

function showLabel(message, model) {
  if (!model) return;
  const label = message.querySelector(".model-label");
  label.textContent = model;
  label.title = `Answered by ${model}`;
}

// The conversation as stored, drawn as it was shown: each question with its files' chips, each answer with its
// thought, its tool calls as chips and its sources (one that failed ends with its reason, as it did live); then the
// answers being written in it, which go on streaming here.
export function showHistory(history, live = []) {
  state.waiting.clear();
  state.replies.clear();
  if (!history.length && !live.length) return welcome();
  view.messages.replaceChildren();
  for (const entry of history) {
    if (entry.role === "user") {
      userMessage(entry.text, { count: entry.images || 0, files: (entry.files ?? []).map(String) });
    } else {
      const message = botMessage();
      showText(message, entry.text, false);
      showThought(message, entry.thought);
      showStoredTools(message, entry.tools);
      onSources({ urls: entry.sources ?? [], cited: entry.cited }, message);
      showVotes(message, entry.answer, entry.vote ?? null);
    }
  }
  for (const answer of live) {
    const message = botMessage();
    message.dataset.question = answer.question;
    showLabel(message, answer.model);
    if (answer.reply) {
      state.replies.set(answer.reply, message);
      showText(message, answer.text, true);
    } else {
      showWaiting(message);
      state.waiting.set(answer.question, { reply: message, question: null });
    }
    replayTools(message, answer.tools);
  }
}

export function onReply(event) {
  let message = state.replies.get(event.reply);
  if (!message) {
    message = state.waiting.get(event.question)?.reply ?? botMessage();
    state.waiting.delete(event.question);
    state.replies.set(event.reply, message);
  }
  message.dataset.question = event.question;  // where the answer's tool frames go
  showLabel(message, event.model);
  showText(message, event.text, event.streaming);
  showThought(message, event.thought);
  if (!event.streaming) state.replies.delete(event.reply);
  if (!event.streaming && event.answer) showVotes(message, event.answer);  // kept: it takes votes
  updateButtons();
}

// A question asked in another tab of this conversation (or again), now being answered.
export function onAsked(event) {
  if (state.waiting.has(event.question)) return;  // asked here
  let reply;
  if (event.again) {
    const last = view.messages.lastElementChild;
    reply = last?.classList.contains("bot") ? last : botMessage();
    takeTools(reply);
  } else {
    userMessage(event.text ?? "", { count: event.images || 0, files: (event.files ?? []).map(String) });
    reply = botMessage();
  }
  showWaiting(reply);
  state.waiting.set(event.question, { reply, question: null });
  updateButtons();
}

function regenerate(message) {
  if (!state.connected || busy()) return;
  const id = questionId();
  const tools = takeTools(message);
  state.waiting.set(id, { reply: message, question: null, again: true, before: texts.get(message) ?? "", tools });
  showWaiting(message);
  send({ type: "again", id });
  showNotice("");
  updateButtons();
}

export function stop() {
  if (state.connected && busy()) send({ type: "stop" });
}

export function questionId() {
  return `q${Date.now().toString(36)}${++asked}`;
}
