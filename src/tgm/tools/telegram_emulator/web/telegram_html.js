// Telegram's HTML parse_mode, rendered the way Telegram shows it, WITHOUT ever handing bot text to the browser's
// HTML parser: the text is tokenized here (the same grammar as html_check.py) and only DOM nodes for the
// whitelisted tags are created; everything else becomes text nodes. Attributes are read only for <a href> (http,
// https and tg links) and the spoiler/expandable markers, and are set through the DOM, never as markup.
"use strict";

(function (global) {
  const TOKEN = /<(\/?)([A-Za-z][A-Za-z0-9-]*)([^<>]*)>|<|&(#\d+|#x[0-9A-Fa-f]+|lt|gt|amp|quot);|&/g;
  const ATTRIBUTE = /([A-Za-z][A-Za-z0-9-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  const NAMED = { lt: "<", gt: ">", amp: "&", quot: '"' };
  // Telegram tag → the element shown (aliases as in the Bot API docs).
  const TAGS = {
    b: "b", strong: "b", i: "i", em: "i", u: "u", ins: "u", s: "s", strike: "s", del: "s",
    code: "code", pre: "pre", a: "a", "tg-spoiler": "span", span: "span", blockquote: "blockquote",
    "tg-emoji": "span", "tg-time": "span",
  };
  const SAFE_HREF = /^(https?:\/\/|tg:\/\/)/i;

  function decodeEntity(name) {
    if (name in NAMED) return NAMED[name];
    const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
    // Out of range or a surrogate: shown as the replacement character, like a broken entity would be.
    if (!Number.isFinite(code) || code < 1 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
    return String.fromCodePoint(code);
  }

  function decodeEntities(value) {
    return value.replace(/&(#\d+|#x[0-9A-Fa-f]+|lt|gt|amp|quot);/g, (_, name) => decodeEntity(name));
  }

  function attributes(raw) {
    const found = {};
    for (const match of raw.matchAll(ATTRIBUTE)) {
      const value = match[2] ?? match[3] ?? match[4] ?? "";
      found[match[1].toLowerCase()] = decodeEntities(value);
    }
    return found;
  }

  /** A safe link target, or null: only http(s) and tg:// links are ever put into href. */
  function safeHref(value) {
    const href = (value || "").trim();
    if (!SAFE_HREF.test(href) || /[\u0000-\u001f\s]/.test(href)) return null;
    return href;
  }

  function openTag(name, rawAttributes) {
    const tag = TAGS[name];
    if (!tag) return null;
    const attrs = attributes(rawAttributes);
    // A link with an unsafe target is shown as text in a span: no <a> at all, so nothing can follow it.
    const href = name === "a" ? safeHref(attrs.href) : null;
    const element = document.createElement(name === "a" && !href ? "span" : tag);
    if (name === "tg-spoiler" || (name === "span" && (attrs.class || "").split(/\s+/).includes("tg-spoiler"))) {
      element.className = "tg-spoiler";
      element.title = "spoiler: click to show";
      element.addEventListener("click", () => element.classList.toggle("revealed"));
    } else if (name === "a") {
      if (href) {
        element.href = href;
        element.target = "_blank";
        element.rel = "noopener noreferrer";
        element.title = href;
      } else {
        element.className = "unsafe-link";
        element.title = "link not shown: only http, https and tg links are";
      }
    } else if (name === "blockquote" && "expandable" in attrs) {
      element.className = "expandable";
    } else if (name === "code" && /^language-[A-Za-z0-9_+-]{1,32}$/.test(attrs.class || "")) {
      element.dataset.language = attrs.class.slice("language-".length);
    }
    return element;
  }

  /** A DocumentFragment showing `text` as Telegram shows an HTML parse_mode message. */
  function renderHtml(text) {
    const root = document.createDocumentFragment();
    const stack = [{ name: null, node: root }];
    const addText = (value) => {
      if (value) stack[stack.length - 1].node.appendChild(document.createTextNode(value));
    };
    let position = 0;
    for (const match of text.matchAll(TOKEN)) {
      addText(text.slice(position, match.index));
      position = match.index + match[0].length;
      if (match[2]) {
        const name = match[2].toLowerCase();
        if (match[1] !== "/") {
          const element = openTag(name, match[3]);
          if (!element) {
            addText(match[0]); // an unknown tag: the server refuses those, but never render it as markup
            continue;
          }
          stack[stack.length - 1].node.appendChild(element);
          stack.push({ name, node: element });
        } else if (stack.length > 1 && stack[stack.length - 1].name === name) {
          stack.pop();
        } else {
          addText(match[0]);
        }
      } else if (match[4]) {
        addText(decodeEntity(match[4]));
      } else {
        addText(match[0]);
      }
    }
    addText(text.slice(position));
    return root;
  }

  /** A message's text as nodes: formatted for HTML parse_mode, plain text otherwise. */
  function renderText(text, parseMode) {
    if ((parseMode || "").toLowerCase() === "html") return renderHtml(text);
    const fragment = document.createDocumentFragment();
    fragment.appendChild(document.createTextNode(text));
    return fragment;
  }

  global.TelegramHtml = { renderHtml, renderText, safeHref };
})(window);
