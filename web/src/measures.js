// How a model measure (an `ml` key, or a request/response size) reads on the page.
// The wire contract carries bare numbers; the key's suffix is the only hint of a unit
// (`queue_us`, `inference_ms`, `payload_bytes`), so that is what picks the format. Not
// `_s`: `tokens_per_s` is no duration.
import { bytes, ms } from './format.js'

// Counts and other plain figures: whole numbers stay whole, others get the digits that
// matter at their size.
export function amount(v) {
  if (v == null) return '–'
  if (Number.isInteger(v)) return v.toLocaleString('en-US')
  const a = Math.abs(v)
  if (a >= 100) return Math.round(v).toLocaleString('en-US')
  return v.toFixed(a >= 10 ? 1 : 2)
}

const durationIn = (toMs) => ({
  unit: 'ms',
  value: (v) => (v == null ? '–' : ms(toMs(v)) + ' ms'),
  // A duration's sum per second is the time spent in it each second (e.g. 500 ms/s:
  // half a worker busy on average).
  rate: (v) => (v == null ? '–' : ms(toMs(v)) + ' ms/s'),
})

const KINDS = [
  ['_us', durationIn((v) => v / 1000)],
  ['_ms', durationIn((v) => v)],
  ['_bytes', { unit: 'bytes', value: bytes, rate: (v) => (v == null ? '–' : bytes(v) + '/s') }],
]
const PLAIN = { unit: '', value: amount, rate: amount }

export function kindOf(key) {
  for (const [suffix, kind] of KINDS) if (key.endsWith(suffix)) return kind
  return PLAIN
}

export const SIZE_LABELS = { req_bytes: 'request size', resp_bytes: 'response size' }

// [{ key, label, stats, kind }] of an object keyed by measure, in the API's (sorted) order.
export function rows(obj, labels = {}) {
  return Object.entries(obj ?? {}).map(([key, stats]) => ({ key, label: labels[key] ?? key, stats, kind: kindOf(key) }))
}
