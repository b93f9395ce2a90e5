// The Chatdesk admin page: sign-in, the chat list, the chat view, live updates.
// Served at /admin666 under a strict CSP: no inline script or style, so every element is built
// with createElement, every visitor string goes in as text, and nothing sets a style attribute.

import { gql, gqlUpload, setToken, onAuthFailure, Live } from './api.js';
import { h, linkify, fmtSize } from './dom.js';

const SESSION_KEY = 'chatdesk.admin.session'; // sessionStorage: {token, expiresAt, admin}
const NOTIFY_KEY = 'chatdesk.admin.notify'; // localStorage: "1" | "0"
// localStorage: {chatId: text} of unsent replies, so a reload or a closed tab loses no words.
const DRAFTS_KEY = 'chatdesk.admin.drafts';
const POLL_MS = 7000;
const STALE_MS = 240000; // signed file URLs last minutes; older ones are fetched with the JWT
const PAGE_SIZE = 50;
const EXPIRED = 'Your session has expired. Please sign in again.';

// ---- GraphQL documents ----
const ATT = 'id name mimeType sizeBytes width height url thumbnailUrl purged';
const MSG = `id chatId sender senderLabel author{displayName initials} body createdAt readAt clientMessageId attachments{${ATT}}`;
// A status change, for the thread's system lines.
const SYS = 'id createdAt from to by author{displayName initials}';
const ROW = 'id status visitor{name email phone} sourcePage createdAt updatedAt lastMessageAt unreadCount lastMessage{id sender senderLabel body createdAt attachments{id name}}';
const PAGE = `edges{cursor node{${MSG}}} pageInfo{hasPreviousPage hasNextPage startCursor endCursor}`;
const Q_ME = 'query{me{id email name initials} uploadPolicy{maxFileBytes maxFiles allowedExtensions allowedMimeTypes maxMessageChars}}';
const Q_CHATS = `query($filter:ChatFilter,$first:Int,$after:String){chats(filter:$filter,first:$first,after:$after){totalCount edges{cursor node{${ROW}}} pageInfo{hasNextPage endCursor}}}`;
const Q_UNREAD = 'query{chats(filter:{unreadOnly:true},first:1){totalCount}}';
const Q_CHAT = `query($id:UUID!){chat(id:$id){${ROW} messages(last:50){${PAGE}} statusEvents(last:100){${SYS}}}}`;
const Q_OLDER = `query($id:UUID!,$before:String){chat(id:$id){id messages(last:50,before:$before){${PAGE}}}}`;
const Q_POLL_CHAT = `query($id:UUID!,$after:String){chat(id:$id){${ROW} messages(first:100,after:$after){${PAGE}} recent:messages(last:30){edges{node{id clientMessageId readAt}}} statusEvents(last:20){${SYS}}}}`;
const M_LOGIN = 'mutation($email:String!,$password:String!){login(email:$email,password:$password){token expiresAt admin{id email name initials}}}';
const M_SEND = `mutation($chatId:UUID!,$body:String,$attachments:[Upload!],$clientMessageId:String){sendMessage(chatId:$chatId,body:$body,attachments:$attachments,clientMessageId:$clientMessageId){${MSG}}}`;
const M_READ = `mutation($chatId:UUID!){markChatRead(chatId:$chatId){${ROW}}}`;
const M_DELETE = 'mutation($id:UUID!){deleteChat(id:$id)}';
const M_PROFILE = 'mutation($name:String!){updateMyProfile(displayName:$name){id email name initials}}';
const M_STATUS = `mutation($chatId:UUID!,$status:ChatStatus!){setChatStatus(chatId:$chatId,status:$status){${ROW}}}`;
const M_VISITOR = `mutation($chatId:UUID!,$input:VisitorInput!){updateVisitor(chatId:$chatId,input:$input){${ROW}}}`;
const M_TYPING = 'mutation($chatId:UUID!,$typing:Boolean!){setTyping(chatId:$chatId,typing:$typing)}';
const Q_EMAIL = 'query{notificationSettings{emailEnabled emailPreference}}';
const M_EMAIL = 'mutation($p:EmailPreference!){setEmailPreference(preference:$p){emailEnabled emailPreference}}';
const HOURS = 'enabled timeZone ranges{weekday open close} awayText replyTime';
const Q_HOURS = `query{officeHours{${HOURS}}}`;
const M_HOURS = `mutation($input:OfficeHoursInput!){setOfficeHours(input:$input){${HOURS}}}`;
const DAYS = ['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY', 'SUNDAY'];
const S_INBOX = `subscription{inboxEvents{kind typing sender chat{${ROW}} message{${MSG}} statusEvent{${SYS}}}}`;
const S_CHAT = `subscription($chatId:UUID!){chatEvents(chatId:$chatId){kind typing sender chat{${ROW}} message{${MSG}} statusEvent{${SYS}}}}`;

const STATUSES = ['OPEN', 'PENDING', 'CLOSED'];
const STATUS_LABEL = { OPEN: 'Open', PENDING: 'Pending', CLOSED: 'Closed' };

// ---- state ----
const S = {
  session: null,
  me: null,
  policy: { maxFileBytes: 10485760, maxFiles: 3, allowedExtensions: ['jpg', 'jpeg', 'png', 'webp', 'pdf', 'doc', 'docx', 'txt'], allowedMimeTypes: [], maxMessageChars: 5000 },
  filters: { status: 'open', q: '', from: '', to: '', unread: false },
  rows: [],
  total: 0,
  hasNext: false,
  endCursor: null,
  listSeq: 0,
  cursorId: null, // the highlighted row (keyboard)
  openId: null, // the chat shown on the right
  chat: null,
  chatSeq: 0,
  msgs: new Map(),
  sys: new Map(), // status events of the open chat, by id
  els: new Map(),
  statusBusy: 0, // status changes of this page still on their way
  statusWanted: null, // the status the box shows while they are
  statusChat: null, // …in this chat
  newest: null, // endCursor of the newest page, for polling with `after`
  // Whether the thread follows its newest message: set by scrolling, not measured at render
  // time, because an image that finishes loading grows the thread without any scroll.
  stuck: true,
  older: null, // startCursor while there are older messages
  tray: [],
  drafts: loadDrafts(),
  visitorDirty: false,
  live: null,
  inboxSub: null,
  inboxBroken: false, // the server refused inboxEvents: poll even with the socket up
  chatSub: null,
  liveUp: false,
  everUp: false,
  pollTimer: 0,
  expiryTimer: 0,
  unreadTotal: 0,
  seen: new Map(), // chatId -> last message id, to spot new visitor messages while polling
  notify: false,
  audio: null,
};
const timers = {};
const debounce = (name, ms, fn) => {
  clearTimeout(timers[name]);
  timers[name] = setTimeout(fn, ms);
};

// ---- DOM helpers ----
const $ = (id) => document.getElementById(id);

