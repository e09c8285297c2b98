// The chat page: one websocket to the bot; each answer streams into every tab showing its
// conversation, labelled with the model that wrote it, and can be stopped (Stop, Esc) or written
// again (Regenerate). The sidebar lists the browser's conversations (open, rename, delete, new);
// the header picks the conversation's model; files go with a question (attached, dropped, images
// pasted too), read in the page as data URLs: images shown from them, documents and text files by
// name (images.js). Copy works on plain http too.
// An answer's tool calls show as chips in it, a tool that asks first asks with Run / Cancel, and
// the header's Tools menu lists the tools (tools.js). The header's Instructions button edits the
// conversation's own persona (instructions.js). The sidebar's Forget me deletes everything the chat keeps about
// the person, once confirmed in the page (forget.js). Each finished answer takes a 👍 or a 👎, a 👎 with an
// optional reason typed under it (votes.js). The sidebar shows what the browser's questions used today and this
// month, and what is left of its budgets (usage.js).
//
// Nothing received is ever parsed as HTML. Text reaches the page only as Text nodes
// (append/textContent), Markdown becomes elements built one by one (markdown.js), and a link is made
// only for an http(s) URL. So <script> or <img onerror> written by the model or a person shows
// as the text it is. The only images shown are the person's own files, from the data URLs read here.
//
// This entry module wires the others to the page: each frame from the socket to what shows it,
// each control to what it does.
import { onRefused, resizeInput, submit } from "./composer.js";
import { newConversation, showConversations } from "./conversations.js";
import "./forget.js";
import { chooseModel, setStatus, showModel, showModels } from "./header.js";
import { acceptedFiles, addFiles } from "./images.js";
import { onInstructions, showInstructions } from "./instructions.js";
import { onAsked, onReply, showHistory, stop, welcome } from "./messages.js";
import { busy, showNotice, state, updateButtons, view } from "./page.js";
import { connect } from "./socket.js";
import { showUsage } from "./usage.js";
import { onVoted } from "./votes.js";
import { closeToolsPanel, onConfirm, onConfirmed, onSources, onTool, showToolList, showToolsButton,
         toggleToolsPanel } from "./tools.js";

const handlers = {
  hello(event) {
    state.maxChars = event.maxChars;
    state.maxImages = event.maxImages ?? 0;
    state.maxImageBytes = event.maxImageBytes ?? state.maxImageBytes;
    for (const limit of ["maxFiles", "maxFilesBytes", "maxDocumentBytes", "maxTextBytes"]) state[limit] = event[limit] ?? 0;
    state.documentTypes = event.documentTypes ?? [];
    state.textTypes = event.textTypes ?? [];
    view.file.accept = acceptedFiles();
    showModels(event.models);
    if (event.conversation !== state.conversation) showNotice("");
    state.conversation = event.conversation;
    sessionStorage.setItem("conversation", state.conversation);
    showConversations(event.conversations ?? []);
    showModel(event.model);
    showToolsButton(Boolean(event.toolsConnected));  // `tools`: whether this conversation's model uses them
    showInstructions(event.instructions, event.maxInstructions);
    showHistory(event.history, event.live ?? []);
    if (event.usage) showUsage(event.usage);
    updateButtons();
  },
  model(event) { showModel(event.model); },
  reply: onReply,
  asked: onAsked,
  refused: onRefused,
  conversations(event) { showConversations(event.items); },
  cleared() { showHistory([]); showNotice(""); updateButtons(); },
  notice(event) { showNotice(event.text, event.level); },
  tool: onTool,
  sources: onSources,
  confirm: onConfirm,
  confirmed: onConfirmed,
  tools: showToolList,
  instructions: onInstructions,
  voted: onVoted,
  usage: showUsage,
};

view.composer.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
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
  addFiles(files, true);
});
view.attach.addEventListener("click", () => view.file.click());
view.file.addEventListener("change", () => {
  addFiles([...view.file.files]);
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
  addFiles([...event.dataTransfer.files]);
});
view.models.addEventListener("change", () => chooseModel(view.models.value));
view.new.addEventListener("click", newConversation);
view.stop.addEventListener("click", () => { stop(); view.input.focus(); });
view.menu.addEventListener("click", () => document.body.classList.toggle("sidebar"));
view.scroller.addEventListener("click", () => document.body.classList.remove("sidebar"));  // narrow screens
view.toolsButton.addEventListener("click", toggleToolsPanel);
document.addEventListener("click", (event) => {  // a click elsewhere closes the Tools menu
  if (!view.toolsPanel.contains(event.target) && !view.toolsButton.contains(event.target)) closeToolsPanel();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && closeToolsPanel()) event.preventDefault();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !event.defaultPrevented && busy()) {
    event.preventDefault();
    stop();
  }
});
welcome();
connect(handlers, setStatus);
