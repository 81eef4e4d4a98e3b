/**
 * Building DOM nodes without HTML strings.
 *
 * Everything the agent sends (names, URLs, log lines, error messages) becomes text nodes, never
 * markup. The page's Content-Security-Policy refuses inline style attributes, so there is no
 * way to pass a `style` here: looks come from classes in style.css.
 */

// The SVG namespace as the HTML parser gives it, rather than an address spelled out here.
const SVG_NS = document.createRange().createContextualFragment('<svg></svg>')
  .firstChild.namespaceURI;

let nextId = 0;

/** A document-unique id for pairing labels, hints and errors with their inputs. */
export function uid(prefix = 'c') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

function apply(el, props) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'style') throw new Error('styles belong in style.css');
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: `h('button', {type: 'button', onclick}, 'Start')`. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

/** An SVG element, with the same conventions as {@link h}. */
export function svg(tag, props = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, props);
  append(el, children);
  return el;
}

/** Set an attribute, or remove it when `value` is null/false. */
export function attr(el, name, value) {
  if (value === null || value === undefined || value === false) el.removeAttribute(name);
  else el.setAttribute(name, value === true ? '' : String(value));
}

/** Set text only when it changed, so assistive technology is not told twice. */
export function setText(el, text) {
  const value = text ?? '';
  if (el.textContent !== value) el.textContent = value;
}

/** The `data-testid` of the focused element inside `root`, to find it again after a render. */
export function focusKey(root) {
  const active = document.activeElement;
  if (!active || active === document.body || !root.contains(active)) return null;
  return active.dataset.testid || active.id || null;
}

/** Give focus back to the element that had it before `root` was rendered again. */
export function restoreFocus(root, key) {
  if (!key) return;
  const el =
    root.querySelector(`[data-testid="${CSS.escape(key)}"]`) ??
    root.querySelector(`#${CSS.escape(key)}`);
  if (el && document.activeElement !== el) el.focus({ preventScroll: true });
}
