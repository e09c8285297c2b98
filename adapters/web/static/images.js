// The files to send with the next question (attached, pasted or dropped): images, documents (PDF,
// Word, PowerPoint, Excel, web pages) and text files, within the limits the server tells the page.
// Each is read here as a data URL; images show from it, other files as a chip with their name, in
// the tray above the message box. A file name is only ever text (textContent), never HTML.
import { icon } from "./icons.js";
import { el, showNotice, state, updateButtons, view } from "./page.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
let pastes = 0;

const sizeText = (bytes) => bytes >= 1e6 ? `${Math.round(bytes / 1e6)} MB` : `${Math.round(bytes / 1e3)} KB`;
const ending = (name) => (name.includes(".") ? name.split(".").pop().toLowerCase() : "");

// What the file is to the bot: "image", "document", "text", or "" (nothing it reads).
function kindOf(file, name) {
  if (file.type.startsWith("image/")) return "image";
  if (state.documentTypes.includes(ending(name))) return "document";
  if (file.type.startsWith("text/") || state.textTypes.includes(ending(name))) return "text";
  return "";
}

// Why the page won't send this file, if it won't.
function refusal(file, name, kind) {
  const files = state.pending.filter((pending) => pending.kind !== "image");
  if (kind === "image") {
    if (!state.maxImages) return "This chat doesn't take images.";
    if (!IMAGE_TYPES.includes(file.type)) return `${name} isn't a PNG, JPEG, WebP or GIF image.`;
    if (file.size > state.maxImageBytes) {
      return `${name} is larger than ${sizeText(state.maxImageBytes)}, the most one image may be.`;
    }
    if (state.pending.length - files.length >= state.maxImages) {
      return `You can send up to ${state.maxImages} image${state.maxImages === 1 ? "" : "s"} with one message.`;
    }
    return "";
  }
  if (!kind) return `${name} isn't a file I can read: ${readable()}.`;
  const most = kind === "document" ? state.maxDocumentBytes : state.maxTextBytes;
  if (file.size > most) {
    return `${name} is larger than ${sizeText(most)}, the most one ${kind === "document" ? "document" : "text file"} may be.`;
  }
  if (files.length >= state.maxFiles) return `You can send up to ${state.maxFiles} files besides images with one message.`;
  if (files.reduce((sum, pending) => sum + pending.size, file.size) > state.maxFilesBytes) {
    return `${name} doesn't fit: the files of one message may be ${sizeText(state.maxFilesBytes)} in all.`;
  }
  return "";
}

function readable() {
  const kinds = [state.maxImages && "images", state.documentTypes.length && "documents (PDF, Word, PowerPoint, Excel, HTML)",
                 "text files"].filter(Boolean);
  return `send ${kinds.length > 1 ? `${kinds.slice(0, -1).join(", ")} or ${kinds.at(-1)}` : kinds[0]}`;
}

export function addFiles(files, pasted = false) {
  const problems = [];
  for (const file of files) {
    const name = pasted ? `pasted image ${++pastes}.${file.type.split("/")[1] || "png"}` : file.name || "file";
    const kind = kindOf(file, name);
    const problem = refusal(file, name, kind);
    if (!problem) readFile(file, name, kind);
    else if (!problems.includes(problem)) problems.push(problem);
  }
  showNotice(problems.join(" "));
  showTray();
  updateButtons();
}

// What the file input offers to choose.
export function acceptedFiles() {
  const endings = [...state.documentTypes, ...state.textTypes].map((type) => `.${type}`);
  return [...(state.maxImages ? IMAGE_TYPES : []), "text/*", ...endings].join(",");
}

function readFile(file, name, kind) {
  const pending = { name, type: file.type, size: file.size, kind, data: null };
  state.pending.push(pending);
  const reader = new FileReader();
  reader.addEventListener("load", () => {
    pending.data = reader.result;
    showTray();
    updateButtons();
  });
  reader.addEventListener("error", () => {
    removeFile(pending);
    showNotice(`${name} could not be read.`);
  });
  reader.readAsDataURL(file);
}

function removeFile(pending) {
  state.pending = state.pending.filter((other) => other !== pending);
  showTray();
  updateButtons();
}

// The files waiting to be sent, each with a button that takes it out.
export function showTray() {
  view.tray.replaceChildren(...state.pending.map((pending) => {
    const remove = el("button", "", icon("close", 12));
    remove.type = "button";
    remove.title = `Remove ${pending.name}`;
    remove.setAttribute("aria-label", `Remove ${pending.name}`);
    remove.addEventListener("click", () => { removeFile(pending); view.input.focus(); });
    const shown = pending.kind === "image" ? picture(pending) : fileChip(pending.name);
    const kind = pending.kind === "image" ? "thumb" : "thumb file";
    return el("div", pending.data ? kind : `${kind} loading`, shown, remove);
  }));
}

export function picture(image) {
  const img = el("img");
  img.alt = image.name;
  img.title = image.name;
  if (image.data) img.src = image.data;  // a data: URL read from the person's own file
  return img;
}

// A file besides images, by its name (a Text node: never parsed as HTML).
export function fileChip(name) {
  const chip = el("span", "file-chip", el("span", "file-icon", icon("file")), el("span", "file-name", name));
  chip.title = name;
  return chip;
}
