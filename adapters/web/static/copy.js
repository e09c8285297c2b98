// Copy buttons, which work on plain http too.
import { el } from "./page.js";

// navigator.clipboard exists only on https and localhost: elsewhere (and when it refuses) the
// text is selected in a hidden textarea and copied the old way.
async function copyText(text) {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch { /* refused: the old way below */ }
  const focused = document.activeElement;
  const area = el("textarea", "offscreen");
  area.value = text;
  area.readOnly = true;
  area.setAttribute("aria-hidden", "true");
  document.body.append(area);
  area.select();
  let copied = false;
  try { copied = document.execCommand("copy"); } catch { copied = false; }
  area.remove();
  focused?.focus?.();
  return copied;
}

export function copyButton(text, title) {
  const button = el("button", "copy", "Copy");
  button.type = "button";
  button.title = title;
  button.addEventListener("click", async () => {
    button.textContent = (await copyText(text())) ? "Copied" : "Couldn't copy";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}
