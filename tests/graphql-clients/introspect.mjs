// graphql-js against the server at argv[2]: the standard introspection query (every option on,
// as GraphiQL and codegen tools send it) → buildClientSchema → printSchema must equal the
// committed SDL (argv[3]) read by graphql-js, and findBreakingChanges must be empty both ways.
import { readFileSync } from 'node:fs';
import {
  buildClientSchema, buildSchema, findBreakingChanges, getIntrospectionQuery, printSchema,
} from 'graphql';

const [url, sdlPath] = process.argv.slice(2);
const query = getIntrospectionQuery({
  descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true,
  schemaDescription: true, inputValueDeprecation: true,
});
const response = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
  body: JSON.stringify({ query }),
});
const result = await response.json();
if (response.status !== 200 || result.errors) {
  console.log('introspection refused', response.status, JSON.stringify(result.errors));
  process.exit(1);
}
const live = buildClientSchema(result.data);
const committed = buildSchema(readFileSync(sdlPath, 'utf8'));
const printedLive = printSchema(live);
const printedCommitted = printSchema(committed);
let failed = false;
if (printedLive !== printedCommitted) {
  failed = true;
  const a = printedLive.split('\n'), b = printedCommitted.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) { console.log(`line ${i + 1}\n live:      ${a[i]}\n committed: ${b[i]}`); break; }
  }
}
for (const [from, to, label] of [[committed, live, 'committed → live'], [live, committed, 'live → committed']]) {
  // buildSchema keeps only the standard scalars an SDL references, introspection lists all
  // five: those are graphql-js's own built-ins, not a difference of ours.
  const changes = findBreakingChanges(from, to)
    .filter((change) => !change.description.startsWith('Standard scalar'));
  if (changes.length) { failed = true; console.log(label, JSON.stringify(changes)); }
}
console.log(failed ? 'schema differs' : `schema identical (${printedLive.length} characters)`);
process.exit(failed ? 1 : 0);
