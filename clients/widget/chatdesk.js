/*! Chatdesk visitor widget; options (data-*) and API in the README. No build step: comments
 * are served too, keep them short. */
(() => {
  'use strict';
  if (window.Chatdesk) return;
  const script = document.currentScript || document.querySelector('script[src*="chatdesk.js"]');
  if (!script) return;
  const BASE = new URL('..', script.src);
  const ENDPOINT = new URL('graphql', BASE).href;
  const KEY = 'chatdesk:' + BASE.href;
  const opt = script.dataset;

  // Languages but English are in i18n/ (all would not fit the size budget).
  const LOC = [opt.locale, document.documentElement.lang, ...navigator.languages || []].find(l => l && /^(en|de|fr|es|pt)\b/i.test(l)) || 'en';
  const LANG = LOC.slice(0, 2).toLowerCase();
  let T = {};
  const t = (s, ...a) => (T[s] || s).replace(/\{(\d)\}/g, (_, i) => a[i]);
  let intl = LOC.replace('_', '-');
  try { Intl.getCanonicalLocales(intl); } catch { intl = LANG; }

  const MSG = 'id sender body createdAt readAt clientMessageId author{displayName initials} attachments{id name mimeType sizeBytes width height url thumbnailUrl purged}';
  const Q_POLICY = 'query{uploadPolicy{maxFileBytes maxFiles allowedExtensions allowedMimeTypes maxMessageChars virusScanned} widgetSettings{available awayText replyTime team{displayName initials}}}';
  const CHAT = 'id status unreadCount visitor{name email}';
  const STATUS = 'id createdAt to author{displayName}';
  const Q_MSGS = `query($id:UUID!,$first:Int,$after:String,$last:Int,$before:String){chat(id:$id){${CHAT} messages(first:$first,after:$after,last:$last,before:$before){edges{node{${MSG}}} pageInfo{hasPreviousPage startCursor endCursor}} recent:messages(last:20){edges{node{id clientMessageId readAt}}} statusEvents{${STATUS}}}}`;
  const M_START = 'mutation($input:StartChatInput){startChat(input:$input){chatToken chat{id status}}}';
  const M_SEND = `mutation($chatId:UUID!,$body:String,$attachments:[Upload!],$clientMessageId:String){sendMessage(chatId:$chatId,body:$body,attachments:$attachments,clientMessageId:$clientMessageId){${MSG}}}`;
  const M_READ = 'mutation($chatId:UUID!){markChatRead(chatId:$chatId){id unreadCount}}';
  const M_VISITOR = 'mutation($chatId:UUID!,$input:VisitorInput!){updateVisitor(chatId:$chatId,input:$input){id visitor{name email}}}';
  const M_RESUME = 'mutation($code:String!){resumeChat(code:$code){chatToken chat{id status}}}';
  const M_TYPING = 'mutation($chatId:UUID!,$typing:Boolean!){setTyping(chatId:$chatId,typing:$typing)}';
  const M_DELETE = 'mutation($id:UUID!){deleteChat(id:$id)}';
  const S_EVENTS = `subscription($chatId:UUID!){chatEvents(chatId:$chatId){kind typing sender chat{${CHAT}} message{${MSG}} statusEvent{${STATUS}}}}`;

  const load = () => {
    try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch { return {}; }
  };
  const save = () => {
    try { rec.token || rec.draft || (rec.out || []).length ? localStorage.setItem(KEY, JSON.stringify(rec)) : localStorage.removeItem(KEY); } catch { }
  };
  let rec = load();

  const fail = (message, code) => Object.assign(new Error(message), { code });
  const hex = a => Array.from(a, b => b.toString(16).padStart(2, '0')).join('');
  const hashes = {};
  async function gql(query, variables, files, onProgress) {
    let extensions;
    try { extensions = !files && { persistedQuery: { version: 1, sha256Hash: hashes[query] ||= hex(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(query)))) } }; } catch { }
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
      let body = JSON.stringify(payload);
      if (files) {
        const form = new FormData();
        form.append('operations', body);
        form.append('map', JSON.stringify(Object.fromEntries(files.map((_, i) => [i, ['variables.attachments.' + i]]))));
        files.forEach((f, i) => form.append(i, f, f.name));
        xhr.upload.onprogress = e => e.lengthComputable && onProgress(e.loaded / e.total);
        body = form;
      } else {
        xhr.setRequestHeader('Content-Type', 'application/json');
        xhr.timeout = 30000;
      }
      xhr.onload = () => {
        let res = null;
        try { res = JSON.parse(xhr.responseText); } catch { }
        const err = res && res.errors && res.errors[0];
        if (err) reject(fail(err.message, (err.extensions || {}).code));
        else if (res && res.data) resolve(res.data);
        else reject(xhr.status === 413 ? fail(t('Files may be up to {0}.', size(policy.maxFileBytes)), 'FILE_TOO_LARGE') : fail(t('Could not reach the chat server.'), 'HTTP'));
      };
      xhr.onerror = xhr.ontimeout = () => reject(fail(t('Could not reach the chat server.'), 'NETWORK'));
      xhr.send(body);
    });
  }
  const quiet = p => p.catch(() => {});
  const gone = e => ['UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND'].includes(e.code);
  const sentence = s => (s = String(s || '').trim()) && s[0].toUpperCase() + s.slice(1) + (/[.!?…]$/.test(s) ? '' : '.');

  const h = (tag, attrs, ...kids) => {
    const el = document.createElement(tag);
    if (tag === 'button') el.type = 'button';
    for (const k in attrs) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 't') el.dataset.testid = 'chatdesk-' + v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    el.append(...kids.flat().filter(x => x != null && x !== false));
    return el;
  };
  const SVG = 'http://www.w3.org/2000/svg';
  const icon = d => {
    const s = document.createElementNS(SVG, 'svg');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    s.append(document.createElementNS(SVG, 'path'));
    s.firstChild.setAttribute('d', d);
    return s;
  };
  const ib = (label, d, id, onclick, more) => h('button', { class: 'ib', 'aria-label': label, t: id, onclick, ...more }, icon(d));
  const X = 'M6 6l12 12M18 6L6 18';
  const avatar = p => h('span', { class: 'av', title: p.displayName, 'aria-hidden': 'true' }, p.initials);
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
  const size = n => {
    const i = n < 1024 ? 0 : n < 1048576 ? 1 : 2;
    return new Intl.NumberFormat(intl, { style: 'unit', unit: ['byte', 'kilobyte', 'megabyte'][i], maximumFractionDigits: i > 1 ? 1 : 0 }).format(n / 1024 ** i);
  };
  const when = (iso, long) => new Date(iso).toLocaleString(intl, long || new Date(iso).toDateString() !== new Date().toDateString() ? { dateStyle: 'medium', timeStyle: 'short' } : { timeStyle: 'short' });
  const sheet = css => { const s = new CSSStyleSheet(); s.replaceSync(css); return s; };

  const CSS = `
:host{all:initial}
*{box-sizing:border-box}
[hidden]{display:none!important}
.w{--a:var(--cd-accent,#2563eb);--mut:#59636e;--ln:#d8dee4;font:14px/1.45 system-ui,sans-serif;color:#1f2328}
button{font:inherit;color:inherit;cursor:pointer;border:0;background:none;border-radius:8px}
svg{width:22px;height:22px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
:focus-visible{outline:2px solid var(--a);outline-offset:2px}
.hd :focus-visible,.lb :focus-visible{outline-color:#fff}
.launch{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;background:var(--a);color:#fff;box-shadow:0 4px 16px #0004;display:grid;place-items:center}
.launch svg{width:28px;height:28px}
.launch:focus-visible{outline:3px solid #fff;box-shadow:0 0 0 6px #1f2328}
.badge{position:absolute;top:-3px;right:-3px;min-width:20px;padding:0 5px;border-radius:10px;background:#cf222e;font:700 12px/20px system-ui,sans-serif;box-shadow:0 0 0 2px #fff}
.panel{position:fixed;bottom:88px;right:20px;z-index:2147483001;width:372px;height:min(620px,calc(100vh - 108px));display:flex;flex-direction:column;background:#fff;border-radius:14px;box-shadow:0 12px 48px #0005;overflow:hidden}
.left .launch,.left .panel{right:auto;left:20px}
.hd{display:flex;align-items:center;gap:4px;padding:12px 8px 12px 16px;background:var(--a);color:#fff}
h2{flex:1;margin:0;font-size:16px}
.ib{display:grid;place-items:center;width:36px;height:36px}
.ib:hover,.menu button:hover{background:#8882}
.bar{display:flex;gap:8px;align-items:center;padding:8px 12px;background:#fff8c5;font-size:13px}
.bar span{flex:1}
.danger{background:#ffebe9}
.btn.danger{background:#cf222e}
.menu{position:absolute;top:54px;right:8px;z-index:2;display:grid;min-width:220px;padding:4px;background:#fff;border:1px solid var(--ln);border-radius:10px;box-shadow:0 6px 24px #0003}
.menu button{text-align:left;padding:8px 10px}
.log,.msgs{display:flex;flex-direction:column;gap:10px}
.log{flex:1;overflow-y:auto;padding:12px 14px;background:#fafbfc}
.msg{max-width:82%;display:flex;flex-direction:column;align-items:flex-start}
.me{align-self:flex-end;align-items:flex-end}
.av{display:inline-grid;place-items:center;width:24px;height:24px;margin-right:4px;border-radius:50%;background:var(--a);color:#fff;font-size:10px;font-weight:600}
[role=img] .av{margin:0 0 0 -6px;box-shadow:0 0 0 2px var(--a);background:#fff3}
.who,.meta,.typing,.note,.fail{font-size:12px;color:var(--mut);margin:0 4px}
.bubble{padding:8px 12px;border-radius:14px;background:#eef1f4;white-space:pre-wrap;overflow-wrap:anywhere}
.me .bubble{background:var(--a);color:#fff}
.me .bubble a{color:inherit}
.meta{display:flex;flex-wrap:wrap;justify-content:flex-end;gap:6px;align-items:center}
.failed .meta,.fail{color:#cf222e}
.link{padding:0;color:var(--a);text-decoration:underline}
.files{display:grid;gap:4px;margin:4px 0;justify-items:inherit}
.card{display:grid;padding:8px 10px;border:1px solid var(--ln);border-radius:10px;color:inherit;text-decoration:none;max-width:260px}
b,.chip span{font-weight:500;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
small{color:var(--mut)}
.thumb{position:relative;color:#fff}
.thumb img{display:block;max-width:220px;max-height:220px;width:auto;height:auto;border-radius:10px;border:1px solid var(--ln)}
.thumb i{position:absolute;inset:auto 0 0;padding:2px 8px;background:#000a;font:12px/1.6 sans-serif;overflow:hidden;white-space:nowrap;opacity:0}
.thumb:hover i,.thumb:focus i{opacity:1}
progress{width:160px;height:6px;accent-color:var(--a)}
.typing{margin:0;padding:0 16px 6px;background:#fafbfc}
.note{align-self:center;text-align:center}
.older,.btn2{align-self:center;border:1px solid var(--ln);border-radius:14px;padding:4px 12px}
.ask{margin:0 12px 8px;padding:10px;border:1px solid var(--ln);border-radius:10px;display:grid;grid-template-columns:1fr 1fr;gap:6px;font-size:13px}
.ask p{margin:0;grid-column:1/3}
.ask input{font:inherit;padding:6px 8px;border:1px solid var(--ln);border-radius:6px;min-width:0}
.btn{padding:6px 12px;background:var(--a);color:#fff;border-radius:8px;text-decoration:none}
.err{margin:0 12px 8px;padding:6px 10px;border-radius:8px;background:#ffebe9;color:#a40e26;font-size:13px}
.tray{display:flex;flex-wrap:wrap;gap:6px;padding:0 12px 6px}
.chip{display:flex;align-items:center;gap:4px;padding:2px 4px 2px 10px;border:1px solid var(--ln);border-radius:14px;font-size:12px}
.chip .ib{width:24px;height:24px}
.cmp{display:flex;align-items:flex-end;gap:4px;padding:8px;border-top:1px solid var(--ln)}
textarea{flex:1;font:inherit;resize:none;border:1px solid var(--ln);border-radius:10px;padding:8px 10px;max-height:120px;min-height:38px;outline-offset:0}
.send{color:var(--a)}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.drop{position:absolute;inset:0;display:grid;place-items:center;background:#fffe;border:3px dashed;color:var(--a);pointer-events:none}
.lb{position:absolute;inset:0;z-index:3;display:flex;flex-direction:column;background:#16191d;color:#fff}
.lb img{flex:1;min-height:0;width:100%;object-fit:contain;padding:12px}
.lb div{display:flex;align-items:center;gap:4px;padding:8px 8px 8px 14px}
.lb span{flex:1;display:grid}
.lb small{color:inherit}
@media (max-width:480px){.panel{inset:0;width:auto;height:auto;border-radius:0}.open .launch{display:none}textarea{font-size:16px}
.panel :is(button,input,textarea,.btn){min-width:44px;min-height:44px}.chip .ib{width:44px;height:44px}}`;

  let policy = { maxFileBytes: 1e7, maxFiles: 3, allowedExtensions: [], allowedMimeTypes: [], maxMessageChars: 5000 };
  const msgs = new Map();
  const els = new Map();
  const hooks = {};
  let typingSent = 0;
  let cursor, older, returnFocus, starting, ws, wsTimer, typingTimer, typingStop, reading, readAgain, errTimer, outSaved, title, audio, details, deleted, ui, wantOpen, policyLoad, known, isOpen, wsUp;
  let status = 'OPEN';
  let unread = 0;
  let tray = [];
  let wsRetry = 1000;
  let stuck = true; // set by scrolling: loading images grow the thread
  const emit = (name, data) => (hooks[name] || []).forEach(fn => { try { fn(data); } catch (e) { console.error(e); } });
  const keyOf = m => m.clientMessageId ? 'c:' + m.clientMessageId : 'i:' + m.id;
  const hasChat = () => !!(rec.token && rec.chatId);
  const focus = el => el.focus();

  function build() {
    const host = h('chatdesk-widget', { t: 'root' });
    const root = host.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [sheet(CSS)];
    const u = {};
    const confirm = (cls, id, q, label, action, back) => {
      const b = h('div', { class: 'bar ' + cls, hidden: true, t: id + '-bar' }, h('span', {}, q),
        h('button', { class: 'btn ' + cls, t: id + '-confirm', onclick: action }, label),
        h('button', { class: 'btn2', onclick: () => { b.hidden = true; focus(u[back]); } }, t('Cancel')));
      return b;
    };
    const ask = b => { b.hidden = false; focus(b.querySelector('.btn')); };
    const item = (id, label, onclick, cls) => h('button', { role: 'menuitem', t: id, class: cls, onclick: () => { toggleMenu(false); onclick(); } }, label);
    u.badge = h('span', { class: 'badge', t: 'badge', 'aria-hidden': 'true', hidden: true });
    u.launch = h('button', { class: 'launch', t: 'launcher', 'aria-label': t('Open chat'), 'aria-expanded': 'false', 'aria-controls': 'cd-panel', onclick: () => isOpen ? close() : open() }, icon('M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-5A8 8 0 1 1 21 12z'), u.badge);
    u.older = h('button', { class: 'older', hidden: true, t: 'older', onclick: () => sync(true) }, t('Earlier messages'));
    u.greeting = h('div', { class: 'msg', t: 'greeting' }, h('div', { class: 'bubble' }, opt.greeting || t('Hi! How can we help?')));
    u.list = h('div', { class: 'msgs', role: 'list' });
    u.deleted = h('p', { class: 'note', hidden: true, t: 'deleted-note' }, t('The conversation was deleted.'));
    u.closed = h('p', { class: 'note', hidden: true, t: 'closed-note' }, t('This chat was closed. Write to reopen it.'));
    u.log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': t('Conversation'), t: 'thread', tabindex: '0', onscroll: () => { stuck = u.log.scrollHeight - u.log.scrollTop - u.log.clientHeight < 80; } }, u.older, u.greeting, u.list, u.closed, u.deleted);
    u.typing = h('div', { class: 'typing', hidden: true, t: 'typing', 'aria-live': 'polite' }, t('Support is typing…'));
    u.err = h('p', { class: 'err', role: 'alert', hidden: true, t: 'error' });
    u.ask = buildAsk();
    u.avail = h('p', { class: 'note', hidden: true, t: 'availability' });
    u.tray = h('div', { class: 'tray', hidden: true, t: 'tray' });
    u.file = h('input', { type: 'file', multiple: true, class: 'sr', tabindex: '-1', 'aria-hidden': 'true', t: 'file-input', onchange: () => { addFiles(u.file.files); u.file.value = ''; } });
    u.text = h('textarea', { rows: '1', 'aria-label': t('Message'), placeholder: t('Write a message…'), t: 'input', maxlength: policy.maxMessageChars, oninput: onInput, onkeydown: e => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); } }, onpaste: e => { const f = e.clipboardData && e.clipboardData.files; if (f && f.length) { e.preventDefault(); addFiles(f); } } });
    u.text.value = rec.draft || '';
    u.form = h('form', { class: 'cmp', onsubmit: e => { e.preventDefault(); send(); } }, u.text, u.file,
      ib(t('Attach files'), 'M21 11.5l-8.4 8.4a5 5 0 0 1-7.1-7.1l8.4-8.4a3.4 3.4 0 0 1 4.8 4.8l-8.4 8.4a1.7 1.7 0 0 1-2.4-2.4l7.7-7.7', 'attach', () => u.file.click()),
      ib(t('Send'), 'M4 12l16-8-6 16-2.5-6.5z', 'send', null, { class: 'ib send', type: 'submit' }));
    u.confirm = confirm('', 'new-chat', t('Start a new conversation? This one will be hidden.'), t('New conversation'), newChat, 'newBtn');
    u.newBtn = ib(t('New conversation'), 'M12 5v14M5 12h14', 'new-chat', () => ask(u.confirm), { hidden: true });
    u.delBar = confirm('danger', 'delete', t('Delete this conversation and its files for good?'), t('Delete'), deleteChat, 'menuBtn');
    u.menu = h('div', { class: 'menu', role: 'menu', hidden: true, t: 'menu', onkeydown: e => { if (e.key === 'Escape') { e.stopPropagation(); toggleMenu(false); focus(u.menuBtn); } } },
      item('transcript', t('Download transcript'), downloadTranscript),
      item('delete', t('Delete conversation'), () => { u.confirm.hidden = true; ask(u.delBar); }, 'danger'));
    u.menuBtn = ib(t('More'), 'M12 5.5v.01M12 12v.01M12 18.5v.01', 'menu-button', () => toggleMenu(u.menu.hidden), { 'aria-haspopup': 'menu', 'aria-expanded': 'false', hidden: true });
    u.drop = h('div', { class: 'drop', hidden: true }, t('Attach files'));
    u.lb = h('div', { class: 'lb', role: 'dialog', 'aria-modal': 'true', hidden: true, t: 'viewer' }, u.lbImg = h('img', { alt: '' }),
      h('div', {}, h('span', {}, u.lbName = h('b'), u.lbInfo = h('small')),
        u.lbGet = h('a', { class: 'btn', t: 'viewer-download', target: '_blank', rel: 'noopener' }, t('Download')),
        ib(t('Previous image'), 'M15 6l-6 6 6 6', 'viewer-prev', () => show(-1)),
        ib(t('Next image'), 'M9 6l6 6-6 6', 'viewer-next', () => show(1)),
        u.lbClose = ib(t('Close'), X, 'viewer-close', shut)));
    u.panel = h('div', { class: 'panel', id: 'cd-panel', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'cd-title', hidden: true, t: 'panel', onkeydown: onPanelKey },
      h('div', { class: 'hd' }, h('h2', { id: 'cd-title' }, opt.title || t('Chat with us')), u.team = h('span', { role: 'img', hidden: true, t: 'team' }), u.newBtn, u.menuBtn, ib(t('Close chat'), X, 'close', close)),
      u.avail, u.menu, u.confirm, u.delBar, u.log, u.typing, u.ask, u.err, u.tray, u.form, u.drop, u.lb);
    let depth = 0;
    const files = e => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
    const on = (k, f) => u.panel.addEventListener(k, e => files(e) && f(e));
    on('dragenter', () => { depth++; u.drop.hidden = false; });
    on('dragleave', () => { if (!--depth) u.drop.hidden = true; });
    on('dragover', e => e.preventDefault());
    on('drop', e => { e.preventDefault(); depth = 0; u.drop.hidden = true; addFiles(e.dataTransfer.files); });
    u.wrap = h('div', { class: 'w' + (opt.position === 'left' ? ' left' : ''), lang: LANG }, u.panel, u.launch);
    if (opt.accent) u.wrap.style.setProperty('--cd-accent', opt.accent);
    root.append(u.wrap);
    u.root = root;
    document.body.append(host);
    return u;
  }

  function buildAsk() {
    const input = (type, k, label, max) => h('input', { type, autocomplete: k, 'aria-label': label, placeholder: label, maxlength: max, t: k });
    const name = input('text', 'name', t('Name'), 200);
    const email = input('email', 'email', t('Email'), 320);
    const done = () => { rec.asked = true; save(); ui.ask.hidden = true; focus(ui.text); };
    return h('form', { class: 'ask', hidden: true, t: 'details', onsubmit: async e => {
      e.preventDefault();
      const input = {};
      if (name.value.trim()) input.name = name.value.trim();
      if (email.value.trim()) input.email = email.value.trim();
      if (!input.name && !input.email) return done();
      if (!hasChat()) { details = input; return done(); }
      try {
        await gql(M_VISITOR, { chatId: rec.chatId, input });
        known = true;
        done();
      } catch (err) { showError(err.message); }
    } },
    h('p', {}, t('So we can reply if you leave (optional):')), name, email,
    h('button', { class: 'btn2', t: 'details-skip', onclick: done }, t('No thanks')),
    h('button', { class: 'btn', type: 'submit', t: 'details-save' }, t('Save')));
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
    returnFocus = active && active !== document.body && active.shadowRoot !== ui.root ? active : ui.launch;
    ui.panel.hidden = false;
    ui.wrap.classList.add('open');
    ui.launch.setAttribute('aria-expanded', 'true');
    ui.launch.setAttribute('aria-label', t('Close chat'));
    if (opt.sound === 'on' && !audio) try { audio = new AudioContext(); } catch { }
    loadPolicy();
    badge();
    scrollDown();
    focus(ui.text);
    markRead();
    emit('open');
  }

  function close() {
    if (!ui || !isOpen) return;
    isOpen = false;
    shut();
    ui.panel.hidden = ui.confirm.hidden = true;
    ui.wrap.classList.remove('open');
    ui.launch.setAttribute('aria-expanded', 'false');
    badge();
    focus(returnFocus && returnFocus.isConnected ? returnFocus : ui.launch);
    emit('close');
  }

  function onPanelKey(e) {
    const viewing = !ui.lb.hidden;
    const k = e.key;
    if (k === 'Escape') { e.stopPropagation(); viewing ? shut() : close(); }
    else if (viewing && /^Arrow(Left|Right)$/.test(k)) { e.preventDefault(); show(k === 'ArrowLeft' ? -1 : 1); }
    else if (k === 'Tab') {
      const list = [...(viewing ? ui.lb : ui.panel).querySelectorAll('button,input,textarea,a[href],[tabindex="0"]')].filter(el => el.tabIndex >= 0 && !el.disabled && el.getClientRects().length);
      const cur = list.indexOf(ui.root.activeElement);
      const to = e.shiftKey ? (cur < 1 ? list.length - 1 : -1) : (cur < 0 || cur === list.length - 1 ? 0 : -1);
      if (to >= 0) { e.preventDefault(); focus(list[to]); }
    }
  }

  function badge() {
    const n = isOpen ? 0 : unread;
    ui.badge.textContent = n > 9 ? '9+' : n;
    ui.badge.hidden = !n;
    if (!isOpen) ui.launch.setAttribute('aria-label', n ? t('Open chat, {0} unread', n) : t('Open chat'));
    if (n) document.title = `(${n}) ${title ??= document.title}`;
    else if (title != null) { document.title = title; title = null; }
  }
  function setUnread(n) {
    if (n == null || n === unread) return;
    unread = n;
    badge();
    emit('unread', n);
  }
  function heard(m) {
    emit('message', m);
    if (!audio || isOpen && !document.hidden) return;
    const o = audio.createOscillator();
    const g = audio.createGain();
    const now = audio.currentTime;
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.08, now);
    g.gain.exponentialRampToValueAtTime(0.0001, now + 0.4);
    o.connect(g).connect(audio.destination);
    o.start();
    o.stop(now + 0.4);
  }

  const scrollDown = () => { ui.log.scrollTop = ui.log.scrollHeight; stuck = true; };

  function add(m) {
    if (!m) return;
    const prev = msgs.get(keyOf(m));
    if (prev && !prev.local && prev.readAt && !m.readAt) m.readAt = prev.readAt;
    m.t = Date.now();
    msgs.set(keyOf(m), m);
  }
  // Times to the microsecond, as the server keeps them: a reopening and the message that caused
  // it are often in the same millisecond.
  const micros = (iso) => Math.floor(Date.parse(iso) / 1000) * 1e6 + Number(((iso.match(/\.(\d+)/) || [])[1] || '').padEnd(6, '0').slice(0, 6));
  const sorted = () => [...msgs.values()].sort((a, b) => (!!a.local - !!b.local) || (micros(a.createdAt) - micros(b.createdAt)) || (!!a.to - !!b.to) || (a.id < b.id ? -1 : 1));

  function render(forceScroll) {
    if (!ui) return;
    const stick = forceScroll || stuck;
    // A redrawn Retry must not drop the focus to the page.
    const focused = ui.list.contains(ui.root.activeElement);
    const alive = new Set();
    let prev = null;
    for (const m of sorted()) {
      const k = keyOf(m);
      alive.add(k);
      const sig = JSON.stringify([m.body, m.readAt, m.state, m.error, m.id, (m.attachments || []).map(a => a.purged), (m.files || []).length]);
      let entry = els.get(k);
      if (!entry || entry.sig !== sig) {
        const el = renderMsg(m);
        if (entry) entry.el.replaceWith(el);
        els.set(k, entry = { sig, el });
      }
      const want = prev ? prev.nextSibling : ui.list.firstChild;
      if (want !== entry.el) ui.list.insertBefore(entry.el, want);
      prev = entry.el;
    }
    for (const [k, entry] of els) if (!alive.has(k)) { entry.el.remove(); els.delete(k); }
    if (focused && !ui.root.activeElement) focus(ui.text);
    ui.older.hidden = !older;
    ui.greeting.hidden = !!older;
    ui.closed.hidden = status !== 'CLOSED' || !msgs.size;
    ui.newBtn.hidden = !msgs.size;
    ui.menuBtn.hidden = !hasChat();
    if (!hasChat()) { toggleMenu(false); ui.delBar.hidden = true; }
    ui.deleted.hidden = !deleted || msgs.size > 0;
    if (stick) scrollDown();
    // Unsent text is kept (files cannot be) until the server has it.
    const out = sorted().filter(m => m.local && !m.final && m.body).map(m => ({ c: m.clientMessageId, b: m.body, at: m.createdAt }));
    const json = JSON.stringify(out);
    if (json !== outSaved) { outSaved = json; rec.out = out; save(); }
  }

  function renderMsg(m) {
    if (m.to) return h('p', { class: 'note', role: 'listitem', t: 'status-line' }, [t({ CLOSED: 'Chat closed', PENDING: 'Marked as pending' }[m.to] || 'Chat reopened'), m.author && m.author.displayName, when(m.createdAt)].filter(Boolean).join(' · '));
    const mine = m.sender === 'VISITOR';
    const state = m.local ? m.state : mine ? (m.readAt ? 'read' : 'sent') : 'received';
    const act = (label, id, onclick) => meta.append(h('button', { class: 'link', t: id, onclick }, label));
    const el = h('div', { class: 'msg' + (mine ? ' me' : '') + (state === 'failed' ? ' failed' : ''), role: 'listitem', t: 'message', 'data-sender': mine ? 'visitor' : 'admin', 'data-state': state, 'data-message-id': m.id, 'data-client-message-id': m.clientMessageId },
      !mine && h('div', { class: 'who' }, m.author ? [avatar(m.author), m.author.displayName] : t('Support')),
      m.body && h('div', { class: 'bubble' }, linkify(m.body)));
    const files = [...(m.attachments || []).map(a => card(a, m)), ...(m.files || []).map(f => h('div', { class: 'card', t: 'attachment' }, h('b', {}, f.name), h('small', {}, size(f.size))))];
    if (files.length) el.append(h('div', { class: 'files' }, files));
    if (state === 'sending' && m.files.length) el.append(m.bar = h('progress', { max: '1', value: m.progress || 0, t: 'progress', 'aria-label': t('Sending…') }));
    const meta = h('div', { class: 'meta' }, h('time', { datetime: m.createdAt, title: when(m.createdAt, 1) }, when(m.createdAt)));
    if (mine) meta.append(m.statusEl = h('span', { t: 'status', title: m.readAt && t('Read') + ' ' + when(m.readAt, 1) }, state === 'sending' && m.scanning ? t('Scanning…') : t({ sending: 'Sending…', sent: 'Sent', read: 'Read', failed: 'Not sent' }[state])));
    if (state === 'failed') {
      if (m.error) el.append(h('div', { class: 'fail', t: 'message-error' }, m.error));
      if (!m.final) act(t('Retry'), 'retry', () => deliver(m));
      else if (m.files.length) {
        if (m.body) act(t('Send without files'), 'send-text-only', () => { m.files = []; deliver(m); });
        act(t('Edit'), 'edit', () => {
          ui.text.value = m.body;
          tray = m.files;
          renderTray();
          msgs.delete(keyOf(m));
          render();
          onInput();
          focus(ui.text);
        });
      }
      act(t('Remove'), 'discard', () => { msgs.delete(keyOf(m)); render(); });
    }
    el.append(meta);
    return el;
  }

  function card(a, m) {
    const label = `${a.name}, ${size(a.sizeBytes)}`;
    if (a.purged || !a.url) return h('div', { class: 'card', t: 'attachment', 'data-purged': '' }, h('b', {}, a.name), h('small', {}, t('File expired')));
    const pdf = a.mimeType === 'application/pdf';
    const link = (cls, onclick, ...kids) => h('a', { class: cls, href: a.url, target: '_blank', rel: 'noopener', download: cls === 'card' && !pdf && a.name, t: 'attachment', onclick }, kids);
    if (!a.thumbnailUrl) return link('card', e => pdf ? tab(e, a) : fresh(e, a, m), h('b', {}, a.name), h('small', {}, pdf ? size(a.sizeBytes) : size(a.sizeBytes) + ' · ' + t('Download')));
    const img = h('img', { alt: label, width: a.width, height: a.height, loading: 'lazy', onload: () => stuck && scrollDown() });
    source(img, a, '/thumbnail');
    return link('thumb', e => { e.preventDefault(); view(a); }, img, h('i', { 'aria-hidden': 'true' }, label));
  }
  // Signed links expire: old ones are fetched with the token.
  function fresh(e, a, m) {
    if (Date.now() - m.t < 240000) return;
    e.preventDefault();
    fetchFile(a, '').then(blob => saveBlob(blob, a.name), () => showError(t('The download failed. Try again in a moment.')));
  }
  // The server sends PDFs as downloads: shown from a blob instead.
  function tab(e, a) {
    e.preventDefault();
    const w = window.open();
    fetchFile(a, '').then(b => { w.location = URL.createObjectURL(b); }, () => { w.close(); showError(t('The download failed. Try again in a moment.')); });
  }
  function source(img, a, suffix) {
    img.onerror = () => {
      img.onerror = null;
      fetchFile(a, suffix).then(b => { img.src = URL.createObjectURL(b); }, () => {});
    };
    img.src = suffix ? a.thumbnailUrl : a.url;
  }
  const fetchFile = (a, suffix) => fetch(new URL('api/chat/files/' + a.id + suffix, BASE), { headers: { Authorization: 'Bearer ' + rec.token } })
    .then(r => r.ok ? r.blob() : Promise.reject(r.status));
  function saveBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    h('a', { href: url, download: name }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  let pics = [];
  let pic = 0;
  let viewFrom = null;
  function view(a) {
    pics = sorted().flatMap(m => (m.attachments || []).filter(x => x.thumbnailUrl && x.url && !x.purged).map(x => [x, m]));
    pic = pics.findIndex(([x]) => x.id === a.id);
    viewFrom = ui.root.activeElement;
    ui.lb.hidden = false;
    show(0);
    focus(ui.lbClose);
  }
  function show(step) {
    pic = (pic + step + pics.length) % pics.length;
    const [a, m] = pics[pic];
    ui.lb.ariaLabel = ui.lbImg.alt = ui.lbName.textContent = ui.lbGet.download = a.name;
    source(ui.lbImg, a, '');
    ui.lbInfo.textContent = `${size(a.sizeBytes)} · ${pic + 1}/${pics.length}`;
    ui.lbGet.href = a.url;
    ui.lbGet.onclick = e => fresh(e, a, m);
  }
  function shut() {
    if (ui.lb.hidden) return;
    ui.lb.hidden = true;
    ui.lbImg.removeAttribute('src');
    focus(viewFrom && viewFrom.isConnected ? viewFrom : ui.text);
  }

  function applyChat(c) {
    if (!c) return;
    status = c.status || status;
    if (c.visitor) known = !!(c.visitor.name || c.visitor.email);
    if (known && ui) ui.ask.hidden = true;
    setUnread(c.unreadCount);
  }

  async function sync(back) {
    const id = rec.chatId;
    if (!hasChat() || back && !older) return;
    const v = back ? { id, last: 50, before: older } : cursor ? { id, first: 50, after: cursor } : { id, last: 50 };
    const keep = ui.log.scrollHeight - ui.log.scrollTop;
    try {
      const { chat } = await gql(Q_MSGS, v);
      if (id !== rec.chatId) return;
      if (!chat) throw fail('', 'NOT_FOUND');
      const page = chat.messages;
      for (const { node } of page.edges) {
        if (v.after && node.sender === 'ADMIN' && !msgs.has(keyOf(node))) heard(node);
        add(node);
      }
      chat.statusEvents.forEach(add);
      for (const { node } of chat.recent.edges) {
        const m = msgs.get(keyOf(node));
        if (m && !m.local) m.readAt = node.readAt;
      }
      if (!v.after) older = page.pageInfo.hasPreviousPage ? page.pageInfo.startCursor : null;
      if (back) {
        render();
        ui.log.scrollTop = ui.log.scrollHeight - keep;
        return;
      }
      cursor = page.pageInfo.endCursor || cursor;
      applyChat(chat);
      render(!v.after);
      markRead();
    } catch (e) {
      if (gone(e)) reset();
      else if (back) showError(e.message);
    }
  }

  function markRead() {
    if (!isOpen || !unread || !hasChat() || document.hidden) return;
    if (reading) { readAgain = true; return; }
    reading = true;
    gql(M_READ, { chatId: rec.chatId }).then(d => setUnread(d.markChatRead.unreadCount), () => {}).finally(() => {
      reading = false;
      if (readAgain) { readAgain = false; markRead(); }
    });
  }

  function connect() {
    clearTimeout(wsTimer);
    closeSocket();
    if (!hasChat()) return;
    const chatId = rec.chatId;
    const token = rec.token;
    let s;
    try { s = ws = new WebSocket(ENDPOINT.replace(/^http/, 'ws') + '/ws', 'graphql-transport-ws'); } catch { return; }
    const send = m => s.readyState === 1 && s.send(JSON.stringify(m));
    s.onopen = () => send({ type: 'connection_init', payload: { authorization: 'Bearer ' + token } });
    s.onmessage = e => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (m.type === 'connection_ack') {
        wsUp = true;
        wsRetry = 1000;
        send({ id: '1', type: 'subscribe', payload: { query: S_EVENTS, variables: { chatId } } });
        sync();
        flush();
      } else if (m.type === 'ping') send({ type: 'pong' });
      else if (m.type === 'next' && m.payload && m.payload.data) onEvent(m.payload.data.chatEvents);
      else if (m.type === 'next' || m.type === 'error' || m.type === 'complete') {
        wsRetry = 30000;
        s.close();
      }
    };
    s.onclose = () => {
      if (ws !== s) return;
      ws = null;
      wsUp = false;
      wsTimer = setTimeout(connect, wsRetry);
      wsRetry = Math.min(wsRetry * 2, 60000);
    };
  }
  function closeSocket() {
    if (ws) { const s = ws; ws = null; wsUp = false; try { s.close(); } catch { } }
  }
  setInterval(() => { if (!wsUp) sync(); flush(); }, 7000);
  setInterval(() => { if (wsUp) try { ws.send('{"type":"ping"}'); } catch { } }, 30000);
  addEventListener('online', () => flush());

  function onEvent(ev) {
    if (!ev) return;
    if (ev.kind === 'CHAT_DELETED') return forgetDeleted();
    applyChat(ev.chat);
    add(ev.statusEvent);
    const m = ev.message;
    if (ev.kind === 'MESSAGE_ADDED' && m) {
      const isNew = !msgs.has(keyOf(m));
      add(m);
      if (m.sender === 'ADMIN') {
        showTyping(false);
        if (isNew) heard(m);
        for (const x of msgs.values()) if (!x.local && x.sender === 'VISITOR' && !x.readAt && Date.parse(x.createdAt) <= Date.parse(m.createdAt)) x.readAt = m.createdAt;
        markRead();
      }
      render(m.sender === 'VISITOR');
    } else if (ev.kind === 'TYPING' && ev.sender === 'ADMIN') showTyping(ev.typing);
    else if (ev.kind === 'READ' && ev.sender !== 'VISITOR') sync();
    else render();
  }
  function showTyping(on) {
    clearTimeout(typingTimer);
    const stick = stuck;
    ui.typing.hidden = !on;
    if (on) typingTimer = setTimeout(() => { ui.typing.hidden = true; }, 8000);
    if (stick) scrollDown();
  }

  function onInput() {
    const box = ui.text;
    box.style.height = 'auto';
    box.style.height = Math.min(box.scrollHeight + 2, 120) + 'px';
    rec.draft = box.value;
    save();
    if (!hasChat() || !box.value) return;
    if (Date.now() - typingSent > 3000) {
      typingSent = Date.now();
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
    return policyLoad ||= gql(Q_POLICY).then(d => {
      policy = d.uploadPolicy;
      ui.file.accept = policy.allowedExtensions.map(x => '.' + x).concat(policy.allowedMimeTypes);
      ui.text.maxLength = policy.maxMessageChars;
      const w = d.widgetSettings;
      const say = w.available ? w.replyTime : w.awayText || t('We are away right now and reply soon.');
      ui.avail.textContent = say;
      ui.avail.hidden = !say;
      if (!w.available && !hasChat() && !known && !rec.asked) ui.ask.hidden = false;
      ui.team.replaceChildren(...w.team.slice(0, 3).map(avatar));
      ui.team.ariaLabel = w.team.map(p => p.displayName).join(', ');
      ui.team.hidden = !w.team.length;
    }, () => { policyLoad = null; });
  }

  async function addFiles(list) {
    const files = [...list];
    await loadPolicy();
    for (const f of files) {
      const ext = (f.name.match(/\.([^.]+)$/) || [])[1] || '';
      const exts = policy.allowedExtensions;
      const no = why => showError(`“${f.name}”: ${why}`);
      if (tray.length >= policy.maxFiles) { showError(t('Up to {0} files per message.', policy.maxFiles)); break; }
      if (exts.length && !exts.includes(ext.toLowerCase())) no(t('Allowed file types: {0}.', exts.join(', ')));
      else if (f.size > policy.maxFileBytes) no(t('Files may be up to {0}.', size(policy.maxFileBytes)));
      else if (!f.size) no(t('The file is empty.'));
      else tray.push(f);
    }
    renderTray();
  }
  function renderTray() {
    ui.tray.replaceChildren(...tray.map((f, i) => h('div', { class: 'chip', t: 'pending-file' }, h('span', {}, f.name), h('small', {}, size(f.size)),
      ib(t('Remove') + ': ' + f.name, X, null, () => { tray.splice(i, 1); renderTray(); focus(ui.text); }))));
    ui.tray.hidden = !tray.length;
  }

  const local = (cid, body, createdAt) => ({ local: true, id: cid, clientMessageId: cid, sender: 'VISITOR', body, files: [], attachments: [], createdAt });
  function send() {
    const body = ui.text.value.trim();
    if (!body && !tray.length) return;
    if (body.length > policy.maxMessageChars) return showError(t('Up to {0} characters per message.', policy.maxMessageChars));
    deleted = false;
    const m = local('w-' + hex(crypto.getRandomValues(new Uint8Array(12))), body, new Date().toISOString());
    m.files = tray;
    tray = [];
    renderTray();
    ui.text.value = '';
    onInput();
    stopTyping();
    msgs.set(keyOf(m), m);
    deliver(m);
  }
  // Resent on reconnect, online, every 7 s; the server keeps one per clientMessageId.
  function flush() {
    if (navigator.onLine !== false) for (const m of msgs.values()) if (m.auto && m.state === 'failed') deliver(m);
  }

  function ensureChat() {
    return hasChat() ? Promise.resolve() : starting ||= gql(M_START, { input: { sourcePage: location.href.split('#')[0], visitorName: details && details.name, visitorEmail: details && details.email } }).then(d => {
      rec = { ...rec, chatId: d.startChat.chat.id, token: d.startChat.chatToken };
      if (details) { known = true; details = null; }
      save();
      status = d.startChat.chat.status;
      connect();
      emit('start', { chatId: rec.chatId });
    }, e => { if (e.code === 'BAD_USER_INPUT') details = null; throw e; }).finally(() => { starting = null; });
  }

  async function deliver(m) {
    m.state = 'sending';
    m.error = null;
    m.final = m.auto = m.scanning = false;
    render(true);
    try {
      await ensureChat();
      const files = m.files.length ? m.files : null;
      const d = await gql(M_SEND, { chatId: rec.chatId, body: m.body || null, clientMessageId: m.clientMessageId, attachments: files && files.map(() => null) }, files, p => {
        m.bar.value = p;
        if (p >= 1 && policy.virusScanned && !m.scanning) {
          m.scanning = true;
          m.statusEl.textContent = t('Scanning…');
        }
      });
      msgs.delete(keyOf(m));
      add(d.sendMessage);
      render(true);
      if (!known && !rec.asked) ui.ask.hidden = false;
    } catch (e) {
      m.state = 'failed';
      m.final = ['UNSUPPORTED_FILE_TYPE', 'FILE_TOO_LARGE', 'TOO_MANY_FILES', 'MESSAGE_TOO_LONG', 'VIRUS_DETECTED'].includes(e.code);
      m.auto = e.code === 'NETWORK' || e.code === 'HTTP';
      m.error = m.auto ? t('Not sent yet: it goes when the connection is back.') : sentence(e.message);
      if (gone(e)) {
        reset(true);
        m.error = t('This chat has ended. Retry to start a new one.');
      }
      render();
    }
  }

  function toggleMenu(show) {
    ui.menu.hidden = !show;
    ui.menuBtn.setAttribute('aria-expanded', !!show);
    if (show) focus(ui.menu.firstChild);
  }
  function downloadTranscript() {
    fetch(new URL('api/chat/transcripts/' + rec.chatId, BASE), { headers: { Authorization: 'Bearer ' + rec.token } })
      .then(r => r.ok ? r.blob() : Promise.reject()).then(b => saveBlob(b, 'chat-transcript.html'), () => showError(t('The download failed. Try again in a moment.')));
  }
  async function deleteChat() {
    const btn = ui.delBar.querySelector('.btn');
    btn.disabled = true;
    try {
      await gql(M_DELETE, { id: rec.chatId });
      forgetDeleted();
    } catch (e) {
      if (gone(e)) forgetDeleted();
      else showError(sentence(e.message));
    }
    btn.disabled = false;
  }
  function forgetDeleted() {
    reset();
    deleted = true;
    ui.delBar.hidden = true;
    render(true);
    if (isOpen) focus(ui.text);
  }

  function reset(keepLocal) {
    clearTimeout(wsTimer);
    closeSocket();
    rec = { draft: rec.draft };
    save();
    cursor = older = null;
    status = 'OPEN';
    known = false;
    for (const [k, m] of msgs) if (!(keepLocal && m.local)) msgs.delete(k);
    setUnread(0);
    ui.ask.hidden = true;
    showTyping(false);
    render(true);
  }
  function newChat() {
    reset();
    ui.confirm.hidden = true;
    focus(ui.text);
  }

  addEventListener('storage', e => {
    if (e.key !== KEY || !ui) return;
    const next = load();
    if (next.chatId === rec.chatId) { rec = next; if (rec.asked) ui.ask.hidden = true; return; }
    reset(true);
    rec = next;
    if (hasChat()) { sync(); connect(); }
  });
  document.addEventListener('visibilitychange', markRead);

  function resume() {
    const m = /[#&]chatdesk-resume=([\w-]{1,100})/.exec(location.hash);
    if (!m) return false;
    history.replaceState(history.state, '', location.href.split('#')[0]);
    const old = rec;
    rec = {};
    gql(M_RESUME, { code: m[1] }).then(d => {
      reset();
      rec = { chatId: d.resumeChat.chat.id, token: d.resumeChat.chatToken, asked: true, draft: old.draft };
      save();
      status = d.resumeChat.chat.status;
    }, e => {
      rec = old;
      showError(e.code === 'BAD_USER_INPUT' ? t('This link was already used or has expired.') : sentence(e.message));
    }).finally(() => {
      if (hasChat()) { sync(); connect(); }
      open();
    });
    return true;
  }

  function init() {
    ui = build();
    if (opt.hideSelector) try { document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet(opt.hideSelector + '{display:none!important}')]; } catch { console.warn('Chatdesk: bad data-hide-selector'); }
    for (const o of rec.out || []) msgs.set('c:' + o.c, Object.assign(local(o.c, o.b, o.at), { state: 'failed', auto: true, error: t('Not sent yet: it goes when the connection is back.') }));
    render(true);
    badge();
    if (!resume() && hasChat()) { sync(); connect(); }
    flush();
    emit('ready');
    if (wantOpen) open();
  }

  window.Chatdesk = Object.freeze({
    open,
    close,
    on(name, fn) {
      (hooks[name] ||= []).push(fn);
      if (name === 'ready' && ui) fn();
      return () => { hooks[name] = hooks[name].filter(f => f !== fn); };
    },
  });
  const start = () => document.body ? init() : document.addEventListener('DOMContentLoaded', init);
  if (LANG === 'en') start();
  else {
    const s = h('script', { src: new URL(`i18n/${LANG}.js`, script.src).href });
    s.onload = s.onerror = () => { T = s.strings || T; start(); };
    document.head.append(s);
  }
})();
