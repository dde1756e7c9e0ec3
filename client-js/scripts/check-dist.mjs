// Rebuilds into a temporary directory and fails when the result differs from the
// committed dist/ (run `npm run build` and commit dist/ to fix).

import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = await mkdtemp(path.join(tmpdir(), 'tidewire-dist-'));
try {
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs'), tmp], { stdio: 'inherit' });
  const dist = path.join(root, 'dist');
  const want = (await readdir(tmp)).sort();
  let have = [];
  try {
    have = (await readdir(dist)).sort();
  } catch {
    // no dist at all
  }
  const problems = [];
  for (const name of new Set([...want, ...have])) {
    if (!want.includes(name)) problems.push(`dist/${name} is not produced by the build`);
    else if (!have.includes(name)) problems.push(`dist/${name} is missing`);
    else {
      const [a, b] = await Promise.all([readFile(path.join(tmp, name)), readFile(path.join(dist, name))]);
      if (!a.equals(b)) problems.push(`dist/${name} differs from a fresh build`);
    }
  }
  if (problems.length) {
    console.error(`${problems.join('\n')}\nrun \`npm run build\` in client-js/ and commit dist/`);
    process.exitCode = 1;
  } else {
    console.log('dist/ is up to date');
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}
