// The live state: one WebSocket, reconnected with backoff; the overview rows it pushes
// and a short per-model history of requests/s for the sparklines.
import { reactive } from 'vue'
import { apiUrl, wsUrl } from './urls.js'

const SPARK_POINTS = 120

export const live = reactive({
  // 'connecting' | 'live' | 'reconnecting'
  conn: 'connecting',
  ts: 0,
  broker: null,
  brokerNode: null, // host:port of the broker node in use (one of a cluster's)
  docker: null,
  alerts: 0,
  monitor: [], // the monitor's own active alerts (broker down, Docker unavailable, sources dropping)
  cols: [],
  models: [], // [{ model, state, qps, error_rate, p50_ms, p95_ms, p99_ms, cpu_percent, mem_bytes }]
  spark: {}, // model -> { x: [sec], y: [requests] }
  detail: null, // the subscribed model's latest detail message
})

let socket = null
let subscribed = null
let retry = 0

function pushSpark(model, sec, requests) {
  if (sec == null) return
  const s = (live.spark[model] ??= { x: [], y: [] })
  const n = s.x.length
  if (n && s.x[n - 1] > sec) return
  // The same second again: the newer count is the more complete (the seed's newest
  // second was still filling).
  if (n && s.x[n - 1] === sec) {
    s.y[n - 1] = requests
    return
  }
  s.x.push(sec)
  s.y.push(requests)
  if (s.x.length > SPARK_POINTS) {
    s.x.shift()
    s.y.shift()
  }
}

// Seeds sparklines from the overview's five minutes of per-second points.
async function seed() {
  const r = await fetch(apiUrl('api/v1/models?series=1'))
  if (!r.ok) return
  const o = await r.json()
  for (const m of o.models) {
    const pts = m.series.slice(-SPARK_POINTS)
    live.spark[m.model] = { x: pts.map((p) => p.sec), y: pts.map((p) => p.requests) }
  }
}

function onOverview(msg) {
  const c = live.cols
  live.ts = msg.ts
  live.broker = msg.broker
  live.brokerNode = msg.broker_node ?? null
  live.docker = msg.docker
  live.alerts = msg.alerts
  live.monitor = msg.monitor ?? []
  live.models = msg.m.map((row) => {
    const o = {}
    c.forEach((name, i) => (o[name] = row[i]))
    pushSpark(o.model, o.sec, o.sec_requests)
    return o
  })
}

// `detail: null` names the model the server does not know (any more, after a restart):
// its old figures must go rather than stay on the page as if live.
function onDetail(msg) {
  const model = msg.detail ? msg.detail.model : msg.model
  if (model !== subscribed) return
  live.detail = msg.detail ? msg : null
}

export function connect() {
  socket = new WebSocket(wsUrl())
  socket.onopen = () => {
    retry = 0
    live.conn = 'live'
    seed().catch(() => {})
    if (subscribed) socket.send(JSON.stringify({ sub: subscribed }))
  }
  socket.onmessage = (ev) => {
    const msg = JSON.parse(ev.data)
    if (msg.t === 'hello') live.cols = msg.cols
    else if (msg.t === 'o') onOverview(msg)
    else if (msg.t === 'd') onDetail(msg)
  }
  socket.onclose = () => {
    live.conn = 'reconnecting'
    // Figures from a server that is gone are not live: a restarted one may not know the
    // model any more, and says so once the socket is back.
    live.detail = null
    // Back off up to 5 s so a restarting server is not hammered.
    const delay = Math.min(5000, 500 * 2 ** retry++)
    setTimeout(connect, delay)
  }
}

export function subscribe(model) {
  subscribed = model
  live.detail = null
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ sub: model }))
  }
}
