// DOM helpers of the admin page's modules (admin.js, integrations.js).
//
// The widget (clients/widget/chatdesk.js) has its own copies of these on purpose: it is one
// classic script with no build step, loaded on other sites, and cannot import a module from
// here (see the README, "Admin page"). Keep the two behaving alike; the browser tests of both
// clients check what these produce (links, sizes).

/** An element with attributes (`on…` become listeners) and children; nothing goes in as HTML. */
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...kids.flat().filter((x) => x != null && x !== false));
  return el;
}

/** Text with http(s) links made clickable; built from text nodes and anchors only. */
export function linkify(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(/\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g)) {
    out.push(text.slice(last, m.index), h('a', { href: m[0], target: '_blank', rel: 'noopener noreferrer nofollow' }, m[0]));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

export const fmtSize = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${Math.round(n / 1024)} KB` : `${(n / 1048576).toFixed(1)} MB`);
