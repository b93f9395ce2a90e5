// GraphQL over HTTP (JSON, and the multipart request spec for uploads) and over WebSocket
// (graphql-transport-ws), for the admin page. Same origin as the page: /graphql, /graphql/ws.

export const ENDPOINT = '/graphql';
export const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/ws`;

export class ApiError extends Error {
  constructor(message, code, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

let token = null;
let onUnauthenticated = () => {};

export function setToken(value) {
  token = value;
}

/** Called when the server refuses the admin's token: it expired or the password changed. */
export function onAuthFailure(fn) {
  onUnauthenticated = fn;
}

function headers(json) {
  const h = { 'Apollo-Require-Preflight': 'true' };
  if (json) h['Content-Type'] = 'application/json';
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

function settle(status, text) {
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: a proxy error page or a body-limit refusal
  }
  const error = body && body.errors && body.errors[0];
  if (error) {
    const ext = error.extensions || {};
    if (ext.code === 'UNAUTHENTICATED' && token) onUnauthenticated();
    throw new ApiError(error.message, ext.code || 'INTERNAL', ext);
  }
  if (body && body.data) return body.data;
  if (status === 413) throw new ApiError('The upload is larger than the server accepts.', 'FILE_TOO_LARGE');
  throw new ApiError(`The server answered ${status}.`, 'HTTP');
}

// Automatic persisted queries: the query's SHA-256 first, its text only when the server asks
// (crypto.subtle exists on https pages and localhost; elsewhere the text goes every time).
const hashes = new Map();
async function sha256(query) {
  if (!hashes.has(query)) {
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(query));
    hashes.set(query, [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''));
  }
  return hashes.get(query);
}

async function post(payload) {
  let response;
  try {
    response = await fetch(ENDPOINT, { method: 'POST', headers: headers(true), body: JSON.stringify(payload) });
  } catch {
    throw new ApiError('Could not reach the server.', 'NETWORK');
  }
  return settle(response.status, await response.text());
}

/** Runs one operation; resolves to `data`, rejects with an ApiError carrying `code`. */
export async function gql(query, variables = {}) {
  let extensions;
  try {
    extensions = { persistedQuery: { version: 1, sha256Hash: await sha256(query) } };
  } catch {
    return post({ query, variables });
  }
  try {
    return await post({ variables, extensions });
  } catch (error) {
    if (error.code !== 'PERSISTED_QUERY_NOT_FOUND') throw error;
    return post({ query, variables, extensions });
  }
}

/**
 * Runs an operation whose `variables.attachments` are files, as a multipart request
 * (operations, map, one part per file). XMLHttpRequest because fetch reports no upload progress.
 */
export function gqlUpload(query, variables, files, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    const vars = { ...variables, attachments: files.map(() => null) };
    form.append('operations', JSON.stringify({ query, variables: vars }));
    const map = {};
    files.forEach((_, i) => {
      map[i] = [`variables.attachments.${i}`];
    });
    form.append('map', JSON.stringify(map));
    files.forEach((file, i) => form.append(String(i), file, file.name));

    const xhr = new XMLHttpRequest();
    xhr.open('POST', ENDPOINT);
    for (const [name, value] of Object.entries(headers(false))) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      try {
        resolve(settle(xhr.status, xhr.responseText));
      } catch (error) {
        reject(error);
      }
    };
    xhr.onerror = () => reject(new ApiError('The upload was interrupted.', 'NETWORK'));
    xhr.send(form);
  });
}

/**
 * One graphql-transport-ws connection carrying any number of subscriptions; reconnects with
 * backoff and re-subscribes. `onState(up)` tells the page when to poll instead.
 */
export class Live {
  constructor({ getToken, onState, onRefused, onSubscriptionError }) {
    this.getToken = getToken;
    this.onState = onState;
    this.onRefused = onRefused;
    this.onSubscriptionError = onSubscriptionError || (() => {});
    this.subs = new Map();
    this.nextId = 1;
    this.ws = null;
    this.up = false;
    this.retryMs = 1000;
    this.timer = 0;
    this.stopped = true;
    this.pinger = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
    this.pinger = setInterval(() => this.send({ type: 'ping' }), 30000);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.subs.clear();
    const ws = this.ws;
    this.ws = null;
    this.setUp(false);
    if (ws) ws.close(1000);
  }

  setUp(up) {
    // "down" is reported after every failed attempt too, so the page starts polling even when
    // the socket never came up at all.
    if (this.up === up && up) return;
    this.up = up;
    if (!this.stopped) this.onState(up);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  connect() {
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(WS_URL, 'graphql-transport-ws');
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${this.getToken()}` } }));
    };
    ws.onmessage = (e) => {
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      const sub = message.id && this.subs.get(message.id);
      switch (message.type) {
        case 'connection_ack':
          this.retryMs = 1000;
          for (const [id, s] of this.subs) this.send({ id, type: 'subscribe', payload: { query: s.query, variables: s.variables } });
          this.setUp(true);
          break;
        case 'ping':
          this.send({ type: 'pong' });
          break;
        case 'next':
          if (sub && message.payload && message.payload.data) sub.next(message.payload.data);
          break;
        case 'error':
          // A refused subscription (say, a chat that no longer exists): forget it, and let
          // the page fall back to polling for what it carried.
          if (sub) {
            this.subs.delete(message.id);
            this.onSubscriptionError(message.id, message.payload);
          }
          break;
        default:
          break;
      }
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.setUp(false);
      // 4401/4403: the token was refused at connection_init.
      if (e.code === 4401 || e.code === 4403) this.onRefused();
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 30000);
  }

  /** Returns an id for unsubscribe(). */
  subscribe(query, variables, next) {
    const id = String(this.nextId++);
    this.subs.set(id, { query, variables, next });
    if (this.up) this.send({ id, type: 'subscribe', payload: { query, variables } });
    return id;
  }

  unsubscribe(id) {
    if (!this.subs.delete(id)) return;
    this.send({ id, type: 'complete' });
  }
}
