// The "Integrations" view of the admin page: webhook endpoints (create, edit, delete, rotate
// the secret, send a test), each one's delivery log, and redelivery. Shown for `#integrations`;
// it shares the token with admin.js through api.js.

import { gql } from './api.js';

const FIELDS = 'id url description events enabled disabledReason failingSince previousSecretUntil createdAt';
const LOG_FIELDS = 'id messageId eventType attempt success statusCode durationMs error responseBody createdAt';

const $ = (id) => document.getElementById(id);
let eventTypes = [];
const openLogs = new Set();

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('data-')) node.setAttribute(key, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

function errorBox(message) {
  return el('p', { class: 'error', role: 'alert', text: message, 'data-testid': 'webhook-error' });
}

function eventBoxes(selected, prefix) {
  const box = el('fieldset', { class: 'wh-events' }, el('legend', { text: 'Events' }));
  for (const name of eventTypes) {
    const input = el('input', { type: 'checkbox', value: name, checked: selected.includes(name) });
    input.setAttribute('data-testid', `${prefix}-event-${name}`);
    box.append(el('label', { class: 'inline' }, input, ` ${name}`));
  }
  return box;
}

function checkedEvents(fieldset) {
  return [...fieldset.querySelectorAll('input[type=checkbox]:checked')].map((input) => input.value);
}

/** The secret, once: after creating an endpoint or rotating its secret. */
function secretNotice(secret, what) {
  const code = el('code', { class: 'wh-secret', text: secret, 'data-testid': 'webhook-secret' });
  const copy = el('button', {
    type: 'button',
    text: 'Copy',
    onclick: () => navigator.clipboard && navigator.clipboard.writeText(secret),
  });
  return el('div', { class: 'notice', role: 'status' },
    el('p', { text: `${what} Copy the signing secret now: it is not shown again.` }),
    el('p', {}, code, ' ', copy));
}

function createForm(container) {
  const url = el('input', { type: 'url', placeholder: 'https://example.com/chatdesk-webhook', required: true, 'data-testid': 'webhook-url' });
  const description = el('input', { placeholder: 'What receives it (optional)', maxLength: 500, 'data-testid': 'webhook-description' });
  const events = eventBoxes(eventTypes, 'new');
  const result = el('div');
  const form = el('form', { class: 'wh-card', 'data-testid': 'webhook-create' },
    el('h3', { text: 'Add an endpoint' }),
    el('label', { text: 'URL' }), url,
    el('label', { text: 'Description' }), description,
    events, result,
    el('button', { type: 'submit', class: 'primary', text: 'Add endpoint', 'data-testid': 'webhook-create-submit' }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    result.replaceChildren();
    try {
      const data = await gql(
        `mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { webhook { id } secret } }`,
        { i: { url: url.value, events: checkedEvents(events), description: description.value || null } },
      );
      url.value = '';
      description.value = '';
      await render();
      $('wh-flash').replaceChildren(secretNotice(data.createWebhook.secret, 'Endpoint added.'));
    } catch (error) {
      result.replaceChildren(errorBox(error.message));
    }
  });
  container.append(form);
}

async function act(card, fn) {
  const slot = card.querySelector('.wh-result');
  slot.replaceChildren();
  try {
    await fn(slot);
  } catch (error) {
    slot.replaceChildren(errorBox(error.message));
  }
}

function logTable(webhook, deliveries) {
  if (deliveries.length === 0) return el('p', { class: 'muted', text: 'No deliveries yet.' });
  const head = el('tr', {}, ...['When', 'Event', 'Attempt', 'Result', 'Time', 'Response', ''].map((t) => el('th', { text: t })));
  const rows = deliveries.map((d) => {
    const result = d.statusCode != null ? String(d.statusCode) : 'no answer';
    const redeliver = el('button', {
      type: 'button',
      class: 'link',
      text: 'Redeliver',
      'data-testid': 'webhook-redeliver',
      onclick: async () => {
        await gql('mutation($d: UUID!) { redeliverWebhook(deliveryId: $d) }', { d: d.id });
        setTimeout(render, 1500);
      },
    });
    return el('tr', { class: d.success ? 'wh-ok' : 'wh-fail', 'data-testid': 'webhook-delivery' },
      el('td', { text: when(d.createdAt) }),
      el('td', { text: d.eventType, title: d.messageId }),
      el('td', { text: String(d.attempt) }),
      el('td', { text: d.success ? `${result} ✓` : `${result} ✗`, title: d.error || '' }),
      el('td', { text: `${d.durationMs} ms` }),
      el('td', {}, el('code', { text: (d.responseBody || d.error || '').slice(0, 200) })),
      el('td', {}, redeliver));
  });
  return el('table', { class: 'wh-log' }, el('thead', {}, head), el('tbody', {}, ...rows));
}

function editForm(card, webhook) {
  const url = el('input', { type: 'url', value: webhook.url, required: true });
  const description = el('input', { value: webhook.description || '', maxLength: 500 });
  const events = eventBoxes(webhook.events, `edit-${webhook.id}`);
  const enabled = el('input', { type: 'checkbox', checked: webhook.enabled });
  const form = el('form', { class: 'wh-edit' },
    el('label', { text: 'URL' }), url,
    el('label', { text: 'Description' }), description,
    events,
    el('label', { class: 'inline' }, enabled, ' Enabled'),
    el('button', { type: 'submit', class: 'primary', text: 'Save' }),
    ' ',
    el('button', { type: 'button', text: 'Cancel', onclick: () => render() }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    act(card, async () => {
      await gql(`mutation($w: UUID!, $i: UpdateWebhookInput!) { updateWebhook(id: $w, input: $i) { id } }`, {
        w: webhook.id,
        i: { url: url.value, events: checkedEvents(events), description: description.value || null, enabled: enabled.checked },
      });
      await render();
    });
  });
  return form;
}

function card(webhook) {
  const status = webhook.enabled
    ? el('span', { class: 'badge wh-on', text: webhook.failingSince ? `Enabled, failing since ${when(webhook.failingSince)}` : 'Enabled' })
    : el('span', { class: 'badge wh-off', text: 'Disabled' });
  const node = el('article', { class: 'wh-card', 'data-testid': 'webhook' },
    el('h3', {}, el('span', { class: 'wh-url', text: webhook.url }), ' ', status),
    webhook.description ? el('p', { class: 'muted', text: webhook.description }) : null,
    el('p', { text: `Events: ${webhook.events.join(', ')}` }),
    webhook.disabledReason ? el('p', { class: 'error', text: webhook.disabledReason, 'data-testid': 'webhook-disabled-reason' }) : null,
    webhook.previousSecretUntil ? el('p', { class: 'muted', text: `The previous secret also signs until ${when(webhook.previousSecretUntil)}.` }) : null);
  const bar = el('div', { class: 'wh-actions' });
  const button = (text, testid, fn) => bar.append(el('button', { type: 'button', text, 'data-testid': testid, onclick: fn }), ' ');
  button('Send test', 'webhook-test', () => act(node, async (slot) => {
    await gql('mutation($w: UUID!) { sendTestWebhook(id: $w) }', { w: webhook.id });
    slot.replaceChildren(el('p', { class: 'muted', role: 'status', text: 'Test event queued; see the log.' }));
    openLogs.add(webhook.id);
    setTimeout(render, 1500);
  }));
  button(openLogs.has(webhook.id) ? 'Hide log' : 'Delivery log', 'webhook-log', () => {
    if (openLogs.has(webhook.id)) openLogs.delete(webhook.id);
    else openLogs.add(webhook.id);
    render();
  });
  button('Edit', 'webhook-edit', () => {
    node.querySelector('.wh-edit-slot').replaceChildren(editForm(node, webhook));
  });
  button('Rotate secret', 'webhook-rotate', () => act(node, async () => {
    if (!confirm('Make a new signing secret? The old one keeps signing for 24 hours.')) return;
    const data = await gql('mutation($w: UUID!) { rotateWebhookSecret(id: $w) { secret } }', { w: webhook.id });
    await render();
    $('wh-flash').replaceChildren(secretNotice(data.rotateWebhookSecret.secret, 'Secret rotated.'));
  }));
  button('Delete', 'webhook-delete', () => act(node, async () => {
    if (!confirm(`Delete the endpoint ${webhook.url} and its log?`)) return;
    await gql('mutation($w: UUID!) { deleteWebhook(id: $w) }', { w: webhook.id });
    await render();
  }));
  node.append(bar, el('div', { class: 'wh-result' }), el('div', { class: 'wh-edit-slot' }));
  if (openLogs.has(webhook.id)) node.append(logTable(webhook, webhook.deliveries || []));
  return node;
}

async function render() {
  const view = $('integrations-view');
  const list = $('wh-list');
  if (!view || !list) return;
  try {
    const data = await gql(`{ webhookEventTypes webhooks { ${FIELDS} deliveries(first: 100) { ${LOG_FIELDS} } } }`);
    eventTypes = data.webhookEventTypes;
    if (!$('wh-create-slot').hasChildNodes()) createForm($('wh-create-slot'));
    list.replaceChildren(...data.webhooks.map(card));
    if (data.webhooks.length === 0) list.append(el('p', { class: 'muted', text: 'No endpoints yet.' }));
  } catch (error) {
    list.replaceChildren(errorBox(error.message));
  }
}

function build() {
  const view = $('integrations-view');
  view.replaceChildren(
    el('h2', { text: 'Integrations: webhooks' }),
    el('p', { class: 'muted', text: 'Chatdesk posts events to these URLs, signed per the Standard Webhooks convention (webhook-id, webhook-timestamp, webhook-signature). Failed deliveries are retried for about 27 hours; an endpoint failing for 5 days is disabled.' }),
    el('div', { id: 'wh-flash' }),
    el('div', { id: 'wh-create-slot' }),
    el('div', { id: 'wh-list', class: 'wh-list' }));
}

function route() {
  const app = $('app');
  const view = $('integrations-view');
  if (!app || !view) return;
  const on = location.hash === '#integrations';
  if (!on && view.hidden) return;
  app.classList.toggle('show-integrations', on);
  view.hidden = !on;
  $('nav-integrations').classList.toggle('active', on);
  $('nav-chats').classList.toggle('active', !on);
  if (on) {
    $('nav-integrations').setAttribute('aria-current', 'page');
    $('nav-chats').removeAttribute('aria-current');
    if (!view.hasChildNodes()) build();
    if (!app.hidden) render();
  } else {
    $('nav-integrations').removeAttribute('aria-current');
  }
}

window.addEventListener('hashchange', route);
// The link's hash may already be #integrations (no hashchange): show it anyway.
$('nav-integrations').addEventListener('click', (e) => {
  e.preventDefault();
  if (location.hash !== '#integrations') history.pushState(null, '', '#integrations');
  route();
});
// Signing in shows #app: load the endpoints then (a page opened at #integrations before
// signing in could not).
new MutationObserver(() => {
  if (!$('app').hidden && location.hash === '#integrations') render();
}).observe($('app'), { attributes: true, attributeFilter: ['hidden'] });
$('nav-chats').addEventListener('click', () => {
  if (location.hash === '#integrations') history.pushState(null, '', location.pathname + location.search);
  route();
});
route();
