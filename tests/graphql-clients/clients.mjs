// Client libraries we did not write, against the server at argv[2] (http://host:port):
// Apollo Client 4 with apollo-upload-client and automatic persisted queries, urql with its
// defaults (queries by GET), graphql-ws and subscriptions-transport-ws (a visitor hears an
// admin's reply). Prints "ok <check>" or "FAIL <check>: <why>" per check; exits 1 on a failure.
// The admin's credentials come from CHATDESK_ADMIN_EMAIL / CHATDESK_ADMIN_PASSWORD.
import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';
import { Client as UrqlClient, cacheExchange, fetchExchange } from '@urql/core';
import { createClient as createWsClient } from 'graphql-ws';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';

const base = process.argv[2];
const endpoint = base + '/graphql';
const wsEndpoint = base.replace(/^http/, 'ws') + '/graphql/ws';
let failures = 0;

async function check(name, fn) {
  try {
    await fn();
    console.log('ok ' + name);
  } catch (error) {
    failures += 1;
    console.log(`FAIL ${name}: ${error && error.stack ? error.stack.split('\n').slice(0, 3).join(' | ') : error}`);
  }
}

function assert(condition, why) {
  if (!condition) throw new Error(why);
}

// Every request a library sends, as the server saw it.
const sent = [];
async function recordingFetch(url, options = {}) {
  let operations = options.body;
  if (operations instanceof FormData) operations = operations.get('operations');
  if (!operations && typeof url === 'string' && url.includes('?')) {
    const params = new URL(url).searchParams;
    operations = JSON.stringify({ query: params.get('query'), extensions: JSON.parse(params.get('extensions') || 'null') });
  }
  const response = await fetch(url, options);
  const text = await response.clone().text();
  let parsed = null;
  try { operations = JSON.parse(operations); } catch { operations = null; }
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  sent.push({ method: options.method || 'GET', multipart: options.body instanceof FormData, operations, status: response.status, response: parsed });
  return response;
}

async function post(query, variables, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = 'Bearer ' + token;
  const response = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  assert(!body.errors, JSON.stringify(body.errors));
  return body.data;
}

const START = 'mutation Start($name: String) { startChat(input: { visitorName: $name }) { chatToken chat { id } } }';
const SEND = 'mutation Send($chatId: UUID!, $body: String) { sendMessage(chatId: $chatId, body: $body) { id } }';

async function adminToken() {
  const data = await post('mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }',
    { e: process.env.CHATDESK_ADMIN_EMAIL, p: process.env.CHATDESK_ADMIN_PASSWORD });
  return data.login.token;
}

const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');

await check('apollo-client-upload-apq', async () => {
  let token = null;
  const auth = new ApolloLink((operation, forward) => {
    if (token) operation.setContext(({ headers = {} }) => ({ headers: { ...headers, authorization: 'Bearer ' + token } }));
    return forward(operation);
  });
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: ApolloLink.from([
      new PersistedQueryLink({ sha256: (text) => createHash('sha256').update(text).digest('hex') }),
      auth,
      new UploadHttpLink({ uri: endpoint, fetch: recordingFetch, headers: { 'Apollo-Require-Preflight': 'true' } }),
    ]),
  });
  const started = await client.mutate({ mutation: gql(START), variables: { name: 'Apollo' } });
  token = started.data.startChat.chatToken;
  const chatId = started.data.startChat.chat.id;
  const files = [
    new File([PNG], 'dot.png', { type: 'image/png' }),
    new File(['two files, one message\n'], 'note.txt', { type: 'text/plain' }),
  ];
  const sentMessage = await client.mutate({
    mutation: gql`mutation SendFiles($chatId: UUID!, $body: String, $files: [Upload!]) {
      sendMessage(chatId: $chatId, body: $body, attachments: $files) { id attachments { name mimeType url } } }`,
    variables: { chatId, body: 'with files', files },
  });
  const attachments = sentMessage.data.sendMessage.attachments;
  assert(attachments.map((a) => a.name).join() === 'dot.png,note.txt', JSON.stringify(attachments));
  assert(attachments[0].mimeType === 'image/png', JSON.stringify(attachments));
  // The link is built on the public URL, which need not be where this server listens.
  const link = new URL(attachments[1].url, base);
  const text = await (await fetch(base + link.pathname + link.search, { headers: { authorization: 'Bearer ' + token } })).text();
  assert(text === 'two files, one message\n', 'the text file came back as ' + JSON.stringify(text));
  // Read back twice: the second read is sent as the hash alone and answered.
  const HISTORY = gql`query History($id: UUID!) { chat(id: $id) { messages { edges { node { body attachments { name } } } } } }`;
  for (let i = 0; i < 2; i++) {
    const { data } = await client.query({ query: HISTORY, variables: { id: chatId }, fetchPolicy: 'network-only' });
    const nodes = data.chat.messages.edges.map((edge) => edge.node);
    assert(nodes.some((n) => n.body === 'with files' && n.attachments.length === 2), JSON.stringify(nodes));
  }
  const hashOnly = sent.filter((r) => r.operations && !r.operations.query && r.operations.extensions?.persistedQuery);
  assert(hashOnly.some((r) => r.response?.errors?.[0]?.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND'), 'no PersistedQueryNotFound seen');
  assert(hashOnly.some((r) => r.response?.data?.chat), 'no query answered by its hash alone');
  assert(sent.some((r) => r.multipart && r.status === 200), 'no multipart request');
});

