// Builds dist/: tidewire.mjs (ES module), tidewire.js (IIFE exposing the global
// `tidewire`) and tidewire.d.ts (copied from types/). Deterministic: fixed options,
// no timestamps, so `npm run check-dist` can compare with the committed files.
//
// Usage: node scripts/build.mjs [outdir]   (default: dist)

import { build } from 'esbuild';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.resolve(root, process.argv[2] ?? 'dist');
const { version } = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));
const banner = `/*! tidewire client v${version} | Engine.IO v4 + Socket.IO v5 + SSE | MIT */`;

const common = {
  // Paths in the output (module comments) are relative to this, whatever the cwd.
  absWorkingDir: root,
  entryPoints: [path.join(root, 'src', 'index.js')],
  bundle: true,
  platform: 'neutral',
  target: 'es2020',
  charset: 'utf8',
  legalComments: 'none',
  banner: { js: banner },
  logLevel: 'warning',
  sourcemap: false,
};

await mkdir(outdir, { recursive: true });
await build({ ...common, format: 'esm', outfile: path.join(outdir, 'tidewire.mjs') });
await build({
  ...common,
  format: 'iife',
  globalName: 'tidewire',
  minify: true,
  outfile: path.join(outdir, 'tidewire.js'),
});
await copyFile(path.join(root, 'types', 'tidewire.d.ts'), path.join(outdir, 'tidewire.d.ts'));
console.log(`built ${path.relative(process.cwd(), outdir) || '.'}/tidewire.{mjs,js,d.ts}`);
