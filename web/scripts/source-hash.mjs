// FNV-1a (64 bit) over the dashboard's sources: a staleness check, not a security
// measure, chosen because the Rust test can compute it without a dependency.
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

export const SOURCES = ['index.html', 'package.json', 'vite.config.js', 'src']

function files(root, rel) {
  const p = join(root, rel)
  if (statSync(p).isDirectory()) {
    return readdirSync(p).sort().flatMap((n) => files(root, rel + '/' + n))
  }
  return [rel]
}

export function sourceHash(root) {
  let h = 0xcbf29ce484222325n
  const mask = 0xffffffffffffffffn
  const feed = (bytes) => {
    for (const b of bytes) {
      h ^= BigInt(b)
      h = (h * 0x100000001b3n) & mask
    }
  }
  const all = SOURCES.flatMap((s) => files(root, s)).sort()
  for (const rel of all) {
    feed(Buffer.from(rel + '\0'))
    feed(readFileSync(join(root, rel)))
    feed(Buffer.from([0]))
  }
  return h.toString(16).padStart(16, '0')
}
