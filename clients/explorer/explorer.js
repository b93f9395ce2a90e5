// The API explorer: a query, its variables and a token, sent to /graphql as JSON. Nothing is
// loaded from anywhere else; the token stays in this tab (sessionStorage).
const $ = (id) => document.getElementById(id);
const ENDPOINT = '/graphql';

const token = $('token');
token.value = sessionStorage.getItem('chatdesk-explorer-token') || '';
token.addEventListener('change', () => sessionStorage.setItem('chatdesk-explorer-token', token.value.trim()));

async function send(query, variables) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json' };
  if (token.value.trim()) headers.Authorization = 'Bearer ' + token.value.trim();
  const response = await fetch(ENDPOINT, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const text = await response.text();
  try { return { status: response.status, body: JSON.parse(text) }; } catch { return { status: response.status, body: text }; }
}

function show(value) {
  $('result').textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

async function run() {
  let variables;
  try { variables = JSON.parse($('variables').value || '{}'); } catch (error) { show('Variables are not JSON: ' + error.message); return; }
  show('…');
  try {
    const { status, body } = await send($('query').value, variables);
    show(status === 200 ? body : { status, body });
  } catch (error) { show('The request failed: ' + error.message); }
}

// The schema as a short text: each type with its fields and their types.
const SCHEMA = `{ __schema { types { name kind description fields { name type { ...T } args { name type { ...T } } } inputFields { name type { ...T } } enumValues { name } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }`;

function typeName(t) {
  if (t.kind === 'NON_NULL') return typeName(t.ofType) + '!';
  if (t.kind === 'LIST') return '[' + typeName(t.ofType) + ']';
  return t.name;
}

async function schema() {
  show('…');
  try {
    const { body } = await send(SCHEMA, {});
    if (!body.data) { show(body); return; }
    const lines = [];
    for (const t of body.data.__schema.types.filter((t) => !t.name.startsWith('__'))) {
      if (t.description) lines.push('# ' + t.description.split('\n').join('\n# '));
      lines.push(t.kind.toLowerCase() + ' ' + t.name);
      for (const f of t.fields || []) {
        const args = f.args.length ? '(' + f.args.map((a) => a.name + ': ' + typeName(a.type)).join(', ') + ')' : '';
        lines.push('  ' + f.name + args + ': ' + typeName(f.type));
      }
      for (const f of t.inputFields || []) lines.push('  ' + f.name + ': ' + typeName(f.type));
      for (const v of t.enumValues || []) lines.push('  ' + v.name);
      lines.push('');
    }
    show(lines.join('\n'));
  } catch (error) { show('The request failed: ' + error.message); }
}

$('run').addEventListener('click', run);
$('schema').addEventListener('click', schema);
document.addEventListener('keydown', (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === 'Enter') { event.preventDefault(); run(); }
});
