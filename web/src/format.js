export const num = (v, d = 1) => (v == null ? '–' : Number(v).toFixed(d))
export const pct = (v) => (v == null ? '–' : (v * 100).toFixed(2) + ' %')
export const ms = (v) => (v == null ? '–' : v < 10 ? v.toFixed(2) : v.toFixed(0))
export function bytes(v) {
  if (v == null) return '–'
  const u = ['B', 'KiB', 'MiB', 'GiB']
  let i = 0
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024
    i++
  }
  return v.toFixed(i ? 1 : 0) + ' ' + u[i]
}