const exact = (iso) => new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'medium' });
function clock(iso) {
  const d = new Date(iso);
  const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString() ? t : `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${t}`;
}
function relative(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 45) return 'now';
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86400) return `${Math.round(s / 3600)}h`;
  if (s < 7 * 86400) return `${Math.round(s / 86400)}d`;
  const d = new Date(iso);
  const sameYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleDateString([], { day: 'numeric', month: 'short', year: sameYear ? undefined : 'numeric' });
}
const shortId = (id) => id.replace(/-/g, '').slice(-6);
const displayName = (c) => c.visitor.name || c.visitor.email || `Visitor ${shortId(c.id)}`;
const sortTime = (c) => Date.parse(c.lastMessageAt || c.createdAt);
const newId = () => `a-${Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
const keyOf = (m) => (m.clientMessageId ? `c:${m.clientMessageId}` : `i:${m.id}`);
/** The API hands out absolute links on its public URL; the page's CSP allows only its own origin. */
function local(url) {
  const u = new URL(url, location.origin);
  return u.pathname + u.search;
}

let toastTimer = 0;
function toast(text, status, mine) {
  // Requests still in flight when the session ended fail with UNAUTHENTICATED: the sign-in
  // page says so already.
  if (!S.session) return;
  const t = $('toast');
  t.textContent = text;
  // Which status a status toast speaks of, so a later change can correct it, and whether this
  // page set it, so the live echo of its own change does not read as someone else's.
  if (status) t.dataset.status = status;
  else delete t.dataset.status;
  if (mine) t.dataset.mine = '1';
  else delete t.dataset.mine;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.hidden = true;
  }, 5000);
}

// ---- session ----
function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    return s && s.token ? s : null;
  } catch {
    return null;
  }
}

function showLogin(message) {
  $('app').hidden = true;
  $('login-view').hidden = false;
  $('login-message').textContent = message || '';
  $('login-message').hidden = !message;
  $('login-error').hidden = true;
  document.title = 'Sign in · Chatdesk';
  $('login-email').focus();
}

async function onLogin(e) {
  e.preventDefault();
  const button = $('login-submit');
  const error = $('login-error');
  error.hidden = true;
  button.disabled = true;
  try {
    const d = await gql(M_LOGIN, { email: $('login-email').value.trim(), password: $('login-password').value });
    const session = { token: d.login.token, expiresAt: d.login.expiresAt, admin: d.login.admin };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    $('login-password').value = '';
    startApp(session);
  } catch (err) {
    error.textContent = err.code === 'UNAUTHENTICATED' ? 'Wrong email or password.' : err.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function signOut(message) {
  if (!S.session) return;
  sessionStorage.removeItem(SESSION_KEY);
  setToken(null);
  S.session = null;
  if (S.live) S.live.stop();
  S.live = null;
  stopPoll();
  clearTimeout(S.expiryTimer);
  Object.values(timers).forEach(clearTimeout);
  closeChat();
  $('toast').hidden = true;
  S.rows = [];
  S.seen.clear();
  $('chat-list').replaceChildren();
  showLogin(message);
}

function startApp(session) {
  S.session = session;
  S.everUp = false;
  setToken(session.token);
  $('login-view').hidden = true;
  $('app').hidden = false;
  showMe(session.admin);
  const left = Date.parse(session.expiresAt) - Date.now();
  clearTimeout(S.expiryTimer);
  S.expiryTimer = setTimeout(() => signOut(EXPIRED), Math.min(Math.max(left, 0), 2147483000));
  gql(Q_ME).then((d) => {
    showMe(d.me);
    S.policy = d.uploadPolicy;
    const accept = S.policy.allowedExtensions.map((x) => `.${x}`).concat(S.policy.allowedMimeTypes);
    $('reply-file').setAttribute('accept', accept.join(','));
    $('reply-box').maxLength = S.policy.maxMessageChars;
  }, () => {});
  loadEmailSettings();
  loadHours();
  S.live = new Live({
    getToken: () => S.session && S.session.token,
    onState: onLiveState,
    onRefused: () => gql(Q_ME).catch(() => {}), // an UNAUTHENTICATED answer signs out
    onSubscriptionError: (id) => {
      if (id !== S.inboxSub) return;
      S.inboxBroken = true;
      startPoll();
    },
  });
  S.inboxBroken = false;
  S.inboxSub = S.live.subscribe(S_INBOX, {}, (d) => onInboxEvent(d.inboxEvents));
  S.live.start();
  renderFilters();
  loadList(true);
  refreshUnread();
  const wanted = new URLSearchParams(location.search).get('chat');
  if (wanted && /^[0-9a-f-]{36}$/i.test(wanted)) openChat(wanted);
}

// ---- email notifications (a small panel in the sidebar; emails link to #settings) ----
function showEmailSettings(n) {
  $('email-pref').value = n.emailPreference;
  $('email-state').textContent = n.emailEnabled
    ? 'Sent when nobody has read a visitor message for a while.'
    : 'Email is off on this server (CHATDESK_SMTP_URL is not set).';
}

function loadEmailSettings() {
  if (location.hash === '#settings') $('email-settings').open = true;
  gql(Q_EMAIL).then((d) => showEmailSettings(d.notificationSettings), () => {});
}

async function saveEmailPreference() {
  try {
    const d = await gql(M_EMAIL, { p: $('email-pref').value });
    showEmailSettings(d.setEmailPreference);
    toast('Email preference saved');
  } catch (err) {
    toast(err.message || 'Could not save the email preference');
  }
}

// ---- office hours: one open–close range a day (empty = closed) ----
function buildHours() {
  const days = $('hours-days');
  if (days.childElementCount) return;
  for (const day of DAYS) {
    const name = day[0] + day.slice(1, 3).toLowerCase();
    days.append(h('div', { class: 'hours-day' },
      h('span', {}, name),
      h('input', { type: 'time', 'aria-label': `${name} opens`, 'data-day': day, 'data-edge': 'open', 'data-testid': `hours-${day.toLowerCase()}-open` }),
      h('input', { type: 'time', 'aria-label': `${name} closes`, 'data-day': day, 'data-edge': 'close', 'data-testid': `hours-${day.toLowerCase()}-close` })));
  }
}

function showHours(o) {
  buildHours();
  $('hours-enabled').checked = o.enabled;
  $('hours-zone').value = o.enabled || o.ranges.length ? o.timeZone : Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  for (const input of $('hours-days').querySelectorAll('input')) {
    const range = o.ranges.find((r) => r.weekday === input.dataset.day);
    input.value = range ? range[input.dataset.edge] : '';
  }
  $('hours-away').value = o.awayText || '';
  $('hours-reply').value = o.replyTime || '';
}

function loadHours() {
  buildHours();
  gql(Q_HOURS).then((d) => showHours(d.officeHours), () => {});
}

async function saveHours(e) {
  e.preventDefault();
  const ranges = [];
  for (const day of DAYS) {
    const open = $('hours-days').querySelector(`[data-day="${day}"][data-edge="open"]`).value;
    const close = $('hours-days').querySelector(`[data-day="${day}"][data-edge="close"]`).value;
    if (open && close) ranges.push({ weekday: day, open, close });
  }
  const input = {
    enabled: $('hours-enabled').checked,
    timeZone: $('hours-zone').value.trim(),
    ranges,
    awayText: $('hours-away').value.trim() || null,
    replyTime: $('hours-reply').value.trim() || null,
  };
  try {
    const d = await gql(M_HOURS, { input });
    showHours(d.setOfficeHours);
    $('hours-state').textContent = 'Saved.';
  } catch (err) {
    $('hours-state').textContent = err.message || 'Could not save the office hours';
  }
}

function showMe(admin) {
  S.me = admin;
  const el = $('me-name');
  el.textContent = admin.name || admin.email;
  el.title = admin.email;
  $('me-avatar').textContent = admin.initials || '';
  const input = $('profile-name');
  if (document.activeElement !== input) input.value = admin.name || '';
  // Without a name visitors see no one in particular: say so where it is set.
  if (!admin.name) $('profile-state').textContent = 'Visitors see no name on your replies yet.';
}

// ---- the admin's display name (what visitors see on replies) ----
const PROFILE_REASONS = {
  EMPTY: 'Enter a name.',
  TOO_LONG: 'At most 60 characters.',
  LOOKS_LIKE_EMAIL: 'Visitors see this name: use a name, not an email address.',
};

async function saveProfile(e) {
  e.preventDefault();
  const error = $('profile-error');
  const input = $('profile-name');
  error.hidden = true;
  input.removeAttribute('aria-invalid');
  try {
    const d = await gql(M_PROFILE, { name: input.value });
    const admin = d.updateMyProfile;
    S.session.admin = admin;
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(S.session));
    showMe(admin);
    input.value = admin.name;
    $('profile-state').textContent = `Saved: visitors now see “${admin.name}” on your replies.`;
  } catch (err) {
    error.textContent = (err.extensions && PROFILE_REASONS[err.extensions.reason]) || err.message;
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

// ---- filters and the URL ----
function readUrl() {
  const p = new URLSearchParams(location.search);
  const status = p.get('status');
  const date = (v) => (/^\d{4}-\d{2}-\d{2}$/.test(v || '') ? v : '');
  S.filters = {
    status: ['open', 'pending', 'closed', 'all'].includes(status) ? status : 'open',
    q: p.get('q') || '',
    from: date(p.get('from')),
    to: date(p.get('to')),
    unread: p.get('unread') === '1',
  };
}

function writeUrl() {
  const f = S.filters;
  const p = new URLSearchParams();
  if (f.status !== 'open') p.set('status', f.status);
  if (f.q) p.set('q', f.q);
  if (f.from) p.set('from', f.from);
  if (f.to) p.set('to', f.to);
  if (f.unread) p.set('unread', '1');
  if (S.openId) p.set('chat', S.openId);
  const qs = p.toString();
  history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
}

function filterVars() {
  const f = S.filters;
  const v = {};
  if (f.status !== 'all') v.status = [f.status.toUpperCase()];
  if (f.q.trim()) v.search = f.q.trim();
  if (f.from) v.updatedAfter = new Date(`${f.from}T00:00:00`).toISOString();
  if (f.to) {
    const end = new Date(`${f.to}T00:00:00`);
    end.setDate(end.getDate() + 1); // the "to" day is included
    v.updatedBefore = end.toISOString();
  }
  if (f.unread) v.unreadOnly = true;
  return v;
}

function renderFilters() {
  const f = S.filters;
  for (const tab of document.querySelectorAll('.tabs [role=tab]')) {
    const on = tab.dataset.status === f.status;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  if ($('search').value !== f.q) $('search').value = f.q;
  $('date-from').value = f.from;
  $('date-to').value = f.to;
  $('unread-only').checked = f.unread;
}

function applyFilters() {
  writeUrl();
  renderFilters();
  loadList(true);
}

// ---- the chat list ----
async function loadList(reset) {
  const seq = ++S.listSeq;
  const more = $('load-more');
  if (!reset) more.disabled = true;
  try {
    const d = await gql(Q_CHATS, { filter: filterVars(), first: PAGE_SIZE, after: reset ? null : S.endCursor });
    if (seq !== S.listSeq) return;
    const fresh = d.chats.edges.map((e) => e.node);
    if (reset) S.rows = fresh;
    else S.rows = S.rows.concat(fresh.filter((r) => !S.rows.some((x) => x.id === r.id)));
    S.total = d.chats.totalCount;
    S.hasNext = d.chats.pageInfo.hasNextPage;
    S.endCursor = d.chats.pageInfo.endCursor;
    for (const r of fresh) S.seen.set(r.id, r.lastMessage && r.lastMessage.id);
    if (!S.rows.some((r) => r.id === S.cursorId)) {
      S.cursorId = S.rows.some((r) => r.id === S.openId) ? S.openId : S.rows[0] ? S.rows[0].id : null;
    }
    renderList();
  } catch (err) {
    if (seq === S.listSeq) toast(err.message);
  } finally {
    more.disabled = false;
  }
}

function renderList() {
  const list = $('chat-list');
  list.replaceChildren(...S.rows.map(rowEl));
  $('list-empty').hidden = S.rows.length > 0;
  $('load-more').hidden = !S.hasNext;
  $('list-count').textContent = `${S.rows.length} of ${S.total} chat${S.total === 1 ? '' : 's'}`;
  markCursor();
}

function rowEl(c) {
  const name = displayName(c);
  const lm = c.lastMessage;
  let preview = 'No messages yet';
  if (lm) {
    const text = lm.body || lm.attachments.map((a) => `📎 ${a.name}`).join(', ');
    preview = lm.sender === 'ADMIN' ? `${lm.senderLabel || 'Support'}: ${text}` : text;
  }
  const when = c.lastMessageAt || c.createdAt;
  const unread = c.unreadCount > 0;
  const li = h('li', {
    id: `row-${c.id}`,
    role: 'option',
    class: `row${unread ? ' unread' : ''}${c.id === S.openId ? ' open' : ''}`,
    'aria-selected': String(c.id === S.openId),
    'data-testid': 'chat-row',
    'data-chat-id': c.id,
    'data-status': c.status.toLowerCase(),
    'data-unread': c.unreadCount,
    onclick: () => {
      S.cursorId = c.id;
      openChat(c.id);
    },
  },
  h('div', { class: 'r1' },
    h('span', { class: 'name', 'data-testid': 'chat-row-name' }, name),
    c.visitor.name && c.visitor.email ? h('span', { class: 'email' }, c.visitor.email) : null,
    h('time', { class: 'when', datetime: when, 'data-rel': when, title: `Last message: ${exact(when)}\nUpdated: ${exact(c.updatedAt)}`, 'data-testid': 'chat-row-time' }, relative(when))),
  h('div', { class: 'r2' },
    h('span', { class: `pill s-${c.status.toLowerCase()}`, 'data-testid': 'chat-row-status' }, STATUS_LABEL[c.status] || c.status),
    h('span', { class: 'preview', 'data-testid': 'chat-row-preview' }, preview),
    unread ? h('span', { class: 'badge', 'data-testid': 'chat-row-unread', 'aria-label': `${c.unreadCount} unread` }, String(c.unreadCount)) : null));
  return li;
}

function markCursor() {
  const list = $('chat-list');
  for (const li of list.children) li.classList.toggle('cursor', li.dataset.chatId === S.cursorId);
  if (S.cursorId && $(`row-${S.cursorId}`)) list.setAttribute('aria-activedescendant', `row-${S.cursorId}`);
  else list.removeAttribute('aria-activedescendant');
}

function moveCursor(step) {
  if (!S.rows.length) return;
  let i = S.rows.findIndex((r) => r.id === S.cursorId);
  i = i < 0 ? 0 : Math.min(Math.max(i + step, 0), S.rows.length - 1);
  S.cursorId = S.rows[i].id;
  markCursor();
  const el = $(`row-${S.cursorId}`);
  if (el) el.scrollIntoView({ block: 'nearest' });
  if (i === S.rows.length - 1 && step > 0 && S.hasNext) loadList(false);
}

/** Would the server's list (current filters) hold this chat? Search can't be judged here. */
function matches(c, present) {
  const f = S.filters;
  const v = filterVars();
  if (f.status !== 'all' && c.status !== f.status.toUpperCase()) return false;
  if (f.unread && !present && !(c.unreadCount > 0)) return false;
  if (v.updatedAfter && Date.parse(c.updatedAt) < Date.parse(v.updatedAfter)) return false;
  if (v.updatedBefore && Date.parse(c.updatedAt) >= Date.parse(v.updatedBefore)) return false;
  if (v.search && !present) return false;
  return true;
}

function upsertRow(c) {
  const i = S.rows.findIndex((r) => r.id === c.id);
  const present = i >= 0;
  if (!matches(c, present)) {
    if (present) {
      S.rows.splice(i, 1);
      S.total = Math.max(0, S.total - 1);
    }
  } else if (present) {
    S.rows[i] = c;
  } else if (!S.hasNext || !S.rows.length || sortTime(c) >= sortTime(S.rows[S.rows.length - 1])) {
    S.rows.push(c);
    S.total += 1;
  }
  S.rows.sort((a, b) => sortTime(b) - sortTime(a));
  S.seen.set(c.id, c.lastMessage && c.lastMessage.id);
  renderList();
}

function refreshUnread() {
  debounce('unread', 300, async () => {
    try {
      const d = await gql(Q_UNREAD);
      S.unreadTotal = d.chats.totalCount;
    } catch {
      return;
    }
    const badge = $('nav-unread');
    badge.textContent = String(S.unreadTotal);
    badge.hidden = !S.unreadTotal;
    badge.setAttribute('aria-label', `${S.unreadTotal} chats with unread messages`);
    document.title = `${S.unreadTotal ? `(${S.unreadTotal}) ` : ''}Chats · Chatdesk`;
  });
}

// ---- the chat view ----
function closeChat() {
  $('delete-bar').hidden = true;
  if (S.live && S.chatSub) S.live.unsubscribe(S.chatSub);
  S.chatSub = null;
  S.openId = null;
  S.chat = null;
  S.msgs.clear();
  S.sys.clear();
  S.els.clear();
  S.tray = [];
  closeLightbox(false);
  $('messages').replaceChildren();
  $('chat-view').hidden = true;
  $('chat-empty').hidden = false;
}

async function openChat(id) {
  if (S.openId !== id) {
    if (S.openId) saveDraft(S.openId, $('reply-box').value);
    stopTyping();
    closeChat();
    S.openId = id;
    S.cursorId = id;
    S.newest = null;
    S.older = null;
    S.visitorDirty = false;
    $('reply-box').value = S.drafts.get(id) || '';
    renderTray();
    showTyping(false);
    $('reply-error').hidden = true;
    $('chat-title').textContent = 'Loading…';
    $('chat-sub').textContent = '';
    $('chat-facts').replaceChildren();
    $('chat-empty').hidden = true;
    $('chat-view').hidden = false;
    S.chatSub = S.live.subscribe(S_CHAT, { chatId: id }, (d) => onChatEvent(d.chatEvents));
    writeUrl();
    for (const li of $('chat-list').children) {
      li.classList.toggle('open', li.dataset.chatId === id);
      li.setAttribute('aria-selected', String(li.dataset.chatId === id));
    }
    markCursor();
  }
  await fetchLatest(true);
}

/** Loads the newest page of the open chat and merges it (also refreshes read marks and links). */
async function fetchLatest(first) {
  const id = S.openId;
  const seq = ++S.chatSeq;
  try {
    const d = await gql(Q_CHAT, { id });
    if (seq !== S.chatSeq || id !== S.openId) return;
    if (!d.chat) {
      toast('That chat does not exist (any more).');
      closeChat();
      writeUrl();
      return;
    }
    const conn = d.chat.messages;
    for (const e of conn.edges) addMsg(e.node);
    addStatusEvents(d.chat.statusEvents);
    S.newest = conn.pageInfo.endCursor || S.newest;
    if (first) S.older = conn.pageInfo.hasPreviousPage ? conn.pageInfo.startCursor : null;
    setChat(d.chat);
    renderThread(first);
    if (first) markRead(true); // opening a chat reads it
    else markRead(false);
  } catch (err) {
    if (seq === S.chatSeq) toast(err.message);
  }
}

async function loadOlder() {
  if (!S.older) return;
  const id = S.openId;
  const thread = $('thread');
  const fromBottom = thread.scrollHeight - thread.scrollTop;
  try {
    const d = await gql(Q_OLDER, { id, before: S.older });
    if (id !== S.openId || !d.chat) return;
    for (const e of d.chat.messages.edges) addMsg(e.node);
    S.older = d.chat.messages.pageInfo.hasPreviousPage ? d.chat.messages.pageInfo.startCursor : null;
    renderThread(false);
    thread.scrollTop = thread.scrollHeight - fromBottom;
  } catch (err) {
    toast(err.message);
  }
}

/** The chat as the server has it now; `change` is the status event that brought it, if any. */
function setChat(c, change) {
  // An answer older than what is shown (a poll that crossed a change) must not undo it.
  if (S.chat && S.chat.id === c.id && micros(c.updatedAt) < micros(S.chat.updatedAt)) return;
  const before = S.chat && S.chat.id === c.id ? S.chat.status : null;
  S.chat = c;
  renderHead();
  // A status toast on screen must not contradict the status box: say what changed it.
  if (before && before !== c.status && !S.statusBusy && statusToastShown() && !(change && echoOfMine(change))) statusToast(change ? statusCause(change) : null);
  fillVisitorForm(false);
  upsertRow(c);
}

function renderHead() {
  const c = S.chat;
  if (!c) return;
  $('chat-title').textContent = displayName(c);
  const sub = [c.visitor.name ? c.visitor.email : null, c.visitor.phone, `#${shortId(c.id)}`, `started ${clock(c.createdAt)}`].filter(Boolean);
  $('chat-sub').textContent = sub.join(' · ');
  // The box shows the server's status, except while the admin's own change is on its way.
  $('status-select').value = S.statusBusy && S.statusChat === c.id ? S.statusWanted : c.status;
  const facts = [
    ['Chat', c.id],
    ['Status', STATUS_LABEL[c.status]],
    ['Started', exact(c.createdAt)],
    ['Last message', c.lastMessageAt ? exact(c.lastMessageAt) : '—'],
    ['Updated', exact(c.updatedAt)],
  ];
  const dl = $('chat-facts');
  dl.replaceChildren(...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  if (c.sourcePage) {
    const safe = /^https?:\/\//i.test(c.sourcePage);
    dl.append(h('dt', {}, 'Page'), h('dd', {}, safe ? h('a', { href: c.sourcePage, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'source-page' }, c.sourcePage) : c.sourcePage));
  }
}

