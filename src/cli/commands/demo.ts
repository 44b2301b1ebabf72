import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { BreakglassError } from '../../errors.ts';
import type { Output } from '../output.ts';
import { cliFor, defineCommand } from '../options.ts';

// `bg-sign demo`: DESIGN §1 acted out with the real CLI, real hooks and real `git push`es in a
// throwaway folder. Every step checks its own outcome, so the demo doubles as a smoke test.

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface Person {
  readonly name: string;
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
}

function exec(
  cmd: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/** The file this process runs from (through any symlink); the hooks must exec the same bundle. */
function bundlePath(): string {
  const script = process.argv[1] ? realpathSync(process.argv[1]) : '';
  if (!script || /\.(c|m)?ts$/.test(script)) {
    throw new BreakglassError('USAGE', 'the demo runs from the built bundle', {
      hint: 'npm run demo (= npm run build && node dist/bg-sign.js demo)',
    });
  }
  return script;
}

class Demo {
  private step = 0;

  constructor(
    private readonly out: Output,
    private readonly bundle: string,
  ) {}

  private get s() {
    return this.out.style;
  }

  heading(title: string, story: string): void {
    this.step++;
    this.out.out('');
    this.out.out(this.s.bold(`Step ${this.step}. ${title}`));
    this.out.out(this.s.dim(`  ${story}`));
  }

  /** Runs a command as a person, prints it and its output, and checks the outcome. */
  async run(
    who: Person,
    display: string,
    cmd: string,
    args: readonly string[],
    expect: 'ok' | 'fail',
    show: 'all' | 'stdout' | 'none' = 'all',
    mustSay?: RegExp,
  ): Promise<Result> {
    this.out.out(`  ${this.s.cyan(`${who.name}$`)} ${display}`);
    const r = await exec(cmd, args, who.dir, who.env);
    const text = show === 'none' ? '' : show === 'stdout' ? r.stdout : r.stderr + r.stdout;
    // git pads "remote:" lines with spaces; keep blank lines (git log needs them to read well).
    for (const line of text.replace(/\s+$/, '').split('\n')) {
      if (text.trim()) this.out.out((this.s.dim('  │ ') + line).trimEnd());
    }
    const ok = r.code === 0;
    if (ok !== (expect === 'ok') || (mustSay && !mustSay.test(r.stderr + r.stdout))) {
      if (show !== 'all') this.out.err(r.stderr + r.stdout);
      throw new BreakglassError(
        'INTERNAL',
        `demo step ${this.step}: "${display}" ${ok ? 'succeeded' : `failed (exit ${r.code})`}, expected it to ${expect === 'ok' ? 'succeed' : 'be refused'}${mustSay ? ` saying ${String(mustSay)}` : ''}`,
      );
    }
    return r;
  }

  bg(who: Person, args: readonly string[], expect: 'ok' | 'fail', show: 'all' | 'stdout' = 'all') {
    return this.run(
      who,
      `bg-sign ${args.map(shellWord).join(' ')}`,
      process.execPath,
      [this.bundle, ...args],
      expect,
      show,
    );
  }

  git(
    who: Person,
    args: readonly string[],
    expect: 'ok' | 'fail',
    show: 'all' | 'stdout' | 'none' = 'all',
    mustSay?: RegExp,
  ) {
    return this.run(
      who,
      `git ${args.map(shellWord).join(' ')}`,
      'git',
      args,
      expect,
      show,
      mustSay,
    );
  }

  /** Alice requests a ticket for HEAD, Bob fetches and approves it; returns the ticket id. */
  async approvedTicket(
    alice: Person,
    bob: Person,
    action: string,
    reason: string,
    extra: readonly string[] = [],
    show: 'all' | 'stdout' = 'stdout',
  ): Promise<string> {
    const req = await this.bg(
      alice,
      ['request', '--ref', 'main', '--action', action, '--commit', 'HEAD', '--ttl', '15m'].concat([
        '--reason',
        reason,
        ...extra,
        '--push',
      ]),
      'ok',
      show,
    );
    const id = mustMatch(req.stdout, /^(\d{8}T\d{6}Z-[0-9a-f]+)$/m, 'ticket id')[1]!;
    await this.bg(bob, ['fetch'], 'ok', show);
    await this.bg(bob, ['approve', id, '--push'], 'ok', show);
    return id;
  }

  verdict(text: string): void {
    this.out.out(`  ${this.s.green('→')} ${text}`);
  }
}

function shellWord(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./~-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

function mustMatch(text: string, re: RegExp, what: string): RegExpExecArray {
  const m = re.exec(text);
  if (!m) throw new BreakglassError('INTERNAL', `demo: ${what} not found in:\n${text}`);
  return m;
}

async function runDemo(out: Output, keep: boolean, ssh: boolean): Promise<void> {
  const bundle = bundlePath();
  const root = await mkdtemp(join(os.tmpdir(), 'bg-demo-'));
  const s = out.style;
  out.out(s.bold('git-breakglass demo'));
  out.out(
    `Everything happens in ${s.bold(root)} (${keep ? 'kept afterwards (--keep)' : 'removed at the end; --keep keeps it'}).`,
  );
  let ok = false;
  try {
    const demo = new Demo(out, bundle);
    const gitDir = join(root, 'server.git');
    const person = async (name: string): Promise<Person> => {
      const home = join(root, 'home', name);
      await mkdir(join(home, '.config'), { recursive: true });
      await writeFile(
        join(home, '.gitconfig'),
        `[user]\n\tname = ${name}\n\temail = ${name}@example.test\n` +
          // --ssh: bg-sign signs with git's SSH signing key, as git signs commits (S6).
          (ssh ? `\tsigningkey = ~/.ssh/id_ed25519\n[gpg]\n\tformat = ssh\n` : '') +
          `[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n`,
      );
      return {
        name,
        dir: root,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: home,
          XDG_CONFIG_HOME: join(home, '.config'),
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_TERMINAL_PROMPT: '0',
          LANG: 'C',
          NO_COLOR: '1',
          // The login the server sees. Over file:// the hook inherits this variable; on a real
          // server ssh, the web server or the forge sets it (docs/server-setup.md).
          REMOTE_USER: name,
          TMPDIR: root,
        },
      };
    };
    const admin = await person('admin');
    const alice = await person('alice');
    const bob = await person('bob');
    const carol = await person('carol');

    // --- setting the scene (not a numbered step) ---
    out.out('');
    out.out(s.bold('Setting the scene'));
    out.out(
      s.dim(
        '  Alice is on call, Bob approves break-glass tickets, Carol reviews them afterwards,\n' +
          '  merge-bot is the only normal pusher to main.',
      ),
    );
    const keygen = async (p: Person) => {
      if (ssh) {
        // Their everyday SSH key (here made fresh); git's user.signingkey points at it.
        const file = join(String(p.env.HOME), '.ssh', 'id_ed25519');
        await mkdir(dirname(file), { recursive: true, mode: 0o700 });
        await demo.run(
          p,
          `ssh-keygen -q -t ed25519 -N '' -C ${p.name} -f ~/.ssh/id_ed25519`,
          'ssh-keygen',
          ['-q', '-t', 'ed25519', '-N', '', '-C', p.name, '-f', file],
          'ok',
          'none',
        );
        return (await readFile(`${file}.pub`, 'utf8')).trim();
      }
      const r = await demo.bg(p, ['keygen'], 'ok', 'stdout');
      return mustMatch(r.stdout, /(ed25519:[A-Za-z0-9+/=]+)/, 'public key')[1]!;
    };
    const aliceKey = await keygen(alice);
    const bobKey = await keygen(bob);
    const carolKey = await keygen(carol);
    const policy = `version: 1
repository: acme/api
principals:
  alice: { keys: ["${aliceKey}"], roles: [oncall], logins: [alice] }
  bob: { keys: ["${bobKey}"], roles: [approver], logins: [bob] }
  carol: { keys: ["${carolKey}"], roles: [reviewer], logins: [carol] }
  merge-bot: { logins: [merge-bot] }
protected:
  - refs: ["refs/heads/main", "refs/heads/release/*"]
    pushers: [merge-bot]
    requiredApprovals: 1
tickets:
  requesterRoles: [oncall]
  approverRoles: [approver]
  reviewerRoles: [reviewer]
  approvals: 1
  maxTtl: 60m
  maxUses: 1
  clockSkew: 2m
`;
    await demo.git(admin, ['init', '--bare', '--initial-branch=main', gitDir], 'ok', 'none');
    const seed = join(root, 'seed');
    await demo.git(admin, ['init', '-q', seed], 'ok', 'none');
    await mkdir(join(seed, '.breakglass'));
    await writeFile(join(seed, '.breakglass/policy.yml'), policy);
    await writeFile(join(seed, 'app.txt'), 'payments: v1\n');
    const adminIn = { ...admin, dir: seed };
    await demo.git(adminIn, ['add', '.'], 'ok', 'none');
    await demo.git(
      adminIn,
      ['commit', '-q', '-m', 'acme/api with its break-glass policy'],
      'ok',
      'none',
    );
    await demo.git(adminIn, ['push', '-q', gitDir, 'main'], 'ok', 'none');
    out.out(s.dim('  The policy on main (.breakglass/policy.yml):'));
    for (const line of policy.trimEnd().split('\n')) out.out(s.dim(`  │ ${line}`));
    await demo.bg(admin, ['install-hooks', gitDir], 'ok');
    const url = `file://${gitDir}`;
    await demo.git(alice, ['clone', '-q', url, 'alice'], 'ok', 'none');
    await demo.git(bob, ['clone', '-q', url, 'bob'], 'ok', 'none');
    await demo.git(carol, ['clone', '-q', url, 'carol'], 'ok', 'none');
    out.out(
      s.dim(
        '  The server learns who pushes from REMOTE_USER: set here in each person’s environment (file://\n' +
          '  passes it to the hook); over ssh or https the server sets it (docs/server-setup.md).',
      ),
    );
    const a = { ...alice, dir: join(root, 'alice') };
    const b = { ...bob, dir: join(root, 'bob') };
    const c = { ...carol, dir: join(root, 'carol') };

    demo.heading(
      'Alice pushes her hotfix straight to main',
      '03:10, production is down. main needs a reviewed PR and nobody is awake to review.',
    );
    await writeFile(join(a.dir, 'app.txt'), 'payments: v1 + hotfix for INC-4711\n');
    await demo.git(a, ['commit', '-q', '-am', 'Fix payment timeout (INC-4711)'], 'ok', 'none');
    await demo.git(a, ['push', 'origin', 'HEAD:main'], 'fail', 'all', /TICKET_REQUIRED/);
    demo.verdict('Rejected: main is protected and Alice holds no ticket.');

    demo.heading(
      'Alice requests a ticket, Bob approves it',
      'A 15-minute ticket for exactly this commit on main.',
    );
    const id = await demo.approvedTicket(a, b, 'push', 'INC-4711 payment outage hotfix', [], 'all');
    demo.verdict(`Ticket ${id} now carries Alice's and Bob's signatures.`);

    demo.heading(
      'Alice pushes again, with the ticket',
      'The hook verifies it and lets exactly this push through.',
    );
    await demo.git(
      a,
      ['push', '-o', `breakglass=${id}`, 'origin', 'HEAD:main'],
      'ok',
      'all',
      /BREAK-GLASS PUSH ACCEPTED/,
    );
    demo.verdict('Accepted, with the banner. post-receive wrote the audit note.');

    demo.heading('Alice tries the same ticket again', 'It was good for one push.');
    await writeFile(join(a.dir, 'app.txt'), 'payments: v1 + hotfix + one more thing\n');
    await demo.git(a, ['commit', '-q', '-am', 'One more thing'], 'ok', 'none');
    await demo.git(
      a,
      ['push', '-o', `breakglass=${id}`, 'origin', 'HEAD:main'],
      'fail',
      'all',
      /TICKET_USED_UP/,
    );
    demo.verdict('Rejected: the ticket is used up (and it was pinned to the first commit anyway).');

    demo.heading(
      'Alice force-pushes with a ticket that only allows push',
      'Rewriting main needs force-push in scope.',
    );
    await demo.git(a, ['reset', '-q', '--hard', 'HEAD~2'], 'ok', 'none');
    await writeFile(join(a.dir, 'app.txt'), 'payments: rewritten\n');
    await demo.git(a, ['commit', '-q', '-am', 'Rewrite history'], 'ok', 'none');
    const id2 = await demo.approvedTicket(a, b, 'push', 'INC-4711 cleanup');
    await demo.git(
      a,
      ['push', '--force', '-o', `breakglass=${id2}`, 'origin', 'HEAD:main'],
      'fail',
      'all',
      /SCOPE_ACTION/,
    );
    demo.verdict('Rejected: the push would rewrite main and the ticket does not allow force-push.');

    demo.heading('Anyone reads the evidence', 'The note travels with the repository.');
    await demo.git(b, ['fetch', '-q', 'origin'], 'ok');
    await demo.git(b, ['fetch', 'origin', 'refs/notes/breakglass:refs/notes/breakglass'], 'ok');
    const log = await demo.git(
      b,
      ['log', '--notes=breakglass', '-1', 'origin/main'],
      'ok',
      'stdout',
    );
    mustMatch(log.stdout, new RegExp(`Break-glass-Ticket: ${id}`), 'the audit note');
    demo.verdict('The hotfix commit carries its break-glass note.');

    demo.heading(
      'Alice asks for what she needs: a force-push ticket',
      'A new ticket, scoped to force-push and pinned to the rewritten commit, approved by Bob.',
    );
    const id3 = await demo.approvedTicket(
      a,
      b,
      'force-push',
      'INC-4711 drop the broken retry commit',
      ['--incident', 'INC-4711'],
    );
    await demo.git(
      a,
      ['push', '--force', '-o', `breakglass=${id3}`, 'origin', 'HEAD:main'],
      'ok',
      'all',
      /BREAK-GLASS PUSH ACCEPTED/,
    );
    demo.verdict(
      'Accepted: the note on the new tip also names the replaced tip and the dropped commits.',
    );

    demo.heading(
      'Next morning: Carol reviews what happened',
      'Every break-glass use waits for a signed post-incident review by someone not involved (Bob approved it).',
    );
    await demo.bg(c, ['fetch'], 'ok');
    await demo.bg(c, ['audit'], 'ok');
    await demo.bg(
      c,
      [
        'review',
        id,
        '--outcome',
        'justified',
        '--note',
        'Hotfix was needed; follow-up PR #812 adds the test',
        '--push',
      ],
      'ok',
    );
    const pending = await demo.bg(c, ['audit', '--unreviewed', '--older-than', '0m'], 'fail');
    mustMatch(pending.stdout, new RegExp(id3), 'the force push still awaiting review');
    if (pending.stdout.includes(id)) {
      throw new BreakglassError('INTERNAL', `demo: ticket ${id} is still listed as unreviewed`);
    }
    demo.verdict(
      `Ticket ${id} is reviewed; the force push (${id3}) still waits, so the review duty check exits 1.`,
    );

    out.out('');
    out.out(s.bold('Done.'));
    if (keep) {
      out.out(`Server repository: ${gitDir}`);
      out.out(`Audit it with: bg-sign audit ${gitDir}`);
      out.out(
        `Review as Carol: cd ${c.dir} && ${ssh ? `HOME=${String(c.env.HOME)}` : `BG_SIGN_KEY=${join(String(c.env.HOME), '.config/breakglass/ed25519.key')}`} bg-sign review <ticket id> --outcome justified --note "..." --push`,
      );
    } else {
      out.out('Run `bg-sign demo --keep` to keep the repositories and audit them yourself.');
    }
    ok = true;
  } finally {
    if (!keep) {
      await rm(root, { recursive: true, force: true });
      out.out(s.dim(`Removed ${root}.${ok ? '' : ' Re-run with --keep to look around.'}`));
    } else {
      out.out(`Kept ${root}; remove it with: rm -rf ${root}`);
    }
  }
}

/** `bg-sign demo`: the on-call story of DESIGN §1, end to end, in a temp folder. */
export default defineCommand({
  command: 'demo',
  describe: 'Act out the break-glass story with real hooks and pushes in a temp folder',
  builder: (y) =>
    y
      .options({
        keep: {
          type: 'boolean',
          default: false,
          describe: 'keep the temp folder (to run bg-sign audit in it)',
        },
        ssh: {
          type: 'boolean',
          default: false,
          describe: "sign with SSH keys (ssh-keygen), found through git's user.signingkey",
        },
      })
      .example('$0 demo', 'watch a rejected push, a ticket, an accepted push and its note')
      .example('$0 demo --keep', 'keep the repositories afterwards')
      .example('$0 demo --ssh', 'the same story signed with SSH keys'),
  handler: async (argv) => {
    const cli = cliFor(argv);
    await runDemo(cli.output, argv.keep, argv.ssh);
  },
});
