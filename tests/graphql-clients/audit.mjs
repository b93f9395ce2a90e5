// graphql-http's GraphQL-over-HTTP conformance audits against the server at argv[2].
// Prints one line per audit ("ok|warn|error ID name: reason") and exits 1 on any MUST/SHOULD
// failure other than the warnings listed in the README.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
let failed = 0;
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  const reason = result.status === 'ok' ? '' : ': ' + result.reason;
  console.log(`${result.status} ${audit.id} ${audit.name}${reason}`);
  if (result.status === 'error') failed += 1;
}
process.exit(failed ? 1 : 0);
