// Child process for the cross-process concurrency test: records one event and prints the result.
// Usage: node --import tsx test/record/recorder-child.ts <gitDir> <index> <commit> <lock:0|1>
import { recordEvents } from '../../src/git/record.ts';
import { GIT_ENV, pushEvent } from './repo.ts';

const [gitDir, index, commit, lock] = process.argv.slice(2) as [string, string, string, string];
const ticketId = `20261129T0500${index.padStart(2, '0')}Z-c0ffee${index}`;
const r = await recordEvents(
  gitDir,
  [{ event: pushEvent(commit, commit, { ticketId }), commits: [commit] }],
  { env: GIT_ENV, lock: lock === '1' },
);
process.stdout.write(JSON.stringify(r));
