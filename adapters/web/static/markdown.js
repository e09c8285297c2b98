// Markdown, built as elements: text reaches the page only as Text nodes, and a link is made
// only for an http(s) URL.
import { copyButton } from "./copy.js";
import { el } from "./page.js";

export function renderMarkdown(text, into) {
  into.replaceChildren();
  for (const block of splitCodeBlocks(text)) {
    if (block.code !== undefined) into.append(codeBlock(block.lang, block.code));
    else renderText(block.lines, into);
  }
}

// Fenced code blocks apart from the rest; a fence still open (the model is writing it) runs to the end.
function splitCodeBlocks(text) {
  const blocks = [];
  let lines = [];
  let fence = null;
  for (const line of text.split("\n")) {
    if (fence) {
      const close = line.match(/^\s*(`{3,}|~{3,})\s*$/);
      if (close && close[1][0] === fence.mark[0] && close[1].length >= fence.mark.length) {
        blocks.push({ lang: fence.lang, code: fence.lines.join("\n") });
        fence = null;
      } else fence.lines.push(line.replace(fence.indent, ""));
      continue;
    }
    const open = line.match(/^(\s*)(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/);  // indented too: inside a list item
    if (open) {
      blocks.push({ lines });
      lines = [];
      // The code's lines lose as much indentation as the fence has.
      fence = { indent: new RegExp(`^\\s{0,${open[1].length}}`), mark: open[2], lang: open[3], lines: [] };
    } else lines.push(line);
  }
  if (fence) blocks.push({ lang: fence.lang, code: fence.lines.join("\n") });
  blocks.push({ lines });
  return blocks.filter((block) => block.code !== undefined || block.lines.some((line) => line.trim()));
}

function codeBlock(lang, code) {
  const copy = copyButton(() => code, "Copy the code");
  const codeElement = el("code", "", code);
  if (lang) codeElement.dataset.lang = lang;
  return el("div", "codeblock", el("div", "bar", el("span", "", lang || "code"), copy), el("pre", "", codeElement));
}

// Paragraphs (a line break inside one is kept), bullet and numbered lists, headings.
function renderText(lines, into) {
  let paragraph = null;
  let list = null;
  for (const line of lines) {
    const heading = line.match(/^#{1,6}\s+(.*)$/);
    const item = line.match(/^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/);
    if (!line.trim()) {
      paragraph = list = null;
    } else if (heading) {
      paragraph = list = null;
      into.append(inline(heading[1], el("h4")));
    } else if (item) {
      const tag = item[1] ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== tag) {
        list = into.appendChild(el(tag));
        if (item[2]) list.start = Number(item[2]);
      }
      paragraph = null;
      list.append(inline(item[3], el("li")));
    } else if (list && /^\s{2,}\S/.test(line)) {
      list.lastElementChild.append(el("br"));
      inline(line.trim(), list.lastElementChild);
    } else {
      list = null;
      if (paragraph) paragraph.append(el("br"));
      else paragraph = into.appendChild(el("p", line.startsWith("⚠️") ? "warning" : ""));
      inline(line, paragraph);
    }
  }
}

const INLINE = new RegExp([
  /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source,                    // 1, 2: `code`
  /\*\*(?=\S)([\s\S]*?\S)\*\*/.source,                             // 3: **bold**
  /(?<!\w)__(?=\S)([\s\S]*?\S)__(?!\w)/.source,                    // 4: __bold__
  /\*(?![\s*])([^*\n]*?[^\s*])\*/.source,                          // 5: *italic*
  /(?<!\w)_(?![\s_])([^_\n]*?[^\s_])_(?!\w)/.source,               // 6: _italic_
  /\[([^\]\n]+)\]\((https?:\/\/[^\s()]+)\)/.source,               // 7, 8: [label](http…)
  /(https?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]])/.source,           // 9: a bare http(s) URL
  /\[(\[\d{1,2}\])\]\(<(https?:\/\/[^\s<>]+)>\)/.source,            // 10, 11: a cited mark [[n]](<http…>)
].join("|"), "g");

function inline(text, into) {
  let done = 0;
  for (const match of text.matchAll(INLINE)) {
    into.append(text.slice(done, match.index));
    const [, , code, bold, bold2, italic, italic2, label, target, url, mark, source] = match;
    if (code !== undefined) into.append(el("code", "", code.length > 2 && code.startsWith(" ") && code.endsWith(" ") ? code.slice(1, -1) : code));
    else if (bold !== undefined || bold2 !== undefined) into.append(inline(bold ?? bold2, el("strong")));
    else if (italic !== undefined || italic2 !== undefined) into.append(inline(italic ?? italic2, el("em")));
    else if (label !== undefined) into.append(link(target, label));
    else if (mark !== undefined) into.append(link(source, mark));  // made a source's button by citations.js
    else into.append(link(url, url));
    done = match.index + match[0].length;
  }
  into.append(text.slice(done));
  return into;
}

export function link(url, label) {
  let parsed;
  try { parsed = new URL(url); } catch { return document.createTextNode(label); }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return document.createTextNode(label);
  const anchor = el("a", "", label);
  anchor.href = parsed.href;
  anchor.target = "_blank";
  anchor.rel = "noopener noreferrer nofollow";
  return anchor;
}
