// After `vite build`: gzip the assets the binary serves, and record a hash of the
// sources so a Rust test can tell when dist/ is stale (tests/web.rs).
import { readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { gzipSync } from 'node:zlib'
import { sourceHash } from './source-hash.mjs'

const root = new URL('..', import.meta.url).pathname
for (const f of ['index.html', 'assets/app.js', 'assets/app.css']) {
  const p = join(root, 'dist', f)
  writeFileSync(p + '.gz', gzipSync(readFileSync(p), { level: 9 }))
}
writeFileSync(join(root, 'dist', 'source-hash.txt'), sourceHash(root) + '\n')
