// Adversarial harness: hostile tickets, refs and pushes driven through the REAL installed hook
// with REAL `git push` (file:// unless a case says otherwise). Every hostile case goes through
// `hostile()`, which asserts the three things a refusal must show: the push failed, the hook
// named the expected error code (and rule), and the server is byte-for-byte what it was: refs
// (protected branches, tickets, revocations, reviews, consumed/, refs/notes/breakglass) and
// every file under $GIT_DIR/breakglass/ (reservations, journal), compared by content hash.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ERROR_CODES } from '../../src/errors.ts';
import { pae } from '../../src/ticket/dsse.ts';
import { signEd25519, type SigningKey } from '../../src/ticket/keys.ts';
import { TICKET_PAYLOAD_TYPE } from '../../src/ticket/payload.ts';
import { formatTicketId } from '../../src/ticket/sign.ts';
import { formatTime } from '../../src/ticket/time.ts';
import { keys, policyYaml, testKey } from '../helpers/fixtures.ts';
import {
  run,
  TestServer,
  type DevClone,
  type RunResult,
  type ServerOptions,
  type User,
} from '../helpers/server.ts';

export { keys };
export const carol2 = testKey('carol-second-laptop');
export const ZERO = '0'.repeat(40);

export interface PolicyTweaks {
  readonly approvals?: number;
  /** Give carol a second key (carol2): one person, two keys. */
  readonly carolTwoKeys?: boolean;
  /** Extra protected patterns, added to the fixture's main and release/*. */
  readonly protect?: readonly string[];
  /** Replaces the whole policy text (YAML bombs and other broken policies). */
  readonly raw?: string;
}

