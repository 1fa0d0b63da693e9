// Bundles src/main.jsx into plugin/static/admin-ui/ (app.js, app.css) with a stamp of the sources it was built from,
// which the tests compare with the sources, so a bundle older than its sources is caught.
import {build} from 'esbuild';
import {createHash} from 'node:crypto';
import {mkdirSync, readFileSync, readdirSync, statSync, writeFileSync} from 'node:fs';
import {join, relative} from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const out = join(here, '../../static/admin-ui');

function sourceFiles(dir) {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : [path];
  });
}

/** One hash over every input the bundle depends on: the sources, the lockfile and this script. */
function sourcesDigest() {
  const hash = createHash('sha256');
  for (const path of [...sourceFiles(join(here, 'src')), join(here, 'package-lock.json'), join(here, 'build.mjs')]) {
    hash.update(relative(here, path)).update('\0').update(readFileSync(path)).update('\0');
  }
  return hash.digest('hex');
}

const result = await build({
  entryPoints: {app: join(here, 'src/main.jsx')},
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  loader: {'.js': 'jsx'},
  define: {'process.env.NODE_ENV': '"production"'},
  legalComments: 'linked',
  charset: 'utf8',
  outdir: out,
  write: false,
  logLevel: 'warning',
});

const files = {
  ...Object.fromEntries(result.outputFiles.map((f) => [relative(out, f.path), Buffer.from(f.contents)])),
  'stamp.json': Buffer.from(`${JSON.stringify({sources_sha256: sourcesDigest()}, null, 2)}\n`),
};

mkdirSync(out, {recursive: true});
for (const [name, contents] of Object.entries(files)) {
  writeFileSync(join(out, name), contents);
  console.log(`plugin/static/admin-ui/${name.padEnd(18)} ${(contents.length / 1024).toFixed(0)} kB`);
}
