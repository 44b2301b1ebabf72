// Bundles each entry point into one ESM file. tweetnacl is CommonJS and calls
// require('crypto'): an ESM bundle has no `require`, so the banner provides one.
import { build } from 'esbuild';

const banner = {
  js: [
    "import { createRequire as __bgCreateRequire } from 'node:module';",
    'const require = __bgCreateRequire(import.meta.url);',
  ].join('\n'),
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  legalComments: 'none',
  logLevel: 'warning',
};

const only = process.argv[2];

if (!only || only === 'cli') {
  await build({
    ...common,
    entryPoints: ['src/cli/main.ts'],
    outfile: 'dist/bg-sign.js',
    banner: { js: '#!/usr/bin/env node\n' + banner.js },
  });
}
// The hooks' own build, what the shims run: dist/bg-hook.cjs (src/server/hook-fast.ts), one
// small CommonJS file with the fast path (DESIGN §9: ~ one Node start-up; an ES module graph
// starts measurably slower, and so does one file holding the whole hook), and beside it
// dist/bg-hook-full.cjs (src/server/hook-full.ts), the full hooks, loaded only when the fast path
// can't decide. Each file is written beside and renamed, so a push starting during a rebuild
// never loads half a file. The shims use them when they sit beside bg-sign.js; bg-sign.js alone
// still works.
if (!only || only === 'cli' || only === 'hook') {
  const { mkdir, rename, rm, writeFile } = await import('node:fs/promises');
  const r = await build({
    ...common,
    format: 'cjs',
    entryPoints: {
      'bg-hook': 'src/server/hook-fast.ts',
      'bg-hook-full': 'src/server/hook-full.ts',
    },
    outdir: 'dist',
    outExtension: { '.js': '.cjs' },
    write: false,
  });
  await mkdir('dist', { recursive: true });
  for (const f of r.outputFiles) {
    const tmp = `${f.path}.tmp-${process.pid}`;
    await writeFile(tmp, f.contents);
    await rename(tmp, f.path);
  }
  // What earlier builds wrote for the hooks (an ES module entry and its chunks).
  await rm('dist/bg-hook.js', { force: true });
  await rm('dist/hook-chunks', { recursive: true, force: true });
}
if ((!only || only === 'action') && (await exists('action/src/index.ts'))) {
  await build({
    ...common,
    entryPoints: ['action/src/index.ts'],
    outfile: 'action/dist/index.js',
    banner,
  });
}

async function exists(p) {
  const { access } = await import('node:fs/promises');
  return access(p).then(
    () => true,
    () => false,
  );
}