/** The fixture policy (alice oncall with two keys, bob/carol approvers, dave oncall, merge-bot). */
export function adversarialPolicy(t: PolicyTweaks = {}): string {
  if (t.raw !== undefined) return t.raw;
  let text = policyYaml({ approvals: t.approvals ?? 1 });
  if (t.carolTwoKeys) {
    text = text.replace(
      `keys: ["${keys.carol.publicKey.text}"]`,
      `keys: ["${keys.carol.publicKey.text}", "${carol2.publicKey.text}"]`,
    );
  }
  if (t.protect?.length) {
    const extra = t.protect.map((p) => `, "${p}"`).join('');
    text = text.replace('"refs/heads/release/*"]', `"refs/heads/release/*"${extra}]`);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Crafting tickets byte by byte (the attacker does not use our library's happy path).

/** A fresh, well-formed ticket id created `now`. */
export function newId(now = Date.now()): string {
  return formatTicketId(now, randomBytes(5).toString('hex'));
}

export interface PayloadSpec {
  id?: string;
  repository?: string;
  requester?: string;
  holder?: string;
  refs?: string[];
  actions?: string[];
  commits?: string[];
  reason?: string;
  /** Times as epoch ms (formatted strictly) or as raw strings (for malformed times). */
  issuedAt?: number | string;
  notBefore?: number | string;
  expiresAt?: number | string;
  maxUses?: number;
}

/**
 * The JSON object of a v1 ticket payload, valid by default: alice for alice on main, push, issued
 * a second ago, 15 minutes. Fields in the order bg-sign writes them.
 */
export function payloadObject(s: PayloadSpec = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000) * 1000 - 1000;
  const t = (v: number | string | undefined, d: number) =>
    typeof v === 'string' ? v : formatTime(v ?? d);
  const issued = s.issuedAt ?? now;
  const nb = s.notBefore ?? issued;
  return {
    type: 'git-breakglass/ticket',
    version: 1,
    id: s.id ?? newId(),
    repository: s.repository ?? 'acme/api',
    requester: s.requester ?? 'alice',
    holder: s.holder ?? 'alice',
    scope: {
      refs: s.refs ?? ['refs/heads/main'],
      actions: s.actions ?? ['push'],
      ...(s.commits ? { commits: s.commits } : {}),
    },
    reason: s.reason ?? 'INC-4711 payment outage hotfix',
    issuedAt: t(issued, now),
    notBefore: t(nb, now),
    expiresAt: t(s.expiresAt, (typeof nb === 'number' ? nb : now) + 15 * 60_000),
    maxUses: s.maxUses ?? 1,
    nonce: randomBytes(16).toString('base64'),
  };
}

export interface RawSig {
  readonly keyid: string;
  readonly sig: string;
}

/** An Ed25519 signature over PAE(type, payload) (or over `message` when given: PAE confusion). */
export function sig(key: SigningKey, type: string, payload: Buffer, message?: Buffer): RawSig {
  return {
    keyid: key.publicKey.keyid,
    sig: signEd25519(key, message ?? pae(type, payload)).toString('base64'),
  };
}

/** An envelope's JSON text from its parts (no validation: hostile envelopes are the point). */
export function envelopeText(type: string, payload: Buffer, sigs: readonly RawSig[]): string {
  return (
    JSON.stringify(
      { payloadType: type, payload: payload.toString('base64'), signatures: sigs },
      null,
      2,
    ) + '\n'
  );
}

/** A crafted ticket committed in a clone: push `refspec` to store it on the server. */
export type Stored = Crafted & { readonly commit: string; readonly refspec: string };

/** A ticket signed by `signers` (alice + bob by default), stored in the clone; push `commit`. */
export async function storedTicket(
  arena: Arena,
  dev: DevClone,
  spec: PayloadSpec = {},
  signers: readonly SigningKey[] = [keys.alice, keys.bob],
): Promise<Stored> {
  const t = craftTicket(payloadObject(spec), signers);
  const commit = await arena.envelopeCommit(dev, t.text);
  return { ...t, commit, refspec: `${commit}:refs/breakglass/tickets/${t.id}` };
}

export interface Crafted {
  readonly id: string;
  readonly payload: Buffer;
  readonly text: string;
}

/** A ticket payload (object or exact bytes) signed over PAE by `signers`, as ticket.json text. */
export function craftTicket(
  p: Record<string, unknown> | Buffer,
  signers: readonly SigningKey[],
  type = TICKET_PAYLOAD_TYPE,
): Crafted {
  const payload = Buffer.isBuffer(p) ? p : Buffer.from(JSON.stringify(p));
  const id = Buffer.isBuffer(p) ? '' : String(p.id);
  return {
    id,
    payload,
    text: envelopeText(
      type,
      payload,
      signers.map((k) => sig(k, type, payload)),
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// The arena: one server with hooks, clones for the cast, and the hostile-push assertion.

export interface Snapshot {
  readonly refs: string;
  readonly state: Record<string, string>;
}

/** Codes the hook printed: `- CODE (RULE): ...` lines and `push rejected: CODE: ...` lines. */
export function reportedCodes(stderr: string): { code: string; rule: string }[] {
  const out: { code: string; rule: string }[] = [];
  for (const m of stderr.matchAll(/^remote: +- ([A-Z_]+) \(([A-Za-z0-9]*)\):/gm)) {
    out.push({ code: m[1]!, rule: m[2]! });
  }
  for (const m of stderr.matchAll(/^remote: git-breakglass: push rejected: ([A-Z_]+):/gm)) {
    out.push({ code: m[1]!, rule: '' });
  }
  return out;
}

export interface Expect {
  /** The error code the hook must name. */
  readonly code: (typeof ERROR_CODES)[number];
  /** The rule it must cite with it (docs/rules.md, docs/threat-model.md). */
  readonly rule?: string;
  /** Other codes that may legitimately appear alongside (default: none: no wrong reasons). */
  readonly also?: readonly string[];
}

export class Arena {
  readonly dev = new Map<User, DevClone>();
  private constructor(readonly server: TestServer) {}

  /** A server (hooks installed, policy pinned unless `pin: false`) and clones for `users`. */
  static async create(
    o: ServerOptions & { tweaks?: PolicyTweaks; users?: readonly User[] } = {},
  ): Promise<Arena> {
    const server = await TestServer.create({ ...o, policy: adversarialPolicy(o.tweaks) });
    const a = new Arena(server);
    try {
      for (const u of o.users ?? ['alice', 'bob']) a.dev.set(u, await server.clone(u));
    } catch (e) {
      await server.close();
      throw e;
    }
    return a;
  }

  get alice(): DevClone {
    return this.dev.get('alice')!;
  }
  get bob(): DevClone {
    return this.dev.get('bob')!;
  }

  async close(): Promise<void> {
    await this.server.close();
  }

  /** Refs plus a content hash of every file the hook keeps under $GIT_DIR/breakglass/. */
  async snapshot(): Promise<Snapshot> {
    const state = await this.server.walkState(
      async (p) =>
        createHash('sha256')
          .update(await readFile(p))
          .digest('hex'),
      { dirs: 'dir' },
    );
    return { refs: await this.server.refs(), state };
  }

  /** The server's tip of a ref (throws if missing). */
  async tip(ref = 'refs/heads/main'): Promise<string> {
    const sha = await this.server.ref(ref);
    assert.ok(sha, `${ref} exists on the server`);
    return sha;
  }

  /** Fetches everything the server has into the clone under refs/srv/* (objects to build on). */
  async sync(dev: DevClone): Promise<void> {
    await dev.git(['fetch', '-q', dev.url, '+refs/*:refs/srv/*'], { check: true });
  }

  /**
   * A new commit on top of the server's `ref` (or `parent`) changing one file (exact bytes when
   * `content` is a Buffer; `remove`: deleting it); `orphan`: no parent.
   */
  async commitOn(
    dev: DevClone,
    o: {
      ref?: string;
      parent?: string;
      file?: string;
      content?: string | Buffer;
      remove?: boolean;
      orphan?: boolean;
    } = {},
  ): Promise<string> {
    const parent = o.parent ?? (await this.tip(o.ref));
    await this.sync(dev);
    const idx = join(dev.dir, '.git', `adv-index-${randomBytes(4).toString('hex')}`);
    const env = { ...dev.env, GIT_INDEX_FILE: idx };
    const g = (args: string[], input?: string) =>
      run('git', args, { cwd: dev.dir, env, check: true, ...(input ? { input } : {}) });
    await g(['read-tree', parent]);
    const file = o.file ?? `adv/${randomBytes(4).toString('hex')}.txt`;
    if (o.remove) {
      await g(['update-index', '--force-remove', file]);
    } else {
      const content = o.content ?? `hostile ${file}\n`;
      const blob = Buffer.isBuffer(content)
        ? await hashObject(dev, content)
        : (await g(['hash-object', '-w', '--stdin'], content)).stdout.trim();
      await g(['update-index', '--add', '--cacheinfo', `100644,${blob},${file}`]);
    }
    const tree = (await g(['write-tree'])).stdout.trim();
    // An orphan shares the tree but not the history: pushing it over main is a force push.
    const parents = o.orphan ? [] : ['-p', parent];
    return (
      await g(['commit-tree', tree, ...parents, '-m', `hostile change ${file}`])
    ).stdout.trim();
  }

  /**
   * A commit in the clone whose tree holds `file` with exactly `bytes` (ticket.json,
   * revocation.json, review.json), with optional parents. Returns its id (push it by id).
   */
  async envelopeCommit(
    dev: DevClone,
    bytes: string | Buffer,
    o: { file?: string; parents?: readonly string[] } = {},
  ): Promise<string> {
    const blob = await hashObject(dev, bytes);
    const tree = (
      await dev.git(['mktree'], {
        check: true,
        input: `100644 blob ${blob}\t${o.file ?? 'ticket.json'}\n`,
      })
    ).stdout.trim();
    const parents = (o.parents ?? []).flatMap((p) => ['-p', p]);
    return (
      await dev.git(['commit-tree', tree, ...parents, '-m', 'hostile envelope'], { check: true })
    ).stdout.trim();
  }

  /** Runs `git push` from a clone, optionally as another login (REMOTE_USER over file://). */
  push(
    dev: DevClone,
    refspecs: readonly string[],
    o: {
      tickets?: readonly string[];
      options?: readonly string[];
      as?: string;
      env?: NodeJS.ProcessEnv;
    } = {},
  ): Promise<RunResult> {
    const opts = [...(o.tickets ?? []).map((t) => `breakglass=${t}`), ...(o.options ?? [])].flatMap(
      (v) => ['-o', v],
    );
    const env = { ...dev.env, ...(o.as ? { REMOTE_USER: o.as } : {}), ...o.env };
    return run('git', ['push', '--porcelain', ...opts, dev.url, ...refspecs], {
      cwd: dev.dir,
      env,
    });
  }

  /** Pushes a set-up step that must be accepted. */
  async setup(
    dev: DevClone,
    refspecs: readonly string[],
    o: { tickets?: string[]; as?: string } = {},
  ) {
    const r = await this.push(dev, refspecs, o);
    assert.equal(r.code, 0, `set-up push ${refspecs.join(' ')} was refused:\n${r.stderr}`);
    return r;
  }

  /**
   * The hostile-case assertion: the push is refused by the pre-receive hook, which names
   * `e.code` (and `e.rule`) and no other code unless listed in `e.also`, and nothing on the
   * server changed.
   */
  async hostile(push: () => Promise<RunResult>, e: Expect): Promise<RunResult> {
    const before = await this.snapshot();
    const r = await push();
    const after = await this.snapshot();
    assert.notEqual(r.code, 0, `the hostile push was ACCEPTED:\n${r.stdout}\n${r.stderr}`);
    // --porcelain reports `[remote rejected] (pre-receive hook declined)` on stdout.
    assert.match(
      r.stdout,
      /pre-receive hook declined/,
      `not refused by the hook:\n${r.stdout}\n${r.stderr}`,
    );
    const codes = reportedCodes(r.stderr);
    assert.ok(
      codes.some((c) => c.code === e.code && (e.rule === undefined || c.rule === e.rule)),
      `expected ${e.code}${e.rule ? ` (${e.rule})` : ''}, the hook said:\n${r.stderr}`,
    );
    const allowed = new Set([e.code, ...(e.also ?? [])]);
    const wrong = codes.filter((c) => !allowed.has(c.code as Expect['code']));
    assert.deepEqual(wrong, [], `refused, but also for other reasons:\n${r.stderr}`);
    assert.deepEqual(after.refs, before.refs, 'a refused push changed refs');
    assert.deepEqual(after.state, before.state, 'a refused push changed reservations/journal');
    return r;
  }
}

async function hashObject(dev: DevClone, bytes: string | Buffer): Promise<string> {
  // run() writes `input` as a string; binary payloads go through a temp file instead.
  if (typeof bytes === 'string') {
    return (
      await dev.git(['hash-object', '-w', '--stdin'], { check: true, input: bytes })
    ).stdout.trim();
  }
  const { writeFile, rm } = await import('node:fs/promises');
  const file = join(dev.dir, '.git', `adv-blob-${randomBytes(4).toString('hex')}`);
  await writeFile(file, bytes);
  try {
    return (await dev.git(['hash-object', '-w', file], { check: true })).stdout.trim();
  } finally {
    await rm(file, { force: true });
  }
}
