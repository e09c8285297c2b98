// 👍 / 👎 (drawn as SVG icons: icons.js) under each finished answer (one that can take votes: the server gives it an id): one vote per browser,
// changed by clicking the other one; the chosen one is pressed (aria-pressed), in every tab of the conversation.
// After a 👎, a box under the answer asks what was wrong (optional): Send keeps it with the vote, Skip closes it.
// What the person types is sent as text and never shown back; the server's answers come as notices (text too).
import { icon } from "./icons.js";
import { el, showNotice, state, view } from "./page.js";
import { send } from "./socket.js";

const REASON_PROMPT = "What was wrong? (optional)";
const REASON_MAX_CHARS = 1000;
const asking = new Set();  // answers whose 👎 was clicked here: the box opens once the server has the vote

function messageOf(answer) {
  return [...view.messages.querySelectorAll(".message.bot")].find((message) => message.dataset.answer === answer);
}

function voteButton(message, up) {
  const button = el("button", "vote", icon(up ? "up" : "down", 15));
  button.type = "button";
  button.dataset.vote = up ? "up" : "down";
  button.title = up ? "Good answer" : "Bad answer";
  button.setAttribute("aria-label", up ? "Good answer" : "Bad answer");
  button.setAttribute("aria-pressed", "false");
  button.addEventListener("click", () => vote(message, up));
  return button;
}

// The buttons of a finished answer, `vote` ("up", "down" or null) pressed.
export function showVotes(message, answer, vote = null) {
  if (!answer) return;
  message.dataset.answer = String(answer);
  if (!message.querySelector(".votes")) {
    const buttons = el("span", "votes", voteButton(message, true), voteButton(message, false));
    buttons.setAttribute("role", "group");
    buttons.setAttribute("aria-label", "Rate this answer");
    message.querySelector(".actions .again").before(buttons);
  }
  pressed(message, vote);
}

// The answer is written again (or goes): its buttons and box go until it has its new id.
export function hideVotes(message) {
  delete message.dataset.answer;
  message.querySelector(".votes")?.remove();
  closeReason(message);
}

function pressed(message, vote) {
  for (const button of message.querySelectorAll(".votes .vote")) {
    button.setAttribute("aria-pressed", String(button.dataset.vote === vote));
  }
}

function vote(message, up) {
  const answer = message.dataset.answer;
  if (!answer) return;
  if (!state.connected) return showNotice("Not connected yet: try again in a moment.");
  if (up) {
    asking.delete(answer);
    closeReason(message);
  } else {
    asking.add(answer);
  }
  send({ type: "vote", answer, up });
}

// The server's word on a vote (this tab's, or another tab's of the browser): the vote that stands.
export function onVoted(event) {
  const answer = String(event.answer ?? "");
  const asked = asking.delete(answer);
  const message = messageOf(answer);
  if (!message) return;
  const vote = event.vote === "up" || event.vote === "down" ? event.vote : null;
  pressed(message, vote);
  if (vote === "down" && asked) openReason(message);
  else if (vote !== "down") closeReason(message);
}

function openReason(message) {
  let box = message.querySelector(".vote-reason");
  if (!box) {
    const input = el("textarea", "");
    input.rows = 2;
    input.maxLength = REASON_MAX_CHARS;
    input.setAttribute("aria-label", REASON_PROMPT);
    const sendButton = el("button", "run", "Send");
    sendButton.type = "button";
    const skip = el("button", "", "Skip");
    skip.type = "button";
    box = el("div", "vote-reason", el("div", "tool-label", REASON_PROMPT), input,
             el("div", "tool-buttons", sendButton, skip));
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Why this answer was bad");
    const submit = () => {
      const reason = input.value.trim();
      const answer = message.dataset.answer;
      if (reason && answer && state.connected) send({ type: "vote_reason", answer, reason });
      else if (reason) return showNotice("Not connected yet: try again in a moment.");
      closeReason(message);
    };
    sendButton.addEventListener("click", submit);
    skip.addEventListener("click", () => closeReason(message));
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); closeReason(message); }
      else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
    });
    message.querySelector(".content").append(box);
  }
  box.querySelector("textarea").focus();
}

function closeReason(message) {
  const box = message.querySelector(".vote-reason");
  if (!box) return;
  const focused = box.contains(document.activeElement);
  box.remove();
  if (focused) message.querySelector(".votes .vote[data-vote='down']")?.focus();
}
