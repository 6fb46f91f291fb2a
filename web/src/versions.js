// Versions of a model side by side, and which of them is clearly worse than the busiest
// (the one most requests went to: the version in service, for a canary beside it).
// One simple rule, stated in docs/api.md ("The dashboard"):
//   p95 at least 1.5× the busiest version's, or
//   an error rate at least 2× the busiest version's AND at least 1 point above it.
// The second condition keeps 0.1 % against 0.05 % (twice, but noise) from being flagged,
// and still flags 1.2 % against a busiest version with no error at all.
import { ms, pct } from './format.js'

export const P95_FACTOR = 1.5
export const ERROR_FACTOR = 2
export const ERROR_POINTS = 0.01

// The version with the most requests in the window (the API lists them busiest first,
// but the rule should not depend on an order).
export function busiest(versions) {
  let best = null
  for (const v of versions) if (!best || v.requests > best.requests) best = v
  return best
}

// Why `v` is clearly worse than `base`, in words; [] when it is not.
export function worseThan(v, base) {
  if (!base || v === base) return []
  const why = []
  if (v.p95_ms != null && base.p95_ms != null && base.p95_ms > 0 && v.p95_ms >= P95_FACTOR * base.p95_ms) {
    why.push(`p95 ${ms(v.p95_ms)} ms, ${(v.p95_ms / base.p95_ms).toFixed(1)}× ${base.version}'s ${ms(base.p95_ms)} ms`)
  }
  if (
    v.error_rate != null &&
    base.error_rate != null &&
    v.error_rate >= ERROR_FACTOR * base.error_rate &&
    v.error_rate >= base.error_rate + ERROR_POINTS
  ) {
    why.push(`errors ${pct(v.error_rate)} against ${pct(base.error_rate)} on ${base.version}`)
  }
  return why
}
