// bg-sign's contract with its user: key files, exit codes 0/1/2, one-line coded errors.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { reportError } from '../../src/cli/exit.ts';
import { colourEnabled, makeStyle, type Output } from '../../src/cli/output.ts';
import { BreakglassError } from '../../src/errors.ts';
import { decodeSigningKeyFile } from '../../src/ticket/keys.ts';
import { errorCode, hasStack, requestArgs, Sandbox } from './harness.ts';

describe('bg-sign keygen', () => {
  let sb: Sandbox;
  before(async () => (sb = await Sandbox.create()));
  after(() => sb.cleanup());

  it('writes the default key 0600 in a 0700 directory and prints the policy line and key id', async () => {
    const k = await sb.run(sb.dir, ['keygen']);
    assert.equal(k.code, 0, k.stderr);
    const path = join(sb.env.XDG_CONFIG_HOME!, 'breakglass', 'ed25519.key');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(sb.env.XDG_CONFIG_HOME!, 'breakglass')).mode & 0o777, 0o700);
    const key = decodeSigningKeyFile(readFileSync(path, 'utf8'));
    assert.ok(k.stdout.includes(key.publicKey.text), k.stdout);
    assert.ok(k.stdout.includes(key.publicKey.keyid));
    assert.match(key.publicKey.text, /^ed25519:[A-Za-z0-9+/]{43}=$/);
    assert.match(key.publicKey.keyid, /^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('refuses to overwrite without --force (KEY_EXISTS), replaces with it', async () => {
    const path = join(sb.env.XDG_CONFIG_HOME!, 'breakglass', 'ed25519.key');
    const before = readFileSync(path, 'utf8');
    const again = await sb.run(sb.dir, ['keygen']);
    assert.equal(again.code, 1);
    assert.equal(errorCode(again.stderr), 'KEY_EXISTS');
    assert.equal(readFileSync(path, 'utf8'), before);
    const forced = await sb.run(sb.dir, ['keygen', '--force', '--json']);
    assert.equal(forced.code, 0, forced.stderr);
    const j = JSON.parse(forced.stdout) as { path: string; publicKey: string; keyid: string };
    assert.equal(j.path, path);
    assert.notEqual(readFileSync(path, 'utf8'), before);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(decodeSigningKeyFile(readFileSync(path, 'utf8')).publicKey.text, j.publicKey);
  });

  it('--out writes elsewhere, also 0600', async () => {
    const out = join(sb.dir, 'bots', 'ci.key');
    const k = await sb.run(sb.dir, ['keygen', '--out', out]);
    assert.equal(k.code, 0, k.stderr);
    assert.equal(statSync(out).mode & 0o777, 0o600);
  });
});

describe('bg-sign errors and exit codes', () => {
  let sb: Sandbox;
  let repo: string;
  before(async () => {
    sb = await Sandbox.create();
    repo = (await sb.repos(['alice'])).alice!;
  });
  after(() => sb.cleanup());

  for (const [what, args] of [
    ['no command', []],
    ['an unknown command', ['frobnicate']],
    ['an unknown option', ['list', '--frob']],
    ['a missing required option', ['request', '--ref', 'main', '--action', 'push', '--ttl', '15m']],
    ['an invalid action', requestArgs([], { action: 'pushh' })],
    ['a bad duration', requestArgs([], { ttl: '15 minutes' })],
    ['a bad time', ['verify', '20261129T031200Z-7f3a9c', '--at', '2026-11-29 03:12']],
    ['a bad ticket id', ['show', '../../etc/passwd']],
    ['an unknown --commit revision', requestArgs([], { commit: 'no-such-branch' })],
  ] as const) {
    it(`exits 2 on ${what}, with one coded line and no stack trace`, async () => {
      const res = await sb.as('alice', repo, [...args]);
      assert.equal(res.code, 2, res.stdout + res.stderr);
      assert.match(res.stderr, /^bg-sign: [A-Z_]+: /);
      assert.ok(!hasStack(res.stderr), res.stderr);
      assert.equal(sb.git(repo, ['for-each-ref', 'refs/breakglass/']), '');
    });
  }

  it('--help on every command shows examples and exits 0', async () => {
    for (const cmd of [
      'keygen',
      'request',
      'approve',
      'verify',
      'show',
      'list',
      'revoke',
      'push',
      'fetch',
    ]) {
      const h = await sb.run(repo, [cmd, '--help']);
      assert.equal(h.code, 0, cmd);
      assert.match(h.stdout, /Examples:/, cmd);
    }
  });

  it('a missing key says how to make one (KEY_MISSING, exit 1)', async () => {
    const res = await sb.run(repo, requestArgs());
    assert.equal(res.code, 1);
    assert.equal(errorCode(res.stderr), 'KEY_MISSING');
    assert.match(res.stderr, /hint: .*bg-sign keygen/);
    assert.ok(!hasStack(res.stderr));
  });

  it('finds the key via --key, then BG_SIGN_KEY, then the XDG default file', async () => {
    // --key wins over BG_SIGN_KEY (mallory is in no policy, so using her key would fail).
    const viaFlag = await sb.run(repo, requestArgs(['--key', sb.key('alice')]), {
      BG_SIGN_KEY: sb.key('mallory'),
    });
    assert.equal(viaFlag.code, 0, viaFlag.stderr);
    const viaEnv = await sb.run(repo, requestArgs(), { BG_SIGN_KEY: sb.key('mallory') });
    assert.equal(errorCode(viaEnv.stderr), 'PRINCIPAL_UNKNOWN');
    mkdirSync(join(sb.env.XDG_CONFIG_HOME!, 'breakglass'), { recursive: true, mode: 0o700 });
    writeFileSync(
      join(sb.env.XDG_CONFIG_HOME!, 'breakglass', 'ed25519.key'),
      readFileSync(sb.key('dave')),
      {
        mode: 0o600,
      },
    );
    const viaDefault = await sb.run(repo, requestArgs(['--json']));
    assert.equal(viaDefault.code, 0, viaDefault.stderr);
    assert.equal(
      (JSON.parse(viaDefault.stdout) as { payload: { requester: string } }).payload.requester,
      'dave',
    );
  });

  it('refuses a requester without a requester role (REQUESTER_ROLE)', async () => {
    const res = await sb.as('bob', repo, requestArgs());
    assert.equal(res.code, 1);
    assert.equal(errorCode(res.stderr), 'REQUESTER_ROLE');
  });

  it('uses the configured git identity for ticket commits when there is one', async () => {
    sb.git(repo, ['config', 'user.name', 'Alice Example']);
    sb.git(repo, ['config', 'user.email', 'alice@example.com']);
    const res = await sb.as('alice', repo, requestArgs());
    assert.equal(res.code, 0, res.stderr);
    const ref = `refs/breakglass/tickets/${res.stdout.trim()}`;
    assert.equal(
      sb.git(repo, ['log', '-1', '--format=%an <%ae>', ref]),
      'Alice Example <alice@example.com>',
    );
  });

  it('outside a repository: exit 1, one coded line', async () => {
    const res = await sb.as('alice', sb.dir, ['list']);
    assert.equal(res.code, 1);
    assert.equal(errorCode(res.stderr), 'GIT_FAILED');
    assert.ok(!hasStack(res.stderr));
  });

  it('a broken policy is POLICY_INVALID naming the line; no policy anywhere is POLICY_MISSING', async () => {
    const bad = join(sb.dir, 'bad.yml');
    writeFileSync(bad, 'version: 1\nrepository: [\n');
    const res = await sb.as('alice', repo, ['list', '--policy', bad]);
    assert.equal(res.code, 1);
    assert.equal(errorCode(res.stderr), 'POLICY_INVALID');
    const lonely = join(sb.dir, 'lonely');
    sb.git(sb.dir, ['init', '-q', lonely]);
    const none = await sb.as('alice', lonely, ['list']);
    assert.equal(none.code, 1);
    assert.equal(errorCode(none.stderr), 'POLICY_MISSING');
  });

  it('a key file that is a directory is KEY_INVALID, not a crash', async () => {
    const dir = join(sb.dir, 'dir.key');
    mkdirSync(dir);
    const res = await sb.run(repo, requestArgs(['--key', dir]));
    assert.equal(res.code, 1);
    assert.equal(errorCode(res.stderr), 'KEY_INVALID');
    assert.ok(!hasStack(res.stderr), res.stderr);
  });
});

describe('error report', () => {
  function capture(): { output: Output; lines: string[] } {
    const lines: string[] = [];
    const style = makeStyle(false);
    return {
      lines,
      output: {
        out: (t) => lines.push(t),
        err: (t) => lines.push(t),
        json: (v) => lines.push(JSON.stringify(v)),
        style,
        errStyle: style,
      },
    };
  }

  it('coded errors: one line `bg-sign: CODE: message` plus the hint, exit 1 (USAGE: 2)', () => {
    const c = capture();
    const code = reportError(
      new BreakglassError('TICKET_EXPIRED', 'it expired', { hint: 'ask again' }),
      c.output,
      {},
    );
    assert.equal(code, 1);
    assert.deepEqual(c.lines, ['bg-sign: TICKET_EXPIRED: it expired', '  hint: ask again']);
    assert.equal(reportError(new BreakglassError('USAGE', 'bad'), capture().output, {}), 2);
  });

  it('unexpected errors: a short line, the stack only with BG_DEBUG=1', () => {
    const quiet = capture();
    assert.equal(reportError(new TypeError('x is undefined'), quiet.output, {}), 1);
    assert.equal(quiet.lines[0], 'bg-sign: unexpected error: x is undefined');
    assert.ok(!hasStack(quiet.lines.join('\n')));
    const loud = capture();
    reportError(new TypeError('x is undefined'), loud.output, { BG_DEBUG: '1' });
    assert.ok(hasStack(loud.lines.join('\n')));
  });
});

describe('colour', () => {
  it('only on a TTY, and NO_COLOR or TERM=dumb turn it off', () => {
    assert.equal(colourEnabled(true, {}), true);
    assert.equal(colourEnabled(false, {}), false);
    assert.equal(colourEnabled(undefined, {}), false);
    assert.equal(colourEnabled(true, { NO_COLOR: '1' }), false);
    assert.equal(colourEnabled(true, { TERM: 'dumb' }), false);
    assert.equal(makeStyle(false).red('x'), 'x');
    assert.equal(makeStyle(true).red('x'), '\x1b[31mx\x1b[39m');
  });
});
