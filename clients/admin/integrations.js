// The "Integrations" view of the admin page: webhook endpoints (create, edit, delete, rotate
// the secret, send a test), each one's delivery log, and redelivery. Shown for `#integrations`;
// it shares the token with admin.js through api.js.

import { gql } from './api.js';
import { h } from './dom.js';

const FIELDS = 'id url description events enabled disabledReason failingSince previousSecretUntil createdAt';
const LOG_FIELDS = 'id messageId eventType attempt success statusCode durationMs error responseBody createdAt';

const $ = (id) => document.getElementById(id);
let eventTypes = [];
const openLogs = new Set();

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

function errorBox(message) {
  return h('p', { class: 'error', role: 'alert', 'data-testid': 'webhook-error' }, message);
}

function eventBoxes(selected, prefix) {
  const box = h('fieldset', { class: 'wh-events' }, h('legend', {}, 'Events'));
  for (const name of eventTypes) {
    const input = h('input', { type: 'checkbox', value: name, checked: selected.includes(name), 'data-testid': `${prefix}-event-${name}` });
    box.append(h('label', { class: 'inline' }, input, ` ${name}`));
  }
  return box;
}

function checkedEvents(fieldset) {
  return [...fieldset.querySelectorAll('input[type=checkbox]:checked')].map((input) => input.value);
}

/** The secret, once: after creating an endpoint or rotating its secret. */
function secretNotice(secret, what) {
  const code = h('code', { class: 'wh-secret', 'data-testid': 'webhook-secret' }, secret);
  const copy = h('button', {
    type: 'button',
    onclick: () => navigator.clipboard && navigator.clipboard.writeText(secret),
  }, 'Copy');
  return h('div', { class: 'notice', role: 'status' },
    h('p', {}, `${what} Copy the signing secret now: it is not shown again.`),
    h('p', {}, code, ' ', copy));
}

function createForm(container) {
  const url = h('input', { type: 'url', placeholder: 'https://example.com/chatdesk-webhook', required: true, 'data-testid': 'webhook-url' });
  const description = h('input', { placeholder: 'What receives it (optional)', maxLength: 500, 'data-testid': 'webhook-description' });
  const events = eventBoxes(eventTypes, 'new');
  const result = h('div');
  const form = h('form', { class: 'wh-card', 'data-testid': 'webhook-create' },
    h('h3', {}, 'Add an endpoint'),
    h('label', {}, 'URL'), url,
    h('label', {}, 'Description'), description,
    events, result,
    h('button', { type: 'submit', class: 'primary', 'data-testid': 'webhook-create-submit' }, 'Add endpoint'));
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
  if (deliveries.length === 0) return h('p', { class: 'muted' }, 'No deliveries yet.');
  const head = h('tr', {}, ...['When', 'Event', 'Attempt', 'Result', 'Time', 'Response', ''].map((t) => h('th', {}, t)));
  const rows = deliveries.map((d) => {
    const result = d.statusCode != null ? String(d.statusCode) : 'no answer';
    const redeliver = h('button', {
      type: 'button',
      class: 'link',
      'data-testid': 'webhook-redeliver',
      onclick: async () => {
        await gql('mutation($d: UUID!) { redeliverWebhook(deliveryId: $d) }', { d: d.id });
        setTimeout(render, 1500);
      },
    }, 'Redeliver');
    return h('tr', { class: d.success ? 'wh-ok' : 'wh-fail', 'data-testid': 'webhook-delivery' },
      h('td', {}, when(d.createdAt)),
      h('td', { title: d.messageId }, d.eventType),
      h('td', {}, String(d.attempt)),
      h('td', { title: d.error || '' }, d.success ? `${result} ✓` : `${result} ✗`),
      h('td', {}, `${d.durationMs} ms`),
      h('td', {}, h('code', {}, (d.responseBody || d.error || '').slice(0, 200))),
      h('td', {}, redeliver));
  });
  return h('table', { class: 'wh-log' }, h('thead', {}, head), h('tbody', {}, ...rows));
}

function editForm(card, webhook) {
  const url = h('input', { type: 'url', value: webhook.url, required: true });
  const description = h('input', { value: webhook.description || '', maxLength: 500 });
  const events = eventBoxes(webhook.events, `edit-${webhook.id}`);
  const enabled = h('input', { type: 'checkbox', checked: webhook.enabled });
  const form = h('form', { class: 'wh-edit' },
    h('label', {}, 'URL'), url,
    h('label', {}, 'Description'), description,
    events,
    h('label', { class: 'inline' }, enabled, ' Enabled'),
    h('button', { type: 'submit', class: 'primary' }, 'Save'),
    ' ',
    h('button', { type: 'button', onclick: () => render() }, 'Cancel'));
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
    ? h('span', { class: 'badge wh-on' }, webhook.failingSince ? `Enabled, failing since ${when(webhook.failingSince)}` : 'Enabled')
    : h('span', { class: 'badge wh-off' }, 'Disabled');
  const node = h('article', { class: 'wh-card', 'data-testid': 'webhook' },
    h('h3', {}, h('span', { class: 'wh-url' }, webhook.url), ' ', status),
    webhook.description ? h('p', { class: 'muted' }, webhook.description) : null,
    h('p', {}, `Events: ${webhook.events.join(', ')}`),
    webhook.disabledReason ? h('p', { class: 'error', 'data-testid': 'webhook-disabled-reason' }, webhook.disabledReason) : null,
    webhook.previousSecretUntil ? h('p', { class: 'muted' }, `The previous secret also signs until ${when(webhook.previousSecretUntil)}.`) : null);
  const bar = h('div', { class: 'wh-actions' });
  const button = (text, testid, fn) => bar.append(h('button', { type: 'button', 'data-testid': testid, onclick: fn }, text), ' ');
  button('Send test', 'webhook-test', () => act(node, async (slot) => {
    await gql('mutation($w: UUID!) { sendTestWebhook(id: $w) }', { w: webhook.id });
    slot.replaceChildren(h('p', { class: 'muted', role: 'status' }, 'Test event queued; see the log.'));
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
  node.append(bar, h('div', { class: 'wh-result' }), h('div', { class: 'wh-edit-slot' }));
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
    if (data.webhooks.length === 0) list.append(h('p', { class: 'muted' }, 'No endpoints yet.'));
  } catch (error) {
    list.replaceChildren(errorBox(error.message));
  }
}

function build() {
  const view = $('integrations-view');
  view.replaceChildren(
    h('h2', {}, 'Integrations: webhooks'),
    h('p', { class: 'muted' }, 'Chatdesk posts events to these URLs, signed per the Standard Webhooks convention (webhook-id, webhook-timestamp, webhook-signature). Failed deliveries are retried for about 27 hours; an endpoint failing for 5 days is disabled.'),
    h('div', { id: 'wh-flash' }),
    h('div', { id: 'wh-create-slot' }),
    h('div', { id: 'wh-list', class: 'wh-list' }));
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