function fillVisitorForm(force) {
  if (!S.chat || (S.visitorDirty && !force)) return;
  $('visitor-name').value = S.chat.visitor.name || '';
  $('visitor-email').value = S.chat.visitor.email || '';
  $('visitor-phone').value = S.chat.visitor.phone || '';
  S.visitorDirty = false;
}

async function saveVisitor(e) {
  e.preventDefault();
  if (!S.openId) return;
  const error = $('visitor-error');
  error.hidden = true;
  // Empty strings clear a field; every field is sent so the form is what gets stored.
  const input = { name: $('visitor-name').value.trim(), email: $('visitor-email').value.trim(), phone: $('visitor-phone').value.trim() };
  try {
    const d = await gql(M_VISITOR, { chatId: S.openId, input });
    S.visitorDirty = false;
    setChat(d.updateVisitor);
    $('visitor-saved').textContent = 'Saved';
    debounce('saved', 2500, () => {
      $('visitor-saved').textContent = '';
    });
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
}

let statusQueue = Promise.resolve();

/**
 * Sets the open chat's status. Changes go out one after another, so quick presses of 1-2-3 end
 * on the last one pressed; the toast is written once they are all answered, from the status the
 * server returned, so it never names another status than the box.
 */
function setStatus(status) {
  if (!S.openId || !STATUSES.includes(status)) return;
  const id = S.openId;
  S.statusBusy += 1;
  S.statusWanted = status;
  S.statusChat = id;
  $('status-select').value = status;
  let failure = null;
  statusQueue = statusQueue.then(async () => {
    try {
      const d = await gql(M_STATUS, { chatId: id, status });
      if (id === S.openId) S.chat = d.setChatStatus;
      upsertRow(d.setChatStatus);
    } catch (err) {
      failure = err.message;
    } finally {
      S.statusBusy -= 1;
    }
    if (id !== S.openId) return;
    if (!S.statusBusy) {
      renderHead();
      fillVisitorForm(false);
      if (failure) toast(`${failure} The status stays ${STATUS_LABEL[S.chat.status]}.`, S.chat.status);
      else statusToast('mine');
    }
  });
}

function statusToastShown() {
  const t = $('toast');
  return !t.hidden && !!t.dataset.status;
}

/**
 * Whether a live status event is the echo of a change this page made and already announced: it
 * often arrives after the mutation's own answer, and must not turn "Status set to Pending." into
 * "Changed by a team member".
 */
function echoOfMine(e) {
  const t = $('toast');
  return e.by === 'ADMIN' && !!t.dataset.mine && t.dataset.status === e.to;
}

/** The toast for the open chat's status, as the box shows it: 'mine', or its cause when known. */
function statusToast(cause) {
  if (!S.chat) return;
  const label = STATUS_LABEL[S.chat.status];
  toast(cause === 'mine' ? `Status set to ${label}.` : `${cause ? `${cause}; the` : 'The'} status is ${label} now.`, S.chat.status, cause === 'mine');
}

function statusCause(e) {
  if (e.by === 'VISITOR') return 'The visitor wrote again';
  return e.author ? `${e.author.displayName} changed it` : 'Changed by a team member';
}

function markRead(force) {
  debounce('read', force ? 0 : 400, async () => {
    const id = S.openId;
    if (!id || document.visibilityState === 'hidden') return;
    if (!force && !(S.chat && S.chat.unreadCount > 0)) return;
    try {
      const d = await gql(M_READ, { chatId: id });
      if (id === S.openId) {
        S.chat = d.markChatRead;
        // The server's mark is at least the newest message: everything shown is read now.
        readUpTo('VISITOR', d.markChatRead.lastMessageAt || new Date().toISOString());
        renderThread(false);
      }
      upsertRow(d.markChatRead);
      refreshUnread();
    } catch {
      // the next event or poll tries again
    }
  });
}

// ---- messages ----
/**
 * Reading, or answering, moves a side's read mark: the other side's messages up to `at` now
 * read as seen (the server's readAt is that mark), without fetching the thread again.
 */
function readUpTo(sender, at) {
  const t = Date.parse(at);
  for (const m of S.msgs.values()) {
    if (!m.local && m.sender === sender && !m.readAt && Date.parse(m.createdAt) <= t) m.readAt = at;
  }
}

function addMsg(m) {
  const k = keyOf(m);
  const prev = S.msgs.get(k);
  // A late copy (an event racing a page load) must not undo a read mark.
  if (prev && !prev.local && prev.readAt && !m.readAt) m.readAt = prev.readAt;
  m.fetchedAt = Date.now();
  S.msgs.set(k, m);
}

function addStatusEvents(list) {
  for (const e of list || []) S.sys.set(e.id, { ...e, system: true });
}

/**
 * Microseconds since the epoch: the server's times carry them, and a visitor's message and the
 * reopening it caused are often within one millisecond (Date.parse stops at milliseconds).
 */
function micros(iso) {
  const frac = (iso.match(/\.(\d+)/) || [])[1] || '';
  return Math.floor(Date.parse(iso) / 1000) * 1e6 + Number(frac.padEnd(6, '0').slice(0, 6));
}

// Messages and status lines by time (ids are time-ordered too), unsent messages last.
const order = (a, b) => (!!a.local - !!b.local) || (micros(a.createdAt) - micros(b.createdAt)) || (a.id < b.id ? -1 : 1);

/** A selector for the focused control inside `el` (a new copy of it has the same), if any. */
function focusedIn(el) {
  const f = document.activeElement;
  if (!f || f === el || !el.contains(f)) return null;
  if (f.dataset.attachmentId) return `[data-attachment-id="${f.dataset.attachmentId}"]`;
  return f.dataset.testid ? `[data-testid="${f.dataset.testid}"]` : null;
}

/** What the thread shows: the messages, and the status changes since the oldest one loaded. */
function threadItems() {
  const items = [...S.msgs.entries()];
  let oldest = Infinity;
  for (const m of S.msgs.values()) if (!m.local) oldest = Math.min(oldest, Date.parse(m.createdAt));
  for (const e of S.sys.values()) {
    // Older changes belong with older messages not loaded yet ("Load earlier messages").
    if (S.older && Date.parse(e.createdAt) < oldest) continue;
    items.push([`e:${e.id}`, e]);
  }
  return items.sort((a, b) => order(a[1], b[1]));
}

function renderThread(forceScroll) {
  const thread = $('thread');
  const list = $('messages');
  const stick = forceScroll || S.stuck;
  const sorted = threadItems();
  const alive = new Set();
  let prev = null;
  for (const [k, m] of sorted) {
    alive.add(k);
    const sig = m.system ? JSON.stringify([m.id, m.author]) : JSON.stringify([m.id, m.body, m.readAt, m.state, m.error, m.author, (m.attachments || []).map((a) => a.purged), (m.files || []).length, S.chat && displayName(S.chat)]);
    let entry = S.els.get(k);
    if (!entry || entry.sig !== sig) {
      const el = m.system ? sysEl(m) : msgEl(m);
      const refocus = entry && focusedIn(entry.el);
      if (entry) entry.el.replaceWith(el);
      if (refocus) {
        const again = el.querySelector(refocus);
        if (again) again.focus();
      }
      entry = { sig, el };
      S.els.set(k, entry);
    }
    const want = prev ? prev.nextSibling : list.firstChild;
    if (want !== entry.el) list.insertBefore(entry.el, want);
    prev = entry.el;
  }
  for (const [k, entry] of S.els) {
    if (!alive.has(k)) {
      entry.el.remove();
      S.els.delete(k);
    }
  }
  $('load-older').hidden = !S.older;
  if (stick) {
    thread.scrollTop = thread.scrollHeight;
    S.stuck = true;
  }
}

function msgEl(m) {
  const mine = m.sender === 'ADMIN';
  const state = m.local ? m.state : m.readAt ? 'read' : 'sent';
  const author = mine ? m.author || (m.local && S.me && S.me.name ? { displayName: S.me.name, initials: S.me.initials } : null) : null;
  const who = mine ? (author ? author.displayName : 'Support') : S.chat ? displayName(S.chat) : 'Visitor';
  const head = h('div', { class: 'mhead' },
    author ? h('span', { class: 'avatar', 'aria-hidden': 'true' }, author.initials) : null,
    h('span', { class: 'who', 'data-testid': 'message-author' }, who),
    h('time', { datetime: m.createdAt, title: exact(m.createdAt) }, clock(m.createdAt)));
  if (mine) {
    const label = { sending: 'Sending…', failed: 'Not sent', read: `Seen ${m.readAt ? clock(m.readAt) : ''}`, sent: 'Sent' }[state];
    head.append(h('span', { class: `state ${state}`, 'data-testid': 'message-state', title: m.readAt ? `Read by the visitor ${exact(m.readAt)}` : null }, label));
  }
  const li = h('li', {
    class: `msg ${mine ? 'out' : 'in'}${state === 'failed' ? ' failed' : ''}`,
    'data-testid': 'message',
    'data-sender': mine ? 'admin' : 'visitor',
    'data-state': state,
    'data-message-id': m.id,
    'data-client-message-id': m.clientMessageId,
  }, head);
  if (m.body) li.append(h('div', { class: 'body', 'data-testid': 'message-body' }, linkify(m.body)));
  const atts = [...(m.attachments || []).map((a) => attEl(a, m)), ...(m.files || []).map(pendingFileEl)];
  if (atts.length) li.append(h('div', { class: 'atts' }, atts));
  if (m.local && m.state === 'sending' && m.files.length) {
    m.bar = h('progress', { max: '1', value: String(m.progress || 0), 'aria-label': 'Upload progress', 'data-testid': 'upload-progress' });
    li.append(m.bar);
  }
  if (state === 'failed') {
    li.append(h('div', { class: 'failure' },
      h('span', { 'data-testid': 'message-error' }, m.error || 'Not sent.'),
      h('button', { type: 'button', class: 'link', 'data-testid': 'retry', onclick: () => deliver(m) }, 'Retry'),
      h('button', { type: 'button', class: 'link', 'data-testid': 'discard', onclick: () => { S.msgs.delete(keyOf(m)); renderThread(false); } }, 'Discard')));
  }
  return li;
}

/** A status change as a small line between the messages. */
function sysEl(e) {
  const name = e.author ? e.author.displayName : null;
  let text;
  if (e.to === 'CLOSED') text = name ? `Closed by ${name}` : 'Closed';
  else if (e.to === 'PENDING') text = name ? `Marked pending by ${name}` : 'Marked pending';
  else if (e.by === 'VISITOR') text = 'Reopened by the visitor’s message';
  else text = name ? `Reopened by ${name}` : 'Reopened';
  return h('li', { class: `sys to-${e.to.toLowerCase()}`, 'data-testid': 'status-line', 'data-to': e.to.toLowerCase(), 'data-by': e.by.toLowerCase(), 'data-event-id': e.id },
    `${text} · `, h('time', { datetime: e.createdAt, title: exact(e.createdAt) }, clock(e.createdAt)));
}

function pendingFileEl(f) {
  return h('div', { class: 'att doc', 'data-testid': 'attachment' },
    h('span', { class: 'ext' }, (f.name.split('.').pop() || '').slice(0, 4).toUpperCase()),
    h('span', { class: 'att-text' }, h('span', { class: 'att-name' }, f.name), h('span', { class: 'muted' }, fmtSize(f.size))));
}

function attEl(a, m) {
  const ext = (a.name.split('.').pop() || '').slice(0, 4).toUpperCase();
  if (a.purged || !a.url) {
    return h('div', { class: 'att doc expired', 'data-testid': 'attachment', 'data-purged': '' },
      h('span', { class: 'ext' }, ext),
      h('span', { class: 'att-text' }, h('span', { class: 'att-name' }, a.name), h('span', { class: 'muted' }, `${fmtSize(a.sizeBytes)} · File expired`)));
  }
  const url = local(a.url);
  const guard = (e) => {
    if (Date.now() - m.fetchedAt < STALE_MS) return;
    e.preventDefault();
    download(a);
  };
  const link = h('a', { href: url, download: a.name, class: 'dl', 'data-testid': 'attachment-download', onclick: guard }, 'Download');
  const size = `${fmtSize(a.sizeBytes)}${a.width ? ` · ${a.width}×${a.height}` : ''}`;
  const meta = h('span', { class: 'muted' }, size);
  if (a.thumbnailUrl) {
    const img = h('img', { src: local(a.thumbnailUrl), alt: a.name, loading: 'lazy', onload: () => { if (S.stuck) $('thread').scrollTop = $('thread').scrollHeight; }, width: a.width ? Math.min(a.width, 240) : null, height: a.width && a.height ? Math.round((a.height * Math.min(a.width, 240)) / a.width) : null, 'data-testid': 'attachment-thumbnail' });
    img.addEventListener('error', () => {
      authorizedBlob(`/api/chat/files/${a.id}/thumbnail`).then((b) => {
        img.src = URL.createObjectURL(b);
      }, () => {});
    }, { once: true });
    // Opens the image viewer; the link stays a link for a middle click or "open in new tab".
    const open = (e) => {
      if (e.button || e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      openLightbox(a.id, e.currentTarget);
    };
    return h('figure', { class: 'att image', 'data-testid': 'attachment' },
      h('a', { href: url, title: `${a.name} · ${size}`, 'aria-label': `View ${a.name}, ${size}`, 'data-testid': 'attachment-view', 'data-attachment-id': a.id, onclick: open },
        img, h('span', { class: 'thumb-info', 'aria-hidden': 'true', 'data-testid': 'thumb-info' }, `${a.name} · ${fmtSize(a.sizeBytes)}`)),
      h('figcaption', {}, h('span', { class: 'att-name' }, a.name), meta, link));
  }
  // A PDF opens in a tab of its own (the browser's viewer); other documents download.
  const pdf = a.mimeType === 'application/pdf'
    ? h('a', { href: url, target: '_blank', rel: 'noopener', class: 'dl', 'data-testid': 'attachment-open', onclick: (e) => { e.preventDefault(); openPdf(a); } }, 'Open')
    : null;
  return h('div', { class: 'att doc', 'data-testid': 'attachment' },
    h('span', { class: 'ext' }, ext),
    h('span', { class: 'att-text' }, h('span', { class: 'att-name', title: a.name }, a.name), meta),
    pdf, link);
}

/**
 * A PDF in a new tab. Files are served as downloads (`Content-Disposition: attachment`, and a
 * sandbox CSP the PDF viewer will not run under), so the tab gets the bytes as a blob of this
 * page's origin instead. The tab is opened inside the click, or popup blockers refuse it.
 */
function openPdf(a) {
  const tab = window.open('', '_blank');
  if (!tab) {
    toast('The browser blocked the new tab; use Download instead.');
    return;
  }
  tab.opener = null;
  tab.document.title = a.name;
  authorizedBlob(`/api/chat/files/${a.id}`).then((blob) => {
    const url = URL.createObjectURL(new Blob([blob], { type: 'application/pdf' }));
    tab.location.href = url;
    setTimeout(() => URL.revokeObjectURL(url), 600000);
  }, () => {
    tab.close();
    toast(`${a.name} could not be opened.`);
  });
}

// ---- the image viewer ----
const LB = { list: [], i: 0, opener: null, openerId: null, blob: null };

/** The open chat's images, in thread order. */
function chatImages() {
  const out = [];
  for (const [, m] of threadItems()) {
    if (m.system || m.local) continue;
    for (const a of m.attachments || []) if (a.thumbnailUrl && a.url && !a.purged) out.push({ a, m });
  }
  return out;
}

function openLightbox(id, opener) {
  LB.list = chatImages();
  LB.i = Math.max(0, LB.list.findIndex((x) => x.a.id === id));
  if (!LB.list.length) return;
  LB.opener = opener;
  LB.openerId = id;
  $('lightbox').hidden = false;
  showLightbox();
  $('lb-close').focus();
}

function showLightbox() {
  const { a, m } = LB.list[LB.i];
  const img = $('lb-img');
  if (LB.blob) URL.revokeObjectURL(LB.blob);
  LB.blob = null;
  const viaToken = () => authorizedBlob(`/api/chat/files/${a.id}`).then((b) => {
    if (LB.list[LB.i] && LB.list[LB.i].a.id === a.id) {
      LB.blob = URL.createObjectURL(b);
      img.src = LB.blob;
    }
  }, () => toast(`${a.name} could not be loaded.`));
  img.onerror = null;
  img.alt = a.name;
  // Signed links last minutes: an older page's link is replaced by a fetch with the session.
  if (Date.now() - m.fetchedAt < STALE_MS) {
    img.onerror = () => { img.onerror = null; viaToken(); };
    img.src = local(a.url);
  } else {
    img.removeAttribute('src');
    viaToken();
  }
  if (a.width && a.height) {
    img.width = a.width;
    img.height = a.height;
  }
  $('lb-name').textContent = a.name;
  $('lb-meta').textContent = `${fmtSize(a.sizeBytes)}${a.width ? ` · ${a.width}×${a.height}` : ''}`;
  $('lb-count').textContent = LB.list.length > 1 ? `${LB.i + 1} of ${LB.list.length}` : '';
  const dl = $('lb-download');
  dl.href = local(a.url);
  dl.setAttribute('download', a.name);
  dl.onclick = (e) => {
    if (Date.now() - m.fetchedAt < STALE_MS) return;
    e.preventDefault();
    download(a);
  };
  $('lb-prev').disabled = LB.i === 0;
  $('lb-next').disabled = LB.i === LB.list.length - 1;
  $('lightbox').dataset.index = String(LB.i);
}

function stepLightbox(step) {
  const i = LB.i + step;
  if (i < 0 || i >= LB.list.length) return;
  const focused = document.activeElement;
  LB.i = i;
  showLightbox();
  // A disabled button loses focus: keep it in the viewer.
  if (focused && focused.disabled) $(step < 0 ? 'lb-next' : 'lb-prev').focus();
}

function closeLightbox(restoreFocus = true) {
  const box = $('lightbox');
  if (box.hidden) return;
  box.hidden = true;
  $('lb-img').removeAttribute('src');
  if (LB.blob) URL.revokeObjectURL(LB.blob);
  LB.blob = null;
  // The thumbnail may have been redrawn meanwhile (a read mark): find its new copy.
  const opener = LB.opener && LB.opener.isConnected ? LB.opener : document.querySelector(`[data-testid="attachment-view"][data-attachment-id="${LB.openerId}"]`);
  if (restoreFocus && opener) opener.focus();
  LB.opener = null;
}

/** Keys while the viewer is open: arrows between images, Escape closes, Tab stays inside. */
function onLightboxKey(e) {
  if (e.key === 'Escape') closeLightbox();
  else if (e.key === 'ArrowLeft') stepLightbox(-1);
  else if (e.key === 'ArrowRight') stepLightbox(1);
  else if (e.key === 'Tab') {
    const stops = [...$('lightbox').querySelectorAll('a[href], button:not(:disabled)')];
    const at = stops.indexOf(document.activeElement);
    const next = (at + (e.shiftKey ? -1 : 1) + stops.length) % stops.length;
    stops[next].focus();
  } else return;
  e.preventDefault();
}

/** A deleted chat leaves the list (and the view, if open). */
function dropChat(id, message) {
  saveDraft(id, ''); // nothing of an erased chat stays behind
  const i = S.rows.findIndex((r) => r.id === id);
  if (i >= 0) {
    S.rows.splice(i, 1);
    S.total = Math.max(0, S.total - 1);
    renderList();
  }
  if (id === S.openId) {
    $('delete-bar').hidden = true;
    closeChat();
    writeUrl();
    if (message) toast(message);
  }
  refreshUnread();
}

async function deleteOpenChat() {
  const id = S.openId;
  if (!id) return;
  const button = $('delete-confirm');
  button.disabled = true;
  try {
    await gql(M_DELETE, { id });
    dropChat(id, 'Chat deleted.');
  } catch (err) {
    if (err.code === 'NOT_FOUND') dropChat(id, 'This chat was deleted.');
    else toast(err.message);
  } finally {
    button.disabled = false;
  }
}

/** The open chat's transcript (HTML), fetched with the session's token and saved. */
function downloadTranscript() {
  const id = S.openId;
  if (!id) return;
  authorizedBlob(`/api/chat/transcripts/${id}`).then((blob) => {
    const url = URL.createObjectURL(blob);
    h('a', { href: url, download: `chat-${shortId(id)}-transcript.html` }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }, () => toast('The transcript could not be downloaded.'));
}

function authorizedBlob(path) {
  return fetch(path, { headers: { Authorization: `Bearer ${S.session.token}` } }).then((r) => (r.ok ? r.blob() : Promise.reject(r.status)));
}

function download(a) {
  authorizedBlob(`/api/chat/files/${a.id}`).then((blob) => {
    const url = URL.createObjectURL(blob);
    h('a', { href: url, download: a.name }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }, () => toast(`${a.name} could not be downloaded.`));
}

function showTyping(on) {
  clearTimeout(timers.typingShown);
  $('typing').hidden = !on;
  if (on) timers.typingShown = setTimeout(() => { $('typing').hidden = true; }, 8000);
}

// ---- replying ----
function addFiles(list) {
  const p = S.policy;
  for (const f of Array.from(list || [])) {
    const ext = (f.name.match(/\.([^.]+)$/) || [])[1] || '';
    if (S.tray.length >= p.maxFiles) {
      replyError(`At most ${p.maxFiles} files per message.`);
      break;
    }
    if (p.allowedExtensions.length && !p.allowedExtensions.includes(ext.toLowerCase())) replyError(`“${f.name}” can't be sent: allowed types are ${p.allowedExtensions.join(', ')}.`);
    else if (f.size > p.maxFileBytes) replyError(`“${f.name}” is larger than the ${fmtSize(p.maxFileBytes)} limit.`);
    else if (!f.size) replyError(`“${f.name}” is empty.`);
    else S.tray.push(f);
  }
  renderTray();
}

function renderTray() {
  const box = $('pending-files');
  box.replaceChildren(...S.tray.map((f, i) => h('span', { class: 'chip', 'data-testid': 'pending-file' },
    h('span', { class: 'chip-name' }, f.name),
    h('span', { class: 'muted' }, fmtSize(f.size)),
    h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove ${f.name}`, onclick: () => { S.tray.splice(i, 1); renderTray(); } }, '×'))));
  box.hidden = !S.tray.length;
}

function replyError(text) {
  const el = $('reply-error');
  el.textContent = text;
  el.hidden = false;
  debounce('replyError', 8000, () => { el.hidden = true; });
}

function sendReply() {
  const box = $('reply-box');
  const body = box.value.trim();
  if (!S.openId || (!body && !S.tray.length)) return;
  if (body.length > S.policy.maxMessageChars) {
    replyError(`A message may be at most ${S.policy.maxMessageChars} characters.`);
    return;
  }
  const cid = newId();
  const m = {
    local: true, id: cid, clientMessageId: cid, chatId: S.openId, sender: 'ADMIN',
    senderLabel: S.me ? S.me.name || S.me.email : null, body, files: S.tray, attachments: [],
    createdAt: new Date().toISOString(), state: 'sending',
  };
  S.tray = [];
  renderTray();
  box.value = '';
  saveDraft(S.openId, '');
  stopTyping();
  S.msgs.set(keyOf(m), m);
  deliver(m);
}

async function deliver(m) {
  m.state = 'sending';
  m.error = null;
  m.progress = 0;
  if (m.chatId === S.openId) renderThread(true);
  const vars = { chatId: m.chatId, body: m.body || null, clientMessageId: m.clientMessageId };
  try {
    const d = m.files.length
      ? await gqlUpload(M_SEND, vars, m.files, (p) => { m.progress = p; if (m.bar) m.bar.value = p; })
      : await gql(M_SEND, vars);
    if (m.chatId !== S.openId) return;
    const sent = d.sendMessage;
    if (keyOf(sent) !== keyOf(m)) S.msgs.delete(keyOf(m));
    addMsg(sent);
    renderThread(true);
  } catch (err) {
    m.state = 'failed';
    m.error = err.message;
    if (m.chatId === S.openId) renderThread(false);
    else toast(`A reply was not sent: ${err.message}`);
  }
}

function loadDrafts() {
  try {
    const stored = JSON.parse(localStorage.getItem(DRAFTS_KEY)) || {};
    return new Map(Object.entries(stored).filter(([, text]) => typeof text === 'string'));
  } catch {
    return new Map();
  }
}

function saveDraft(chatId, text) {
  if (!chatId) return;
  if (text.trim()) S.drafts.set(chatId, text);
  else S.drafts.delete(chatId);
  try {
    localStorage.setItem(DRAFTS_KEY, JSON.stringify(Object.fromEntries(S.drafts)));
  } catch {
    // storage full or off: the draft still lives while the page does
  }
}

let typingSentAt = 0;
function onReplyInput() {
  debounce('draft', 300, () => saveDraft(S.openId, $('reply-box').value));
  if (!S.openId || !$('reply-box').value) return;
  const now = Date.now();
  if (now - typingSentAt > 3000) {
    typingSentAt = now;
    gql(M_TYPING, { chatId: S.openId, typing: true }).catch(() => {});
  }
  debounce('typingStop', 4000, stopTyping);
}
function stopTyping() {
  clearTimeout(timers.typingStop);
  if (typingSentAt && S.openId) gql(M_TYPING, { chatId: S.openId, typing: false }).catch(() => {});
  typingSentAt = 0;
}

// ---- live updates ----
function onLiveState(up) {
  S.liveUp = up;
  const el = $('conn-state');
  el.dataset.state = up ? 'live' : 'polling';
  el.textContent = up ? '● Live' : '○ Reconnecting… (polling)';
  if (up) {
    if (!S.inboxBroken) stopPoll();
    if (S.everUp) poll(); // catch up on what happened while the socket was away
    S.everUp = true;
  } else {
    startPoll();
  }
}

function startPoll() {
  if (!S.pollTimer && S.session) S.pollTimer = setInterval(poll, POLL_MS);
}

function stopPoll() {
  clearInterval(S.pollTimer);
  S.pollTimer = 0;
}

function onInboxEvent(ev) {
  if (!ev || !ev.chat) return;
  const c = ev.chat;
  if (ev.kind === 'CHAT_DELETED') return dropChat(c.id, c.id === S.openId ? 'This chat was deleted.' : null);
  if (c.id === S.openId) onChatEvent(ev);
  if (ev.kind === 'TYPING') return;
  if (ev.kind === 'MESSAGE_ADDED' && ev.message && ev.message.sender === 'VISITOR') notifyNew(c, ev.message);
  if (c.id !== S.openId) upsertRow(c);
  refreshUnread();
}

function onChatEvent(ev) {
  if (!ev || !ev.chat || ev.chat.id !== S.openId) return;
  if (ev.kind === 'CHAT_DELETED') return dropChat(ev.chat.id, 'This chat was deleted.');
  if (ev.kind === 'TYPING') {
    if (ev.sender === 'VISITOR') showTyping(!!ev.typing);
    return;
  }
  if (ev.statusEvent) addStatusEvents([ev.statusEvent]);
  setChat(ev.chat, ev.statusEvent);
  // The chat's new status may have come first with a message: name the cause once it is known.
  if (ev.statusEvent && !S.statusBusy && statusToastShown() && S.chat.status === ev.statusEvent.to && !echoOfMine(ev.statusEvent)) statusToast(statusCause(ev.statusEvent));
  if (ev.kind === 'MESSAGE_ADDED' && ev.message) {
    const m = ev.message;
    addMsg(m);
    if (m.sender === 'VISITOR') {
      showTyping(false);
      readUpTo('ADMIN', m.createdAt); // the visitor's message marks what they saw before it
      markRead(false);
    }
    renderThread(m.sender === 'ADMIN' && !!S.me && !!S.me.name && m.senderLabel === S.me.name);
  } else if (ev.kind === 'READ' && ev.sender !== 'ADMIN') {
    debounce('latest', 300, () => fetchLatest(false)); // the visitor's read mark moved
  } else {
    renderThread(false);
  }
}

async function poll() {
  if (!S.session) return;
  const seq = S.listSeq;
  try {
    const d = await gql(Q_CHATS, { filter: filterVars(), first: PAGE_SIZE });
    if (seq !== S.listSeq) throw new Error('the filters changed meanwhile');
    const fresh = d.chats.edges.map((e) => e.node);
    for (const r of fresh) {
      const lm = r.lastMessage;
      // New since the last look: a changed last message, or a chat we had not seen at all.
      const changed = S.seen.has(r.id) ? S.seen.get(r.id) !== (lm && lm.id) : S.seen.size > 0;
      if (changed && lm && lm.sender === 'VISITOR') notifyNew(r, lm);
      S.seen.set(r.id, lm && lm.id);
    }
    if (S.rows.length <= PAGE_SIZE) {
      S.rows = fresh;
      S.hasNext = d.chats.pageInfo.hasNextPage;
      S.endCursor = d.chats.pageInfo.endCursor;
      S.total = d.chats.totalCount;
      renderList();
    } else {
      fresh.forEach(upsertRow);
    }
  } catch {
    // the next tick tries again
  }
  if (S.openId) {
    const id = S.openId;
    if (!S.newest) {
      fetchLatest(false);
    } else {
      try {
        const d = await gql(Q_POLL_CHAT, { id, after: S.newest });
        if (id === S.openId && d.chat) {
          let fromVisitor = false;
          for (const e of d.chat.messages.edges) {
            if (!S.msgs.has(keyOf(e.node)) && e.node.sender === 'VISITOR') fromVisitor = true;
            addMsg(e.node);
          }
          for (const e of d.chat.recent.edges) {
            const m = S.msgs.get(keyOf(e.node));
            if (m && !m.local) m.readAt = e.node.readAt;
          }
          S.newest = d.chat.messages.pageInfo.endCursor || S.newest;
          addStatusEvents(d.chat.statusEvents);
          setChat(d.chat);
          renderThread(false);
          if (fromVisitor) markRead(false);
        }
      } catch {
        // the next tick tries again
      }
    }
  }
  refreshUnread();
}

// ---- notifications ----
function audio() {
  if (!S.audio) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    S.audio = new Ctx();
  }
  return S.audio;
}

function beep() {
  const ac = audio();
  if (!ac) return;
  if (ac.state === 'suspended') ac.resume();
  const t = ac.currentTime;
  const osc = ac.createOscillator();
  const gain = ac.createGain();
  osc.type = 'sine';
  osc.frequency.setValueAtTime(880, t);
  osc.frequency.setValueAtTime(1320, t + 0.12);
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.2, t + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.3);
  osc.connect(gain).connect(ac.destination);
  osc.start(t);
  osc.stop(t + 0.32);
}

function notifyNew(c, m) {
  if (!S.notify || !document.hidden) return;
  beep();
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const text = m.body || (m.attachments || []).map((a) => `📎 ${a.name}`).join(', ');
    const n = new Notification(`${displayName(c)} — Chatdesk`, { body: text.slice(0, 200), tag: `chatdesk-${c.id}` });
    n.onclick = () => {
      window.focus();
      openChat(c.id);
      n.close();
    };
  } catch {
    // some browsers only allow notifications from a service worker
  }
}

async function onNotifyToggle(e) {
  S.notify = e.target.checked;
  localStorage.setItem(NOTIFY_KEY, S.notify ? '1' : '0');
  if (!S.notify) return;
  const ac = audio(); // created inside the click, so the browser lets it play later
  if (ac && ac.state === 'suspended') ac.resume();
  if ('Notification' in window && Notification.permission === 'default') {
    try {
      await Notification.requestPermission();
    } catch {
      // old callback-only API: sound still works
    }
  }
  if ('Notification' in window && Notification.permission === 'denied') toast('Desktop notifications are blocked by the browser; the sound stays on.');
}

// ---- keyboard ----
function onKey(e) {
  if (!S.session) return;
  if (!$('lightbox').hidden) {
    onLightboxKey(e);
    return;
  }
  const t = e.target;
  if (t.id === 'reply-box' && e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    sendReply();
    return;
  }
  const inField = t.closest && t.closest('input, textarea, select, [contenteditable]');
  if (e.key === 'Escape' && inField) {
    t.blur();
    return;
  }
  if (inField || e.altKey || e.ctrlKey || e.metaKey) return;
  const inList = t === document.body || t.id === 'chat-list';
  switch (e.key) {
    case 'j':
      moveCursor(1);
      break;
    case 'k':
      moveCursor(-1);
      break;
    case 'ArrowDown':
    case 'ArrowUp':
      if (!inList) return;
      moveCursor(e.key === 'ArrowDown' ? 1 : -1);
      break;
    case 'Enter':
      if (!inList) return;
      if (S.cursorId) openChat(S.cursorId);
      break;
    case 'o':
      if (S.cursorId) openChat(S.cursorId);
      break;
    case 'r':
      if (!S.openId) return;
      $('reply-box').focus();
      break;
    case '/':
      $('search').focus();
      $('search').select();
      break;
    case 's':
      if (!S.openId) return;
      $('status-select').focus();
      break;
    case '1':
    case '2':
    case '3':
      setStatus(STATUSES[Number(e.key) - 1]);
      break;
    default:
      return;
  }
  e.preventDefault();
}

// ---- wiring (once) ----
function bind() {
  $('login-form').addEventListener('submit', onLogin);
  $('sign-out').addEventListener('click', () => {
    // Drafts may quote visitors: signing out on a shared computer leaves none behind. (An
    // expired session keeps them, for the same admin signing in again.)
    S.drafts.clear();
    localStorage.removeItem(DRAFTS_KEY);
    signOut('');
  });
  $('nav-chats').addEventListener('click', (e) => {
    e.preventDefault();
    $('chat-list').focus();
  });
  for (const tab of document.querySelectorAll('.tabs [role=tab]')) {
    tab.addEventListener('click', () => {
      S.filters.status = tab.dataset.status;
      applyFilters();
    });
  }
  $('search').addEventListener('input', (e) => {
    S.filters.q = e.target.value;
    debounce('search', 300, applyFilters);
  });
  $('search').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      clearTimeout(timers.search);
      applyFilters();
    }
  });
  $('date-from').addEventListener('change', (e) => { S.filters.from = e.target.value; applyFilters(); });
  $('date-to').addEventListener('change', (e) => { S.filters.to = e.target.value; applyFilters(); });
  $('unread-only').addEventListener('change', (e) => { S.filters.unread = e.target.checked; applyFilters(); });
  $('refresh').addEventListener('click', () => { loadList(true); refreshUnread(); });
  $('load-more').addEventListener('click', () => loadList(false));
  $('load-older').addEventListener('click', loadOlder);
  $('thread').addEventListener('scroll', () => {
    const t = $('thread');
    S.stuck = t.scrollHeight - t.scrollTop - t.clientHeight < 80;
  });
  $('status-select').addEventListener('change', (e) => setStatus(e.target.value));
  $('transcript-download').addEventListener('click', downloadTranscript);
  $('delete-chat').addEventListener('click', () => {
    $('delete-bar').hidden = false;
    $('delete-cancel').focus();
  });
  $('delete-cancel').addEventListener('click', () => {
    $('delete-bar').hidden = true;
    $('delete-chat').focus();
  });
  $('delete-confirm').addEventListener('click', deleteOpenChat);
  $('visitor-form').addEventListener('submit', saveVisitor);
  $('visitor-form').addEventListener('input', () => { S.visitorDirty = true; });
  $('reply-form').addEventListener('submit', (e) => { e.preventDefault(); sendReply(); });
  $('reply-box').addEventListener('input', onReplyInput);
  // The last keystrokes, within the input debounce, go with the page too.
  window.addEventListener('pagehide', () => {
    if (S.session && S.openId) saveDraft(S.openId, $('reply-box').value);
  });
  $('reply-box').addEventListener('paste', (e) => {
    const files = e.clipboardData && e.clipboardData.files;
    if (files && files.length) {
      e.preventDefault();
      addFiles(files);
    }
  });
  $('attach').addEventListener('click', () => $('reply-file').click());
  $('reply-file').addEventListener('change', (e) => {
    addFiles(e.target.files);
    e.target.value = '';
  });
  const view = $('chat-view');
  let depth = 0;
  const isFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
  view.addEventListener('dragenter', (e) => { if (isFiles(e)) { depth += 1; view.classList.add('dropping'); } });
  view.addEventListener('dragleave', () => { if (depth && !(depth -= 1)) view.classList.remove('dropping'); });
  view.addEventListener('dragover', (e) => { if (isFiles(e)) e.preventDefault(); });
  view.addEventListener('drop', (e) => {
    if (!isFiles(e)) return;
    e.preventDefault();
    depth = 0;
    view.classList.remove('dropping');
    addFiles(e.dataTransfer.files);
  });
  $('notify-toggle').addEventListener('change', onNotifyToggle);
  $('profile-form').addEventListener('submit', saveProfile);
  $('lb-close').addEventListener('click', () => closeLightbox());
  $('lb-prev').addEventListener('click', () => stepLightbox(-1));
  $('lb-next').addEventListener('click', () => stepLightbox(1));
  // A click on the dark backdrop (not the image or a control) closes, as in most viewers.
  $('lightbox').addEventListener('click', (e) => {
    if (e.target.classList.contains('lb-stage') || e.target.id === 'lightbox') closeLightbox();
  });
  $('email-pref').addEventListener('change', saveEmailPreference);
  $('hours-form').addEventListener('submit', saveHours);
  document.addEventListener('keydown', onKey);
  // Browsers only start audio after a gesture: wake it on the first one if sound is on.
  const unlock = () => {
    if (S.notify) {
      const ac = audio();
      if (ac && ac.state === 'suspended') ac.resume();
    }
  };
  document.addEventListener('pointerdown', unlock, { once: true });
  document.addEventListener('keydown', unlock, { once: true });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && S.openId) markRead(false);
  });
  // Relative times age.
  setInterval(() => {
    for (const t of document.querySelectorAll('time[data-rel]')) t.textContent = relative(t.dataset.rel);
  }, 30000);
}

function init() {
  bind();
  onAuthFailure(() => signOut(EXPIRED));
  S.notify = localStorage.getItem(NOTIFY_KEY) === '1';
  $('notify-toggle').checked = S.notify;
  readUrl();
  const session = loadSession();
  if (session && Date.parse(session.expiresAt) > Date.now()) startApp(session);
  else {
    if (session) sessionStorage.removeItem(SESSION_KEY);
    showLogin(session ? EXPIRED : '');
  }
}

init();