await check('urql-get', async () => {
  const before = sent.length;
  const client = new UrqlClient({ url: endpoint, exchanges: [cacheExchange, fetchExchange], fetch: recordingFetch });
  const result = await client.query('query Policy { uploadPolicy { maxFiles allowedExtensions } }', {}).toPromise();
  assert(!result.error, String(result.error));
  assert(result.data.uploadPolicy.maxFiles > 0, JSON.stringify(result.data));
  const requests = sent.slice(before);
  assert(requests.length === 1 && requests[0].method === 'GET', JSON.stringify(requests));
});

// A visitor subscribes to its chat; the admin replies by HTTP; the visitor hears it.
async function hearsReply(subscribe) {
  const { startChat } = await post(START, { name: 'Socket' });
  const chatId = startChat.chat.id;
  const admin = await adminToken();
  const reply = 'reply ' + Math.random().toString(36).slice(2);
  const heard = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no event within 10 s')), 10_000);
    const stop = subscribe(startChat.chatToken, chatId, (event) => {
      if (event?.data?.chatEvents?.message?.body === reply) {
        clearTimeout(timer);
        stop();
        resolve();
      }
    }, reject);
  });
  // Give the subscription a moment to be registered before the reply is sent.
  await new Promise((resolve) => setTimeout(resolve, 500));
  await post(SEND, { chatId, body: reply }, admin);
  await heard;
}

const EVENTS = 'subscription Events($chatId: UUID!) { chatEvents(chatId: $chatId) { kind message { body sender } } }';

await check('graphql-ws', () => hearsReply((token, chatId, onEvent, onError) => {
  const client = createWsClient({ url: wsEndpoint, webSocketImpl: WebSocket, connectionParams: { authorization: 'Bearer ' + token } });
  const unsubscribe = client.subscribe({ query: EVENTS, variables: { chatId } }, { next: onEvent, error: onError, complete: () => {} });
  return () => { unsubscribe(); client.dispose(); };
}));

await check('subscriptions-transport-ws', () => hearsReply((token, chatId, onEvent, onError) => {
  const client = new SubscriptionClient(wsEndpoint, { connectionParams: { authorization: 'Bearer ' + token } }, WebSocket);
  const subscription = client.request({ query: EVENTS, variables: { chatId } }).subscribe({ next: onEvent, error: onError });
  return () => { subscription.unsubscribe(); client.close(); };
}));

// A multipart post without the CSRF header is refused; Node's fetch, still writing the body,
// must read that refusal (not "fetch failed" on a broken pipe).
await check('csrf-refusal-readable', async () => {
  const form = new FormData();
  form.append('operations', JSON.stringify({ query: '{ __typename }' }));
  form.append('map', '{}');
  form.append('0', new File([new Uint8Array(2 * 1024 * 1024)], 'big.pdf'));
  const response = await fetch(endpoint, { method: 'POST', body: form });
  const body = await response.json();
  assert(response.status === 400, 'status ' + response.status);
  assert(body.errors[0].extensions.code === 'BAD_USER_INPUT', JSON.stringify(body));
});

process.exit(failures ? 1 : 0);
