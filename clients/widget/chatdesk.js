/*! Chatdesk visitor widget. Embed with
 *  <script src="https://chat.example.com/widget/chatdesk.js" defer></script>
 * Options (data-* on that tag): data-position="right|left", data-accent="#2563eb",
 * data-title, data-greeting, data-hide-selector=".go-top" (host elements the launcher replaces).
 * Global API: Chatdesk.open(), Chatdesk.close(), Chatdesk.on(event, fn) -> unsubscribe;
 * events: ready, open, close, start ({chatId}), message (a new message), unread (count).
 * Plain JS, no build step, no framework. Everything visible lives in a Shadow DOM. */
(() => {
  'use strict';
  if (window.Chatdesk) return;
  const script = document.currentScript || document.querySelector('script[src*="chatdesk.js"]');
  if (!script) return;
  // The widget is served at <base>widget/chatdesk.js; the API lives beside it.
  const BASE = new URL('..', script.src);
  const ENDPOINT = new URL('graphql', BASE).href;
  const WS_URL = ENDPOINT.replace(/^http/, 'ws') + '/ws';
  const KEY = 'chatdesk:' + BASE.href;
  const opt = script.dataset;
  const POLL_MS = 7000;
  const STALE_MS = 240000; // signed file URLs live minutes; older ones are fetched with the token

  // ---- GraphQL documents (the whole API surface the widget uses) ----
  const ATT = 'id name mimeType sizeBytes width height url thumbnailUrl purged';
  const MSG = `id chatId sender senderLabel body createdAt readAt clientMessageId attachments{${ATT}}`;
  const PAGE = `edges{cursor node{${MSG}}} pageInfo{hasPreviousPage startCursor endCursor}`;
  const Q_POLICY = 'query{uploadPolicy{maxFileBytes maxFiles allowedExtensions allowedMimeTypes maxMessageChars virusScanned} widgetSettings{available awayText replyTime emailReplies}}';
  const Q_CHAT = `query($id:UUID!){chat(id:$id){id status unreadCount visitor{name email} messages(last:50){${PAGE}}}}`;
  const Q_OLDER = `query($id:UUID!,$before:String){chat(id:$id){id messages(last:50,before:$before){${PAGE}}}}`;
  const Q_POLL = `query($id:UUID!,$after:String){chat(id:$id){id status unreadCount messages(first:50,after:$after){${PAGE}} recent:messages(last:20){edges{node{id clientMessageId readAt}}}}}`;
  const M_START = 'mutation($input:StartChatInput){startChat(input:$input){chatToken chat{id status}}}';
  const M_SEND = `mutation($chatId:UUID!,$body:String,$attachments:[Upload!],$clientMessageId:String){sendMessage(chatId:$chatId,body:$body,attachments:$attachments,clientMessageId:$clientMessageId){${MSG}}}`;
  const M_READ = 'mutation($chatId:UUID!){markChatRead(chatId:$chatId){id unreadCount}}';
  const M_VISITOR = 'mutation($chatId:UUID!,$input:VisitorInput!){updateVisitor(chatId:$chatId,input:$input){id visitor{name email}}}';
  const M_RESUME = 'mutation($code:String!){resumeChat(code:$code){chatToken chat{id status}}}';
  const M_TYPING = 'mutation($chatId:UUID!,$typing:Boolean!){setTyping(chatId:$chatId,typing:$typing)}';
  const M_DELETE = 'mutation($id:UUID!){deleteChat(id:$id)}';
  const S_EVENTS = `subscription($chatId:UUID!){chatEvents(chatId:$chatId){kind typing sender chat{id status unreadCount visitor{name email}} message{${MSG}}}}`;

  // ---- storage: {chatId, token, asked} per API base; survives reloads, shared by tabs ----
  let memory = null;
  const load = () => {
    try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch { return memory || {}; }
  };
  const save = () => {
    memory = rec;
    try { rec.token ? localStorage.setItem(KEY, JSON.stringify(rec)) : localStorage.removeItem(KEY); } catch { /* private mode */ }
  };
  let rec = load();

  // ---- transport: XMLHttpRequest for everything, since fetch has no upload progress ----
  class ApiError extends Error {
    constructor(message, code) { super(message); this.code = code; }
  }
  // Automatic persisted queries: the query's SHA-256 first, its text only when the server asks
  // (crypto.subtle exists on https pages and localhost; elsewhere the text goes every time).
  const hashes = new Map();
  const sha256 = async q => hashes.get(q) || hashes.set(q, [...new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(q)))]
    .map(b => b.toString(16).padStart(2, '0')).join('')).get(q);
  async function gql(query, variables, files, onProgress) {
    let extensions;
    try { extensions = !(files && files.length) && { persistedQuery: { version: 1, sha256Hash: await sha256(query) } }; } catch { /* no subtle crypto */ }
    if (!extensions) return request({ query, variables }, files, onProgress);
    try { return await request({ variables, extensions }); } catch (e) {
      if (e.code !== 'PERSISTED_QUERY_NOT_FOUND') throw e;
      return request({ query, variables, extensions });
    }
  }
  function request(payload, files, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', ENDPOINT);
      xhr.setRequestHeader('Apollo-Require-Preflight', 'true');
      if (rec.token) xhr.setRequestHeader('Authorization', 'Bearer ' + rec.token);
      let body;
      if (files && files.length) {
        // GraphQL multipart request spec: operations, map, then one part per file.
        body = new FormData();
        body.append('operations', JSON.stringify(payload));
        const map = {};
        files.forEach((_, i) => { map[i] = ['variables.attachments.' + i]; });
        body.append('map', JSON.stringify(map));
        files.forEach((f, i) => body.append(String(i), f, f.name));
        if (onProgress) xhr.upload.onprogress = e => e.lengthComputable && onProgress(e.loaded / e.total);
      } else {
        xhr.setRequestHeader('Content-Type', 'application/json');
        xhr.timeout = 30000;
        body = JSON.stringify(payload);
      }
      xhr.onload = () => {
        let res = null;
        try { res = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        const err = res && res.errors && res.errors[0];
        if (err) return reject(new ApiError(err.message, (err.extensions || {}).code));
        if (res && res.data) return resolve(res.data);
        if (xhr.status === 413) return reject(new ApiError('That file is too large.', 'FILE_TOO_LARGE'));
        reject(new ApiError('The chat server answered ' + xhr.status + '.', 'HTTP'));
      };
      xhr.onerror = xhr.ontimeout = () => reject(new ApiError('Could not reach the chat server.', 'NETWORK'));
      xhr.send(body);
    });
  }
  const quiet = p => p.catch(() => {});
  const gone = e => ['UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND'].includes(e.code);
  // Refusals that sending the same thing again cannot change: no retry, only remove.
  const FINAL = ['UNSUPPORTED_FILE_TYPE', 'FILE_TOO_LARGE', 'TOO_MANY_FILES', 'MESSAGE_TOO_LONG', 'VIRUS_DETECTED'];
  // The server's reasons are lower-case clauses; shown alone, they read as a sentence.
  const sentence = t => (t = String(t || '').trim()) && t[0].toUpperCase() + t.slice(1) + (/[.!?…]$/.test(t) ? '' : '.');

  // ---- small DOM helpers: text always goes in as text nodes ----
  const h = (tag, attrs, ...kids) => {
    const el = document.createElement(tag);
    for (const k in attrs) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    el.append(...kids.flat().filter(x => x != null && x !== false));
    return el;
  };
  const icon = d => {
    const NS = 'http://www.w3.org/2000/svg';
    const s = document.createElementNS(NS, 'svg');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', d);
    s.append(p);
    return s;
  };
  const I_CHAT = 'M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-5A8 8 0 1 1 21 12z';
  const I_CLOSE = 'M6 6l12 12M18 6L6 18';
  const I_CLIP = 'M21 11.5l-8.4 8.4a5 5 0 0 1-7.1-7.1l8.4-8.4a3.4 3.4 0 0 1 4.8 4.8l-8.4 8.4a1.7 1.7 0 0 1-2.4-2.4l7.7-7.7';
  const I_SEND = 'M4 12l16-8-6 16-2.5-6.5z';
  const I_NEW = 'M12 5v14M5 12h14';
  const I_MORE = 'M12 5.5v.01M12 12v.01M12 18.5v.01';
  // Visitor text may carry links: made clickable, still built from text nodes.
  const linkify = text => {
    const out = [];
    let last = 0;
    for (const m of text.matchAll(/\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g)) {
      out.push(text.slice(last, m.index), h('a', { href: m[0], target: '_blank', rel: 'noopener noreferrer nofollow' }, m[0]));
      last = m.index + m[0].length;
    }
    out.push(text.slice(last));
    return out;
  };
  const fmtSize = n => n < 1024 ? n + ' B' : n < 1048576 ? Math.round(n / 1024) + ' KB' : (n / 1048576).toFixed(1) + ' MB';
  const fmtTime = iso => {
    const d = new Date(iso);
    const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return d.toDateString() === new Date().toDateString() ? t : d.toLocaleDateString([], { day: 'numeric', month: 'short' }) + ', ' + t;
  };
  const newId = () => 'w-' + Array.from(crypto.getRandomValues(new Uint8Array(12)), b => b.toString(16).padStart(2, '0')).join('');

  // ---- styles (inside the shadow root only) ----
  const CSS = `
:host{all:initial}
*{box-sizing:border-box}
[hidden]{display:none!important}
.w{--a:var(--cd-accent,#2563eb);--fg:#1f2328;--mut:#59636e;--ln:#d8dee4;--bg:#fff;--them:#eef1f4;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg)}
button{font:inherit;color:inherit;cursor:pointer}
svg{width:22px;height:22px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
:focus-visible{outline:2px solid var(--a);outline-offset:2px}
.launch{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;border:0;background:var(--a);color:#fff;box-shadow:0 4px 16px rgba(0,0,0,.25);display:grid;place-items:center}
.launch svg{width:28px;height:28px}
.launch:hover{filter:brightness(1.1)}
.badge{position:absolute;top:-3px;right:-3px;min-width:20px;height:20px;padding:0 5px;border-radius:10px;background:#cf222e;color:#fff;font:700 12px/20px system-ui,sans-serif;box-shadow:0 0 0 2px #fff}
.panel{position:fixed;bottom:88px;right:20px;z-index:2147483001;width:372px;height:min(620px,calc(100vh - 108px));display:flex;flex-direction:column;background:var(--bg);border-radius:14px;box-shadow:0 12px 48px rgba(0,0,0,.28);overflow:hidden}
.left .launch,.left .panel{right:auto;left:20px}

.hd{display:flex;align-items:center;gap:4px;padding:12px 8px 12px 16px;background:var(--a);color:#fff}

.hd h2{flex:1;margin:0;font-size:16px;font-weight:600}
.ib{display:grid;place-items:center;width:36px;height:36px;border:0;border-radius:8px;background:none;color:inherit}
.ib:hover{background:rgba(127,127,127,.18)}

.hd :focus-visible{outline-color:#fff}
.bar{display:flex;gap:8px;align-items:center;padding:8px 12px;background:#fff8c5;border-bottom:1px solid var(--ln);font-size:13px}
.bar span{flex:1}
.bar.danger{background:#ffebe9}
.btn.danger{background:#cf222e}
.ib svg{stroke-linecap:round}
.menu{position:absolute;top:54px;right:8px;z-index:2;display:flex;flex-direction:column;min-width:220px;padding:4px;background:#fff;color:var(--fg);border:1px solid var(--ln);border-radius:10px;box-shadow:0 6px 24px rgba(0,0,0,.18)}
.menu button{border:0;background:none;text-align:left;padding:8px 10px;border-radius:6px;font:inherit;color:inherit}
.menu button:hover,.menu button:focus-visible{background:#f3f4f6}
.menu .danger{color:#cf222e}
.log,.msgs{display:flex;flex-direction:column;gap:10px}
.log{flex:1;overflow-y:auto;padding:12px 14px;background:#fafbfc}
.msg{max-width:82%;display:flex;flex-direction:column;align-items:flex-start}
.me{align-self:flex-end;align-items:flex-end}
.who{font-size:12px;color:var(--mut);margin:0 4px 2px}
.bubble{padding:8px 12px;border-radius:14px;background:var(--them);white-space:pre-wrap;overflow-wrap:anywhere}
.me .bubble{background:var(--a);color:#fff}
.me .bubble a{color:inherit}
.meta{font-size:11px;color:var(--mut);margin:2px 4px 0;display:flex;gap:6px;align-items:center}
.failed .meta,.fail{color:#cf222e}
.fail{font-size:12px;margin:2px 4px 0;text-align:right}
.link{border:0;background:none;padding:0;color:var(--a);text-decoration:underline;font-size:12px}
.files{display:flex;flex-direction:column;gap:4px;margin-top:4px;align-items:inherit}
.card{display:flex;gap:8px;align-items:center;padding:8px 10px;border:1px solid var(--ln);border-radius:10px;background:#fff;color:var(--fg);text-decoration:none;max-width:260px}
.card b{font-weight:500;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;display:block}
.card small{color:var(--mut)}
.card span{min-width:0}
.thumb img{display:block;max-width:220px;max-height:220px;width:auto;height:auto;border-radius:10px;border:1px solid var(--ln);background:#fff}
progress{width:160px;height:6px;margin-top:4px;accent-color:var(--a)}
.typing{padding:0 16px 6px;font-size:12px;color:var(--mut);background:#fafbfc}
.note{align-self:center;font-size:12px;color:var(--mut);text-align:center}
.older{align-self:center;border:1px solid var(--ln);background:#fff;border-radius:14px;padding:2px 12px;font-size:12px}
.ask{margin:0 12px 8px;padding:10px;border:1px solid var(--ln);border-radius:10px;background:#fff;display:grid;gap:6px;font-size:13px}
.ask p{margin:0}
.ask input{font:inherit;padding:6px 8px;border:1px solid var(--ln);border-radius:6px;width:100%;min-width:0}
.two{display:grid;grid-template-columns:1fr 1fr;gap:6px}
.row{display:flex;gap:8px;justify-content:flex-end}
.btn{border:0;border-radius:8px;padding:6px 12px;background:var(--a);color:#fff}
.btn2{border:1px solid var(--ln);border-radius:8px;padding:5px 11px;background:#fff}
.err{margin:0 12px 8px;padding:6px 10px;border-radius:8px;background:#ffebe9;color:#a40e26;font-size:13px}
.tray{display:flex;flex-wrap:wrap;gap:6px;padding:0 12px 6px}
.chip{display:flex;align-items:center;gap:4px;max-width:100%;padding:2px 4px 2px 10px;border:1px solid var(--ln);border-radius:14px;font-size:12px;background:#fff}
.chip span{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:200px}
.chip .ib{width:24px;height:24px}
.chip svg{width:14px;height:14px}
.cmp{display:flex;align-items:flex-end;gap:4px;padding:8px;border-top:1px solid var(--ln);background:#fff}
textarea{flex:1;font:inherit;resize:none;border:1px solid var(--ln);border-radius:10px;padding:8px 10px;max-height:120px;min-height:38px;outline-offset:0}
.send{color:var(--a)}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.drop{position:absolute;inset:0;display:grid;place-items:center;background:rgba(255,255,255,.9);border:3px dashed var(--a);border-radius:inherit;font-weight:600;color:var(--a);pointer-events:none}
@media (max-width:480px){.panel{inset:0;width:auto;height:auto;border-radius:0}.open .launch{display:none}textarea{font-size:16px}}
@media (prefers-reduced-motion:no-preference){.panel{animation:up .18s ease-out}@keyframes up{from{opacity:0;transform:translateY(12px)}}}
`;

  // ---- state ----
  let policy = { maxFileBytes: 10485760, maxFiles: 3, allowedExtensions: ['jpg', 'jpeg', 'png', 'webp', 'pdf', 'doc', 'docx', 'txt'], allowedMimeTypes: [], maxMessageChars: 5000 };
  let policyLoad = null;
  const msgs = new Map(); // key -> message (server or local)
  const els = new Map(); // key -> {sig, el}
  let cursor = null; // newest page's endCursor, for polling with `after`
  let older = null; // startCursor when there is an older page
  let status = 'OPEN';
  let unread = 0;
  let known = false; // name or email given
  let tray = []; // files waiting to be sent
  let isOpen = false;
  let returnFocus = null;
  let starting = null;
  let ws = null;
  let wsUp = false;
  let wsRetry = 1000;
  let wsTimer = 0;
  let pollTimer = 0;
  let typingTimer = 0;
  let typingSent = 0;
  let typingStop = 0;
  let reading = false;
  let readAgain = false;
  let errTimer = 0;
  const hooks = {};
  const emit = (name, data) => (hooks[name] || []).forEach(fn => { try { fn(data); } catch (e) { console.error(e); } });
  let ui = null;
  let wantOpen = false;
  let deleted = false; // the conversation was just deleted: say so until the next one starts

  const keyOf = m => m.clientMessageId ? 'c:' + m.clientMessageId : 'i:' + m.id;
  const hasChat = () => !!(rec.token && rec.chatId);

  // ---- UI ----
  function build() {
    const host = h('chatdesk-widget', { 'data-testid': 'chatdesk-root' });
    const root = host.attachShadow({ mode: 'open' });
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet]; // not subject to the host page's style-src
    } catch {
      root.append(h('style', {}, CSS));
    }
    const title = opt.title || 'Chat with us';
    const u = {};
    u.badge = h('span', { class: 'badge', 'data-testid': 'chatdesk-badge', 'aria-hidden': 'true', hidden: true });
    u.launch = h('button', { class: 'launch', type: 'button', 'data-testid': 'chatdesk-launcher', 'aria-label': 'Open chat', 'aria-expanded': 'false', 'aria-controls': 'cd-panel', onclick: () => isOpen ? close() : open() }, icon(I_CHAT), u.badge);
    u.older = h('button', { class: 'older', type: 'button', hidden: true, 'data-testid': 'chatdesk-older', onclick: loadOlder }, 'Earlier messages');
    u.greeting = h('div', { class: 'msg', 'data-testid': 'chatdesk-greeting' }, h('div', { class: 'bubble' }, opt.greeting || 'Hi! Ask us anything — we usually reply within a few minutes.'));
    u.list = h('div', { class: 'msgs', role: 'list' });
    u.deleted = h('p', { class: 'note', hidden: true, 'data-testid': 'chatdesk-deleted-note' }, 'The conversation was deleted.');
    u.closed = h('p', { class: 'note', hidden: true, 'data-testid': 'chatdesk-closed-note' }, 'This conversation was closed. Write to reopen it.');
    u.log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation', 'data-testid': 'chatdesk-thread', tabindex: '0', onscroll: () => { stuck = nearBottom(); } }, u.older, u.greeting, u.list, u.closed, u.deleted);
    u.typing = h('div', { class: 'typing', hidden: true, 'data-testid': 'chatdesk-typing', 'aria-live': 'polite' }, 'Support is typing…');
    u.err = h('p', { class: 'err', role: 'alert', hidden: true, 'data-testid': 'chatdesk-error' });
    u.ask = buildAsk();
    u.avail = h('p', { class: 'note', hidden: true, 'data-testid': 'chatdesk-availability' });
    u.tray = h('div', { class: 'tray', hidden: true, 'data-testid': 'chatdesk-tray' });
    u.file = h('input', { type: 'file', multiple: true, class: 'sr', tabindex: '-1', 'aria-hidden': 'true', 'data-testid': 'chatdesk-file-input', onchange: () => { addFiles(u.file.files); u.file.value = ''; } });
    u.text = h('textarea', { rows: '1', 'aria-label': 'Message', placeholder: 'Write a message…', 'data-testid': 'chatdesk-input', maxlength: policy.maxMessageChars, oninput: onInput, onkeydown: e => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); } }, onpaste: e => { const f = e.clipboardData && e.clipboardData.files; if (f && f.length) { e.preventDefault(); addFiles(f); } } });
    u.send = h('button', { class: 'ib send', type: 'submit', 'aria-label': 'Send message', 'data-testid': 'chatdesk-send' }, icon(I_SEND));
    u.attach = h('button', { class: 'ib', type: 'button', 'aria-label': 'Attach files', 'data-testid': 'chatdesk-attach', onclick: () => u.file.click() }, icon(I_CLIP));
    u.form = h('form', { class: 'cmp', onsubmit: e => { e.preventDefault(); send(); } }, u.attach, u.file, u.text, u.send);
    u.confirm = h('div', { class: 'bar', hidden: true, 'data-testid': 'chatdesk-new-chat-bar' },
      h('span', {}, 'Start a new conversation? This one will no longer be shown here.'),
      h('button', { class: 'btn', type: 'button', 'data-testid': 'chatdesk-new-chat-confirm', onclick: newChat }, 'Start new'),
      h('button', { class: 'btn2', type: 'button', onclick: () => { u.confirm.hidden = true; u.newBtn.focus(); } }, 'Cancel'));
    u.newBtn = h('button', { class: 'ib', type: 'button', 'aria-label': 'Start a new chat', title: 'Start a new chat', 'data-testid': 'chatdesk-new-chat', hidden: true, onclick: () => { u.confirm.hidden = false; u.confirm.querySelector('.btn').focus(); } }, icon(I_NEW));
    u.delBar = h('div', { class: 'bar danger', hidden: true, 'data-testid': 'chatdesk-delete-bar' },
      h('span', {}, 'Delete this conversation and its files for good? This cannot be undone.'),
      h('button', { class: 'btn danger', type: 'button', 'data-testid': 'chatdesk-delete-confirm', onclick: deleteChat }, 'Delete'),
      h('button', { class: 'btn2', type: 'button', onclick: () => { u.delBar.hidden = true; u.menuBtn.focus(); } }, 'Cancel'));
    u.menu = h('div', { class: 'menu', role: 'menu', hidden: true, 'data-testid': 'chatdesk-menu', onkeydown: e => { if (e.key === 'Escape') { e.stopPropagation(); toggleMenu(false); u.menuBtn.focus(); } } },
      h('button', { type: 'button', role: 'menuitem', 'data-testid': 'chatdesk-transcript', onclick: () => { toggleMenu(false); downloadTranscript(); } }, 'Download transcript'),
      h('button', { type: 'button', role: 'menuitem', class: 'danger', 'data-testid': 'chatdesk-delete', onclick: () => { toggleMenu(false); u.confirm.hidden = true; u.delBar.hidden = false; u.delBar.querySelector('.btn').focus(); } }, 'Delete this conversation'));
    u.menuBtn = h('button', { class: 'ib', type: 'button', 'aria-label': 'More', title: 'More', 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'data-testid': 'chatdesk-menu-button', hidden: true, onclick: () => toggleMenu(u.menu.hidden) }, icon(I_MORE));
    u.drop = h('div', { class: 'drop', hidden: true }, 'Drop files to attach');
    u.panel = h('div', { class: 'panel', id: 'cd-panel', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'cd-title', hidden: true, 'data-testid': 'chatdesk-panel', onkeydown: onPanelKey },
      h('div', { class: 'hd' }, h('h2', { id: 'cd-title' }, title), u.newBtn, u.menuBtn,
        h('button', { class: 'ib', type: 'button', 'aria-label': 'Close chat', 'data-testid': 'chatdesk-close', onclick: close }, icon(I_CLOSE))),
      u.avail, u.menu, u.confirm, u.delBar, u.log, u.typing, u.ask, u.err, u.tray, u.form, u.drop);
    let depth = 0;
    u.panel.addEventListener('dragenter', e => { if (isFileDrag(e)) { depth++; u.drop.hidden = false; } });
    u.panel.addEventListener('dragleave', () => { if (depth && !--depth) u.drop.hidden = true; });
    u.panel.addEventListener('dragover', e => { if (isFileDrag(e)) e.preventDefault(); });
    u.panel.addEventListener('drop', e => { if (!isFileDrag(e)) return; e.preventDefault(); depth = 0; u.drop.hidden = true; addFiles(e.dataTransfer.files); });
    u.wrap = h('div', { class: 'w' + (opt.position === 'left' ? ' left' : '') }, u.panel, u.launch);
    if (opt.accent) u.wrap.style.setProperty('--cd-accent', opt.accent);
    root.append(u.wrap);
    u.root = root;
    document.body.append(host);
    return u;
  }
  const isFileDrag = e => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');

  let askText, details = null;
  function buildAsk() {
    const name = h('input', { type: 'text', autocomplete: 'name', 'aria-label': 'Your name', placeholder: 'Name', maxlength: '200', 'data-testid': 'chatdesk-name' });
    const email = h('input', { type: 'email', autocomplete: 'email', 'aria-label': 'Your email', placeholder: 'Email', maxlength: '320', 'data-testid': 'chatdesk-email' });
    const done = () => { rec.asked = true; save(); ui.ask.hidden = true; ui.text.focus(); };
    return h('form', { class: 'ask', hidden: true, 'data-testid': 'chatdesk-details', onsubmit: async e => {
      e.preventDefault();
      const input = {};
      if (name.value.trim()) input.name = name.value.trim();
      if (email.value.trim()) input.email = email.value.trim();
      if (!input.name && !input.email) return done();
      if (!hasChat()) { details = input; return done(); } // sent with startChat
      try {
        await gql(M_VISITOR, { chatId: rec.chatId, input });
        known = true;
        done();
      } catch (err) { showError(err.message); }
    } },
    askText = h('p', {}, 'So we can reach you if you leave — optional:'), h('div', { class: 'two' }, name, email),
    h('div', { class: 'row' },
      h('button', { class: 'btn2', type: 'button', 'data-testid': 'chatdesk-details-skip', onclick: done }, 'No thanks'),
      h('button', { class: 'btn', type: 'submit', 'data-testid': 'chatdesk-details-save' }, 'Save')));
  }

  function showError(text) {
    ui.err.textContent = text;
    ui.err.hidden = false;
    clearTimeout(errTimer);
    errTimer = setTimeout(() => { ui.err.hidden = true; }, 8000);
  }

  function open() {
    if (!ui) { wantOpen = true; return; }
    if (isOpen) return;
    isOpen = true;
    const active = document.activeElement;
    returnFocus = active && active !== document.body && !(active.shadowRoot === ui.root) ? active : ui.launch;
    ui.panel.hidden = false;
    ui.wrap.classList.add('open');
    ui.launch.setAttribute('aria-expanded', 'true');
    ui.launch.setAttribute('aria-label', 'Close chat');
    loadPolicy();
    badge();
    scrollDown();
    ui.text.focus();
    markRead();
    emit('open');
  }

  function close() {
    if (!ui || !isOpen) return;
    isOpen = false;
    ui.panel.hidden = true;
    ui.confirm.hidden = true;
    ui.wrap.classList.remove('open');
    ui.launch.setAttribute('aria-expanded', 'false');
    badge();
    (returnFocus && returnFocus.isConnected ? returnFocus : ui.launch).focus();
    emit('close');
  }

  function onPanelKey(e) {
    if (e.key === 'Escape') { e.stopPropagation(); close(); return; }
    if (e.key !== 'Tab') return;
    // Keep focus inside the open panel.
    const list = Array.from(ui.panel.querySelectorAll('button,input,textarea,a[href],[tabindex="0"]'))
      .filter(el => el.tabIndex >= 0 && !el.disabled && el.getClientRects().length);
    if (!list.length) return;
    const first = list[0];
    const last = list[list.length - 1];
    const cur = ui.root.activeElement;
    if (e.shiftKey && (cur === first || !ui.panel.contains(cur))) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && (cur === last || !ui.panel.contains(cur))) { e.preventDefault(); first.focus(); }
  }

  function badge() {
    const n = isOpen ? 0 : unread;
    ui.badge.textContent = n > 9 ? '9+' : String(n);
    ui.badge.hidden = !n;
    if (!isOpen) ui.launch.setAttribute('aria-label', n ? `Open chat, ${n} unread message${n > 1 ? 's' : ''}` : 'Open chat');
  }
  function setUnread(n) {
    if (n == null || n === unread) return;
    unread = n;
    badge();
    emit('unread', n);
  }

  const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  // Whether the thread follows its newest message: set by scrolling, not measured at render
  // time, because an image that finishes loading grows the thread without any scroll.
  let stuck = true;
  const scrollDown = () => { ui.log.scrollTop = ui.log.scrollHeight; stuck = true; };

  // ---- messages ----
  function add(m, fetched) {
    if (!m) return;
    const k = keyOf(m);
    const prev = msgs.get(k);
    // A late copy of a message (an event racing a page load) must not undo its read mark.
    if (prev && !prev.local && prev.readAt && !m.readAt) m.readAt = prev.readAt;
    m.t = fetched || Date.now();
    msgs.set(k, m);
  }
  // Drafts last; then by time (parsed: the server may vary its fraction digits), then id.
  const order = (a, b) => (!!a.local - !!b.local) || (Date.parse(a.createdAt) - Date.parse(b.createdAt)) || (a.id < b.id ? -1 : 1);

  function render(forceScroll) {
    if (!ui) return;
    const stick = forceScroll || stuck;
    const list = Array.from(msgs.entries()).sort((a, b) => order(a[1], b[1]));
    const alive = new Set();
    let prevEl = null;
    for (const [k, m] of list) {
      alive.add(k);
      const sig = JSON.stringify([m.body, m.readAt, m.state, m.error, m.id, (m.attachments || []).map(a => a.purged), (m.files || []).length]);
      let entry = els.get(k);
      if (!entry || entry.sig !== sig) {
        const el = renderMsg(m);
        if (entry) entry.el.replaceWith(el);
        entry = { sig, el };
        els.set(k, entry);
      }
      const want = prevEl ? prevEl.nextSibling : ui.list.firstChild;
      if (want !== entry.el) ui.list.insertBefore(entry.el, want);
      prevEl = entry.el;
    }
    for (const [k, entry] of els) if (!alive.has(k)) { entry.el.remove(); els.delete(k); }
    ui.older.hidden = !older;
    ui.greeting.hidden = !!older;
    ui.closed.hidden = status !== 'CLOSED' || !msgs.size;
    ui.newBtn.hidden = !msgs.size;
    ui.menuBtn.hidden = !hasChat();
    if (!hasChat()) { toggleMenu(false); ui.delBar.hidden = true; }
    ui.deleted.hidden = !deleted || msgs.size > 0;
    if (stick) scrollDown();
  }

  function renderMsg(m) {
    const mine = m.sender === 'VISITOR';
    const state = m.local ? m.state : mine ? (m.readAt ? 'read' : 'sent') : 'received';
    const el = h('div', { class: 'msg' + (mine ? ' me' : '') + (state === 'failed' ? ' failed' : ''), role: 'listitem', 'data-testid': 'chatdesk-message', 'data-sender': mine ? 'visitor' : 'admin', 'data-state': state, 'data-message-id': m.id, 'data-client-message-id': m.clientMessageId });
    if (!mine) el.append(h('div', { class: 'who' }, m.senderLabel || 'Support'));
    if (m.body) el.append(h('div', { class: 'bubble' }, linkify(m.body)));
    const files = h('div', { class: 'files' });
    for (const a of m.attachments || []) files.append(card(a, m));
    for (const f of m.files || []) files.append(h('div', { class: 'card', 'data-testid': 'chatdesk-attachment' }, h('span', {}, h('b', {}, f.name), h('small', {}, fmtSize(f.size)))));
    if (files.firstChild) el.append(files);
    if (m.local && m.state === 'sending' && m.files.length) {
      m.bar = h('progress', { max: '1', value: m.progress || 0, 'data-testid': 'chatdesk-progress', 'aria-label': 'Upload progress' });
      el.append(m.bar);
    }
    const time = h('time', { datetime: m.createdAt, title: new Date(m.createdAt).toLocaleString() }, fmtTime(m.createdAt));
    const meta = h('div', { class: 'meta' }, time);
    if (mine) {
      const label = state === 'sending' && m.scanning ? 'Scanning…' : { sending: 'Sending…', sent: 'Sent', read: 'Read', failed: 'Not sent' }[state];
      const statusEl = h('span', { 'data-testid': 'chatdesk-status', title: m.readAt ? 'Read ' + new Date(m.readAt).toLocaleString() : null }, label);
      if (m.local) m.statusEl = statusEl;
      meta.append(statusEl);
    }
    if (state === 'failed') {
      if (m.error) el.append(h('div', { class: 'fail', 'data-testid': 'chatdesk-message-error' }, m.error));
      if (!m.final) meta.append(h('button', { class: 'link', type: 'button', 'data-testid': 'chatdesk-retry', onclick: () => deliver(m) }, 'Retry'));
      meta.append(
        h('button', { class: 'link', type: 'button', 'data-testid': 'chatdesk-discard', onclick: () => { msgs.delete(keyOf(m)); render(); } }, 'Remove'));
    }
    el.append(meta);
    return el;
  }

  function card(a, m) {
    const size = fmtSize(a.sizeBytes);
    if (a.purged || !a.url) {
      return h('div', { class: 'card', 'data-testid': 'chatdesk-attachment', 'data-purged': '' }, h('span', {}, h('b', {}, a.name), h('small', {}, 'File expired')));
    }
    const link = (cls, kids) => h('a', { class: cls, href: a.url, target: '_blank', rel: 'noopener', download: a.name, 'data-testid': 'chatdesk-attachment', onclick: e => {
      // An old signed link has expired: fetch the file with the chat token instead.
      if (Date.now() - m.t < STALE_MS) return;
      e.preventDefault();
      fetchFile(a, '').then(blob => {
        const url = URL.createObjectURL(blob);
        h('a', { href: url, download: a.name }).click();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      }, () => showError('That file could not be downloaded.'));
    } }, kids);
    if (a.thumbnailUrl) {
      const img = h('img', { src: a.thumbnailUrl, alt: `${a.name}, ${size}`, width: a.width, height: a.height, loading: 'lazy', onload: () => { if (stuck) scrollDown(); } });
      img.addEventListener('error', () => {
        fetchFile(a, '/thumbnail').then(b => { img.src = URL.createObjectURL(b); }, () => {});
      }, { once: true });
      return link('thumb', [img]);
    }
    return link('card', [h('span', {}, h('b', {}, a.name), h('small', {}, size + ' · Download'))]);
  }
  function fetchFile(a, suffix) {
    return fetch(new URL('api/chat/files/' + a.id + suffix, BASE), { headers: { Authorization: 'Bearer ' + rec.token } })
      .then(r => r.ok ? r.blob() : Promise.reject(r.status));
  }

  function mergePage(conn, fetched) {
    for (const e of conn.edges) add(e.node, fetched);
  }
  function applyChat(c) {
    if (!c) return;
    if (c.status) status = c.status;
    if (c.visitor) known = !!(c.visitor.name || c.visitor.email);
    if (known && ui) ui.ask.hidden = true;
    setUnread(c.unreadCount);
  }

  async function loadLatest() {
    if (!hasChat()) return;
    const id = rec.chatId;
    try {
      const d = await gql(Q_CHAT, { id });
      if (id !== rec.chatId) return;
      if (!d.chat) throw new ApiError('gone', 'NOT_FOUND');
      const conn = d.chat.messages;
      const first = !msgs.size;
      mergePage(conn, Date.now());
      cursor = conn.pageInfo.endCursor || cursor;
      if (first) older = conn.pageInfo.hasPreviousPage ? conn.pageInfo.startCursor : null;
      applyChat(d.chat);
      render(first);
      if (isOpen) markRead();
    } catch (e) {
      if (gone(e)) reset();
    }
  }

  async function loadOlder() {
    if (!older) return;
    const id = rec.chatId;
    const before = ui.log.scrollHeight - ui.log.scrollTop;
    try {
      const d = await gql(Q_OLDER, { id, before: older });
      if (id !== rec.chatId || !d.chat) return;
      const conn = d.chat.messages;
      mergePage(conn, Date.now());
      older = conn.pageInfo.hasPreviousPage ? conn.pageInfo.startCursor : null;
      render();
      ui.log.scrollTop = ui.log.scrollHeight - before;
    } catch (e) { showError(e.message); }
  }

  async function poll() {
    if (!hasChat()) return;
    if (!cursor) return loadLatest();
    const id = rec.chatId;
    try {
      const d = await gql(Q_POLL, { id, after: cursor });
      if (id !== rec.chatId) return;
      if (!d.chat) throw new ApiError('gone', 'NOT_FOUND');
      const conn = d.chat.messages;
      const before = msgs.size;
      for (const e of conn.edges) {
        if (!msgs.has(keyOf(e.node)) && e.node.sender === 'ADMIN') emit('message', e.node);
        add(e.node, Date.now());
      }
      for (const e of d.chat.recent.edges) {
        const m = msgs.get(keyOf(e.node));
        if (m && !m.local) m.readAt = e.node.readAt;
      }
      cursor = conn.pageInfo.endCursor || cursor;
      applyChat(d.chat);
      render();
      if (msgs.size > before && isOpen) markRead();
    } catch (e) {
      if (gone(e)) reset();
    }
  }

  // Whatever shows in the open panel is read; one request at a time, repeated if more arrived.
  function markRead() {
    if (!isOpen || !unread || !hasChat() || document.visibilityState === 'hidden') return;
    if (reading) { readAgain = true; return; }
    reading = true;
    gql(M_READ, { chatId: rec.chatId }).then(d => setUnread(d.markChatRead.unreadCount), () => {}).finally(() => {
      reading = false;
      if (readAgain) { readAgain = false; markRead(); }
    });
  }

  // ---- realtime: graphql-transport-ws, polling while the socket is down ----
  function connect() {
    // Polling keeps its rhythm across reconnect attempts (they come every 1, 2, 4… s at
    // first): restarting its timer on each would postpone every poll while the socket fails.
    clearTimeout(wsTimer);
    closeSocket();
    if (!hasChat()) return stopPoll();
    const chatId = rec.chatId;
    const token = rec.token;
    let s;
    try { s = ws = new WebSocket(WS_URL, 'graphql-transport-ws'); } catch { startPoll(); return; }
    const send = m => s.readyState === 1 && s.send(JSON.stringify(m));
    s.onopen = () => send({ type: 'connection_init', payload: { authorization: 'Bearer ' + token } });
    s.onmessage = e => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (m.type === 'connection_ack') {
        wsUp = true;
        wsRetry = 1000;
        send({ id: '1', type: 'subscribe', payload: { query: S_EVENTS, variables: { chatId } } });
        stopPoll();
        poll(); // whatever happened while the socket was away
      } else if (m.type === 'ping') send({ type: 'pong' });
      else if (m.type === 'next' && m.payload && m.payload.data) onEvent(m.payload.data.chatEvents);
      else if (m.type === 'next' || m.type === 'error' || m.type === 'complete') {
        // The subscription was refused or ended: poll, and try the socket again later.
        wsRetry = 30000;
        s.close();
      }
    };
    s.onclose = () => {
      if (ws !== s) return;
      ws = null;
      wsUp = false;
      startPoll();
      wsTimer = setTimeout(connect, wsRetry);
      wsRetry = Math.min(wsRetry * 2, 60000);
    };
    // Until the socket is confirmed, keep polling.
    startPoll();
  }
  function closeSocket() {
    if (ws) { const s = ws; ws = null; wsUp = false; try { s.close(); } catch { /* already closed */ } }
  }
  function disconnect() {
    clearTimeout(wsTimer);
    stopPoll();
    closeSocket();
  }
  function startPoll() { if (!pollTimer && hasChat()) pollTimer = setInterval(() => { if (!wsUp) poll(); }, POLL_MS); }
  function stopPoll() { clearInterval(pollTimer); pollTimer = 0; }
  setInterval(() => { if (ws && wsUp) try { ws.send('{"type":"ping"}'); } catch { /* closing */ } }, 30000);

  function onEvent(ev) {
    if (!ev) return;
    if (ev.kind === 'CHAT_DELETED') return forgetDeleted(); // an admin deleted it
    applyChat(ev.chat);
    const m = ev.message;
    if (ev.kind === 'MESSAGE_ADDED' && m) {
      const isNew = !msgs.has(keyOf(m));
      add(m);
      if (m.sender === 'ADMIN') {
        showTyping(false);
        if (isNew) emit('message', m);
        readUpTo(m.createdAt);
        markRead();
      }
      render(m.sender === 'VISITOR');
    } else if (ev.kind === 'TYPING' && ev.sender === 'ADMIN') {
      showTyping(ev.typing);
    } else if (ev.kind === 'READ' && ev.sender !== 'VISITOR') {
      loadLatest(); // readAt of our messages changed
    } else render();
  }
  // Answering reads: the server moves the team's read mark to the reply, so every earlier
  // visitor message now reads as seen, with that mark as its readAt.
  function readUpTo(at) {
    const t = Date.parse(at);
    for (const m of msgs.values()) if (!m.local && m.sender === 'VISITOR' && !m.readAt && Date.parse(m.createdAt) <= t) m.readAt = at;
  }
  function showTyping(on) {
    clearTimeout(typingTimer);
    const stick = stuck;
    ui.typing.hidden = !on;
    if (on) typingTimer = setTimeout(() => { ui.typing.hidden = true; }, 8000);
    if (stick) scrollDown();
  }

  // ---- composing and sending ----
  function onInput() {
    const t = ui.text;
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight + 2, 120) + 'px';
    if (!hasChat() || !t.value) return;
    const now = Date.now();
    if (now - typingSent > 3000) {
      typingSent = now;
      quiet(gql(M_TYPING, { chatId: rec.chatId, typing: true }));
    }
    clearTimeout(typingStop);
    typingStop = setTimeout(stopTyping, 4000);
  }
  function stopTyping() {
    clearTimeout(typingStop);
    if (typingSent && hasChat()) quiet(gql(M_TYPING, { chatId: rec.chatId, typing: false }));
    typingSent = 0;
  }

  function loadPolicy() {
    return policyLoad || (policyLoad = gql(Q_POLICY).then(d => {
      policy = d.uploadPolicy;
      const accept = policy.allowedExtensions.map(x => '.' + x).concat(policy.allowedMimeTypes);
      ui.file.setAttribute('accept', accept.join(','));
      ui.text.maxLength = policy.maxMessageChars;
      // Office hours: say who is around; when nobody is, ask for the email before the first
      // message (still optional), since the reply may come by email.
      const w = d.widgetSettings;
      const say = w.available ? w.replyTime : w.awayText || 'We are away right now and will reply as soon as we are back.';
      ui.avail.textContent = say || '';
      ui.avail.hidden = !say;
      if (w.emailReplies) askText.textContent = 'Leave your email and we send the reply there if you have gone — optional:';
      if (!w.available && !hasChat() && !known && !rec.asked) ui.ask.hidden = false;
    }, () => { policyLoad = null; }));
  }

  async function addFiles(list) {
    const files = Array.from(list || []); // copy now: the FileList empties once the event is over
    await loadPolicy();
    for (const f of files) {
      const ext = (f.name.match(/\.([^.]+)$/) || [])[1];
      const exts = policy.allowedExtensions;
      if (tray.length >= policy.maxFiles) { showError(`You can attach up to ${policy.maxFiles} files to one message.`); break; }
      if (exts.length && !exts.includes((ext || '').toLowerCase())) showError(`“${f.name}” can't be sent: allowed types are ${exts.join(', ')}.`);
      else if (f.size > policy.maxFileBytes) showError(`“${f.name}” is larger than the ${fmtSize(policy.maxFileBytes)} limit.`);
      else if (!f.size) showError(`“${f.name}” is empty.`);
      else tray.push(f);
    }
    renderTray();
  }
  function renderTray() {
    ui.tray.replaceChildren(...tray.map((f, i) => h('div', { class: 'chip', 'data-testid': 'chatdesk-pending-file' },
      h('span', {}, f.name), h('small', {}, fmtSize(f.size)),
      h('button', { class: 'ib', type: 'button', 'aria-label': 'Remove ' + f.name, onclick: () => { tray.splice(i, 1); renderTray(); ui.text.focus(); } }, icon(I_CLOSE)))));
    ui.tray.hidden = !tray.length;
  }

  function send() {
    const body = ui.text.value.trim();
    if (!body && !tray.length) return;
    if (body.length > policy.maxMessageChars) return showError(`A message may be at most ${policy.maxMessageChars} characters.`);
    const cid = newId();
    deleted = false;
    const m = { local: true, id: cid, clientMessageId: cid, sender: 'VISITOR', body, files: tray, attachments: [], createdAt: new Date().toISOString(), state: 'sending' };
    tray = [];
    renderTray();
    ui.text.value = '';
    onInput();
    stopTyping();
    msgs.set(keyOf(m), m);
    deliver(m);
  }

  function ensureChat() {
    if (hasChat()) return Promise.resolve();
    return starting || (starting = gql(M_START, { input: { sourcePage: location.href.split('#')[0], visitorName: details && details.name, visitorEmail: details && details.email } }).then(d => {
      rec = { chatId: d.startChat.chat.id, token: d.startChat.chatToken, asked: rec.asked };
      if (details) { known = true; details = null; }
      save();
      status = d.startChat.chat.status;
      connect();
      emit('start', { chatId: rec.chatId });
    }, e => { if (e.code === 'BAD_USER_INPUT') details = null; throw e; }).finally(() => { starting = null; }));
  }

  async function deliver(m) {
    m.state = 'sending';
    m.error = null;
    m.final = false;
    m.progress = 0;
    render(true);
    try {
      await ensureChat();
      const vars = { chatId: rec.chatId, body: m.body || null, clientMessageId: m.clientMessageId };
      if (m.files.length) vars.attachments = m.files.map(() => null);
      m.scanning = false;
      const d = await gql(M_SEND, vars, m.files, p => {
        if (m.bar) m.bar.value = p;
        // Every byte is up: the server is scanning the files before it stores them.
        if (p >= 1 && policy && policy.virusScanned && !m.scanning) {
          m.scanning = true;
          if (m.statusEl) m.statusEl.textContent = 'Scanning…';
        }
      });
      const s = d.sendMessage;
      if (keyOf(s) !== keyOf(m)) msgs.delete(keyOf(m));
      add(s); // replaces the draft: same clientMessageId
      render(true);
      if (!known && !rec.asked) ui.ask.hidden = false;
    } catch (e) {
      m.state = 'failed';
      m.error = sentence(e.message);
      m.final = FINAL.includes(e.code);
      if (gone(e)) {
        reset(true);
        m.error = 'This chat has ended. Retry to start a new one.';
      }
      render();
    }
  }

  // ---- the menu: transcript, deletion ----
  function toggleMenu(show) {
    if (!ui) return;
    ui.menu.hidden = !show;
    ui.menuBtn.setAttribute('aria-expanded', String(!!show));
    if (show) ui.menu.querySelector('button').focus();
  }
  // Fetched with the token (a link cannot carry it), then saved from a blob.
  async function downloadTranscript() {
    if (!hasChat()) return;
    try {
      const r = await fetch(new URL('api/chat/transcripts/' + rec.chatId, BASE), { headers: { Authorization: 'Bearer ' + rec.token } });
      if (!r.ok) throw new Error(r.status);
      const url = URL.createObjectURL(await r.blob());
      h('a', { href: url, download: 'chat-transcript.html' }).click();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch {
      showError('The transcript could not be downloaded. Try again in a moment.');
    }
  }
  async function deleteChat() {
    if (!hasChat()) return;
    const btn = ui.delBar.querySelector('.btn');
    btn.disabled = true;
    try {
      await gql(M_DELETE, { id: rec.chatId });
      forgetDeleted();
    } catch (e) {
      if (gone(e)) forgetDeleted(); // already gone
      else showError(sentence(e.message));
    } finally {
      btn.disabled = false;
    }
  }
  function forgetDeleted() {
    reset();
    deleted = true;
    if (!ui) return;
    ui.delBar.hidden = true;
    render(true);
    if (isOpen) ui.text.focus();
  }

  // Forget the chat: a new one starts with the next message.
  function reset(keepDrafts) {
    disconnect();
    rec = {};
    save();
    cursor = older = null;
    status = 'OPEN';
    known = false;
    for (const [k, m] of msgs) if (!(keepDrafts && m.local)) msgs.delete(k);
    setUnread(0);
    if (ui) { ui.ask.hidden = true; showTyping(false); render(true); }
  }
  function newChat() {
    reset();
    ui.confirm.hidden = true;
    ui.text.focus();
  }

  // Another tab started, switched or ended the chat: follow it.
  addEventListener('storage', e => {
    if (e.key !== KEY) return;
    const next = load();
    if (next.chatId === rec.chatId) { rec = next; if (rec.asked && ui) ui.ask.hidden = true; return; }
    reset(true);
    rec = next;
    memory = rec;
    if (hasChat()) { loadLatest(); connect(); }
  });
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible' && isOpen) markRead(); });

  function hideHostElements() {
    const sel = opt.hideSelector;
    if (!sel) return;
    try { document.querySelector(sel); } catch { return console.warn('Chatdesk: data-hide-selector is not a valid selector'); }
    // A document-level rule also catches buttons that appear later (on scroll); an adopted
    // sheet is not blocked by the host page's style-src.
    const rule = sel + '{display:none!important}';
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(rule);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    } catch {
      document.head.append(h('style', {}, rule));
    }
  }

  // A resume link from an email (#chatdesk-resume=<one-time code>): take that chat over, on
  // this device, with the fresh token the code is exchanged for.
  function resume() {
    const m = /[#&]chatdesk-resume=([\w-]{1,100})/.exec(location.hash);
    if (!m) return false;
    history.replaceState(history.state, '', location.href.split('#')[0]); // the code is spent
    const old = rec;
    rec = {};
    gql(M_RESUME, { code: m[1] }).then(d => {
      reset();
      rec = { chatId: d.resumeChat.chat.id, token: d.resumeChat.chatToken, asked: true };
      save();
      status = d.resumeChat.chat.status;
    }, e => {
      rec = old;
      showError(e.code === 'BAD_USER_INPUT' ? 'This link was already used or has expired.' : sentence(e.message));
    }).finally(() => {
      if (hasChat()) { loadLatest(); connect(); }
      open();
    });
    return true;
  }

  function init() {
    ui = build();
    hideHostElements();
    badge();
    if (!resume() && hasChat()) { loadLatest(); connect(); }
    emit('ready');
    if (wantOpen) open();
  }

  window.Chatdesk = Object.freeze({
    open,
    close,
    on(name, fn) {
      (hooks[name] = hooks[name] || []).push(fn);
      if (name === 'ready' && ui) fn(); // late listeners still hear it
      return () => { hooks[name] = hooks[name].filter(f => f !== fn); };
    },
  });
  if (document.body) init();
  else document.addEventListener('DOMContentLoaded', init);
})();
