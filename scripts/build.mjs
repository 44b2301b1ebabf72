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
