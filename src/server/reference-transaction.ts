import { armedEntry, TX_STATES, writeTxMarker, type TxState } from './journal.ts';
import { readBounded, type HookInput } from './push-input.ts';
import { findReceivePack, type ProcessRef } from './receive-pack.ts';
import type { Sink } from './pre-receive.ts';

const TX_LINE = /^(?:[0-9a-f]{40}|[0-9a-f]{64}) (?:[0-9a-f]{40}|[0-9a-f]{64}) \S{1,1024}$/;

export interface ReferenceTransactionOptions {
  readonly gitDir: string;
  /** git's argument: prepared, committed or aborted. */
  readonly state: string;
  /** `<old> <new> <ref>` lines of the transaction. */
  readonly stdin: HookInput;
  readonly stderr: Sink;
  /** The receive-pack running this hook; default: found from this process's parent. */
  readonly receivePack?: ProcessRef | null;
}

// E2 (docs/threat-model.md): git's own word on each update of an accepted break-glass push.
/**
 * The reference-transaction hook: for a receive-pack that pre-receive armed (a break-glass push
 * it let through), writes down each transaction's state and updates under the entry's
 * journal/tx/ directory. The shim only starts Node when the arming file exists, so other ref
 * updates cost one `test -e`. In the `prepared` state a failure to write exits 1, which makes
 * git abort the update: an update git commits always has its `prepared` record (fail closed).
 */
export async function runReferenceTransaction(o: ReferenceTransactionOptions): Promise<number> {
  if (!TX_STATES.includes(o.state as TxState)) return 0; // a state a newer git may add: not ours
  const state = o.state as TxState;
  const rp = o.receivePack === undefined ? findReceivePack(process.ppid) : o.receivePack;
  try {
    const entry = await armedEntry(o.gitDir, rp);
    if (!entry) return 0;
    // Kept as git wrote them: only lines naming the entry's own updates ever match. git also
    // lists HEAD (a symbolic ref to the branch moved) and may list refs pre-receive never saw.
    const lines = (await readBounded(o.stdin)).split('\n').filter((l) => TX_LINE.test(l));
    if (lines.length) await writeTxMarker(o.gitDir, entry, state, lines);
    return 0;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (state === 'prepared') {
      o.stderr.write(
        `git-breakglass: cannot write down this break-glass update (${msg}); git refuses it (fail closed)\n`,
      );
      return 1;
    }
    o.stderr.write(
      `git-breakglass: warning: could not write down the ${state} state of this update (${msg}); the push's post-receive still records it\n`,
    );
    return 0;
  }
}
