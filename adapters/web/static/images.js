// The images to send with the next question (attached, pasted or dropped): read here as data
// URLs and shown from them, in the tray above the message box.
import { el, showNotice, state, updateButtons, view } from "./page.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp", "image/gif"];
let pastes = 0;

export function addImages(files, pasted = false) {
  const problems = [];
  const megabytes = Math.round(state.maxImageBytes / 1e6);
  for (const file of files) {
    const name = pasted ? `pasted image ${++pastes}.${file.type.split("/")[1] || "png"}` : file.name || "image";
    if (!state.maxImages) {
      problems.push("This chat doesn't take images.");
      break;
    }
    if (!IMAGE_TYPES.includes(file.type)) {
      problems.push(`${name} isn't a PNG, JPEG, WebP or GIF image.`);
    } else if (file.size > state.maxImageBytes) {
      problems.push(`${name} is larger than ${megabytes} MB, the most one image may be.`);
    } else if (state.pending.length >= state.maxImages) {
      problems.push(`You can send up to ${state.maxImages} image${state.maxImages === 1 ? "" : "s"} with one message.`);
      break;
    } else {
      readImage(file, name);
    }
  }
  showNotice(problems.join(" "));
  showTray();
  updateButtons();
}

function readImage(file, name) {
  const image = { name, type: file.type, data: null };
  state.pending.push(image);
  const reader = new FileReader();
  reader.addEventListener("load", () => {
    image.data = reader.result;
    showTray();
    updateButtons();
  });
  reader.addEventListener("error", () => {
    removeImage(image);
    showNotice(`${name} could not be read.`);
  });
  reader.readAsDataURL(file);
}

function removeImage(image) {
  state.pending = state.pending.filter((pending) => pending !== image);
  showTray();
  updateButtons();
}

// The images waiting to be sent, each with a button that takes it out.
export function showTray() {
  view.tray.replaceChildren(...state.pending.map((image) => {
    const remove = el("button", "", "×");
    remove.type = "button";
    remove.title = `Remove ${image.name}`;
    remove.setAttribute("aria-label", `Remove ${image.name}`);
    remove.addEventListener("click", () => { removeImage(image); view.input.focus(); });
    return el("div", image.data ? "thumb" : "thumb loading", picture(image), remove);
  }));
}

export function picture(image) {
  const img = el("img");
  img.alt = image.name;
  img.title = image.name;
  if (image.data) img.src = image.data;  // a data: URL read from the person's own file
  return img;
}
