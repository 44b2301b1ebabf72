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
// The hooks' own entries. dist/bg-hook.cjs (src/server/hook-fast.ts): one small CommonJS file
// with the fast path, what the shims run (DESIGN §9: ~ one Node start-up; an ES module graph
// starts measurably slower). dist/bg-hook.js: no CLI (yargs, commands), the full hook split into
// chunks (dist/hook-chunks/) loaded only when the fast path can't decide. The shims prefer them
// when they sit beside bg-sign.js; bg-sign.js alone still works.
if (!only || only === 'cli' || only === 'hook') {
  await build({
    ...common,
    format: 'cjs',
    entryPoints: ['src/server/hook-fast.ts'],
    outfile: 'dist/bg-hook.cjs',
  });
  const r = await build({
    ...common,
    entryPoints: { 'bg-hook': 'src/server/hook-main.ts' },
    outdir: 'dist',
    splitting: true,
    chunkNames: 'hook-chunks/[name]-[hash]',
    metafile: true,
    banner,
  });
  // Chunks of earlier builds go only once no hook started before this build can still be
  // loading them (a push in flight during a rebuild would otherwise fail closed).
  const { readdir, rm, stat } = await import('node:fs/promises');
  const { resolve } = await import('node:path');
  const current = new Set(Object.keys(r.metafile.outputs).map((f) => resolve(f)));
  for (const f of await readdir('dist/hook-chunks')) {
    const p = resolve('dist/hook-chunks', f);
    if (!current.has(p) && Date.now() - (await stat(p)).mtimeMs > 10 * 60_000) await rm(p);
  }
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
