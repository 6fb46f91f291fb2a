// The dashboard in a real browser: Debian's headless Chromium driven by playwright-core,
// against `modelmon-tui --headless --demo --serve 127.0.0.1:0` (learning shortened to
// minutes and an SLO every demo model breaks, so a normal and a firing alert come
// within two minutes), a second demo whose script plays in 30 s (so a model's new version
// is rolled out beside the old one within the first minute), and a monitor whose broker
// never answers. The first demo is also loaded through a real nginx (the test's own, on a
// free loopback port) under /modelmon/, as behind a reverse proxy, and a monitor with a
// token under /private/.
// Usage: node tests/browser/dashboard.mjs   (MODELMON_TUI=path overrides the binary,
// NGINX=path the nginx; scripts/services.sh browser installs Chromium and nginx)
// Exits non-zero when a check fails; screenshots go to tests/browser/artifacts/.
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { chromium } from 'playwright-core'

const here = dirname(fileURLToPath(import.meta.url))
const repo = join(here, '..', '..')
const bin =
  process.env.MODELMON_TUI ?? join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'debug', 'modelmon-tui')
const artifacts = join(here, 'artifacts')
mkdirSync(artifacts, { recursive: true })

// A normal after one minute of demo traffic instead of ten; an SLO of 0.01 ms on p95,
// which llm-chat breaks at once (on that model only: the minutes a model spends in an
// incident are left out of its normal, so the others keep learning theirs); no desktop
// notifications from a test.
const SLO_MODEL = 'llm-chat'
const CONFIG = `
[alerts.baseline]
learn = "3m"
skip_recent = "0s"
min_history = "1m"

[[alerts.rules]]
name = "p95_slo"
metric = "p95_ms"
threshold = 0.01
for = "0s"
models = ["${SLO_MODEL}"]

[notify.desktop]
enabled = false
`

// Every process the test starts; whatever is still running when it exits, however it
// exits (a check's failure included), is stopped then.
// nginx gets SIGTERM: its master then stops its worker, which SIGKILL would leave behind.
const children = new Map()
process.on('exit', () => {
  for (const [c, signal] of children) if (c.exitCode == null && c.signalCode == null) c.kill(signal)
})

function startServer(args, env = {}, serve = '127.0.0.1:0') {
  const state = mkdtempSync(join(tmpdir(), 'modelmon-browser-'))
  const config = join(state, 'modelmon.toml')
  writeFileSync(config, CONFIG)
  const child = spawn(bin, ['--headless', '--no-docker', '--config', config, '--serve', serve, ...args], {
    env: { ...process.env, XDG_CONFIG_HOME: '/nonexistent', XDG_STATE_HOME: state, MODELMON_TOKEN: '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  children.set(child, 'SIGKILL')
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not say where it serves')), 20000)
    createInterface({ input: child.stderr }).on('line', (line) => {
      const m = line.match(/serving on (http:\/\/\S+)/)
      if (m) {
        clearTimeout(timer)
        resolve({ child, url: m[1], state })
      }
    })
    child.on('exit', (code) => reject(new Error(`the server exited with ${code}`)))
  })
}

// nginx, as a reverse proxy serving monitors under path prefixes: `routes` maps a prefix
// ('/modelmon/') to a monitor's URL. The prefix is stripped (proxy_pass ending in /) and
// the WebSocket upgrade passed on, as README's "Behind a reverse proxy" says. Everything
// it writes (pid, logs, temp files) stays in a temp dir of its own: no root paths.
const NGINX = process.env.NGINX ?? ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) ?? 'nginx'

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function nginxConfig(dir, port, routes) {
  const locations = Object.entries(routes)
    .map(
      ([prefix, upstream]) => `
    location ${prefix} {
      proxy_pass ${upstream}/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
    }`,
    )
    .join('\n')
  return `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
  }
  server {
    listen 127.0.0.1:${port};
    location = /ready { return 200 "ready\\n"; }
${locations}
  }
}
`
}

async function startNginx(routes) {
  const dir = mkdtempSync(join(tmpdir(), 'modelmon-nginx-'))
  // Started as root, nginx's workers run as nobody: they must reach the temp dirs inside.
  chmodSync(dir, 0o755)
  const log = () => (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '')
  // A free port can be taken between finding it and nginx binding it: try another then.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const config = join(dir, 'nginx.conf')
    writeFileSync(config, nginxConfig(dir, port, routes))
    const child = spawn(NGINX, ['-p', dir, '-c', config, '-e', join(dir, 'error.log'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    children.set(child, 'SIGTERM')
    let stderr = ''
    child.stderr.on('data', (b) => (stderr += b))
    let exited = null
    const gone = new Promise((resolve) => {
      child.on('error', (e) => resolve((exited = `cannot start ${NGINX}: ${e.message}`)))
      child.on('exit', (code, signal) => resolve((exited = `exited with ${code ?? signal}`)))
    })
    const url = `http://127.0.0.1:${port}`
    const proxy = { child, url, dir, gone }
    for (let i = 0; i < 100 && !exited; i++) {
      try {
        if ((await fetch(url + '/ready')).ok) return proxy
      } catch {}
      await sleep(100)
    }
    if (!exited) await stopNginx(proxy)
    if (attempt < 3 && /in use/.test(log() + stderr)) continue
    const why = exited ?? 'did not answer within 10 s'
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`nginx ${why}: ${(stderr + log()).trim().split('\n').slice(-5).join(' | ')}`)
  }
}

// A fast shutdown of the master and its worker; SIGKILL only if it does not go.
async function stopNginx(proxy) {
  if (proxy.child.exitCode != null || proxy.child.signalCode != null) return
  proxy.child.kill('SIGTERM')
  const gone = await Promise.race([proxy.gone.then(() => true), sleep(5000).then(() => false)])
  if (!gone) proxy.child.kill('SIGKILL')
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
// The response to `url`, awaited after the step that causes it; a failed step before
// must not leave its timeout unhandled.
const responseTo = (p, url) => p.waitForResponse((r) => r.url() === url, { timeout: 10000 }).catch((e) => e)
async function statusOf(pending, what) {
  const r = await pending
  if (r instanceof Error) throw new Error(`${what}: ${r.message}`)
  return r.status()
}
const results = []
const notes = []
const note = (text) => {
  notes.push(text)
  console.log(`note ${text}`)
}
async function check(name, fn) {
  try {
    await fn()
    results.push([name, true])
    console.log(`ok   ${name}`)
  } catch (e) {
    results.push([name, false])
    console.log(`FAIL ${name}: ${e.message}`)
  }
}

const server = await startServer(['--demo'])
// The demo's script in 30 s: its rollout (the second half of each cycle) is under way
// within 30 s, and a 60-s window then always holds both versions.
const canary = await startServer(['--demo'], { MODELMON_DEMO_CYCLE: '30s' })
// Port 1 on loopback: nothing listens, so broker_down fires after its 10 s.
const blind = await startServer(['--amqp', 'amqp://127.0.0.1:1/%2f'])
// A monitor with a token, seen only through nginx (under /private/).
const TOKEN = 'proxied-secret'
const guarded = await startServer(['--amqp', 'amqp://127.0.0.1:1/%2f', '--token', TOKEN])
// A monitor started later on the canary's address, after the canary is gone.
let restarted = null
const api = async (srv, path) => (await fetch(srv.url + path)).json()
const profile = mkdtempSync(join(tmpdir(), 'modelmon-chromium-'))
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--no-first-run',
    '--disable-component-update',
    '--disable-sync',
  ],
})
const page = ctx.pages()[0] ?? (await ctx.newPage())
// The nginx in front of the monitors, and what the page loaded through it asked for.
let proxy = null
let proxied = null
const seen = { requests: [], failed: [], errors: [], sockets: [], frames: 0, sent: [], details: [] }
try {
  // The demo's models, as the API lists them once traffic has started.
  let names = []
  for (let i = 0; i < 100 && names.length === 0; i++) {
    const o = await (await fetch(server.url + '/api/v1/models')).json()
    names = o.models.map((m) => m.model)
    if (!names.length) await new Promise((r) => setTimeout(r, 200))
  }

  await check('the overview shows every demo model', async () => {
    if (!names.length) throw new Error('the demo published no model')
    await page.goto(server.url + '/')
    for (const n of names) {
      await page.locator(`tr[data-model="${n}"]`).waitFor({ timeout: 10000 })
    }
    await page.locator('[data-testid=conn]', { hasText: 'live' }).waitFor({ timeout: 5000 })
    await page.screenshot({ path: join(artifacts, 'overview.png'), fullPage: true })
  })

  await check('a value changes through the WebSocket within 2 s', async () => {
    const before = await page.locator('[data-testid=models] tbody').innerText()
    await page.waitForFunction(
      (b) => document.querySelector('[data-testid=models] tbody')?.innerText !== b,
      before,
      { timeout: 2000 },
    )
  })

  await check("the overview shows an LLM's figures in columns of their own, others a dash", async () => {
    await page.goto(server.url + '/')
    const cell = (model, key) => page.locator(`tr[data-model="${model}"] td[data-col=${key}]`)
    for (const key of ['ttfb_p95_ms', 'itl_p95_ms', 'tokens_per_s']) {
      await page.locator(`[data-testid=models] th[data-col=${key}]`).waitFor({ timeout: 10000 })
    }
    // llm-chat streams 40 tokens/s per answer, several answers at once: its figures are
    // numbers within a factor of the API's; a classifier's are dashes.
    await page.waitForFunction(
      (m) => /\d/.test(document.querySelector(`tr[data-model="${m}"] td[data-col=tokens_per_s]`)?.innerText ?? ''),
      SLO_MODEL,
      { timeout: 10000 },
    )
    const d = await api(server, '/api/v1/models/' + encodeURIComponent(SLO_MODEL))
    const near = (shown, want, what) => {
      if (!(shown > 0) || want == null || shown > 3 * want || want > 3 * shown) {
        throw new Error(`${what}: the page says ${shown}, the API ${want}`)
      }
    }
    near(Number(await cell(SLO_MODEL, 'tokens_per_s').innerText()), d.ml?.tokens_out?.rate_per_s, 'tokens/s')
    near(Number(await cell(SLO_MODEL, 'itl_p95_ms').innerText()), d.ml?.itl_mean_us?.p95 / 1000, 'ITL p95 ms')
    const plain = names.find((n) => n !== SLO_MODEL && !n.startsWith('llm'))
    for (const key of ['itl_p95_ms', 'tokens_per_s']) {
      const text = (await cell(plain, key).innerText()).trim()
      if (text !== '–') throw new Error(`${plain} has no tokens, yet its ${key} reads ${text}`)
    }
  })

  await check("a model's detail opens with its charts", async () => {
    const name = names[0]
    await page.locator(`tr[data-model="${name}"] a`).click()
    await page.locator('[data-testid=detail] h1', { hasText: name }).waitFor({ timeout: 5000 })
    await page.locator('[data-testid=qps]').waitFor({ timeout: 5000 })
    // The demo runs without Docker: latency, QPS and errors, and one line instead of two
    // empty container charts.
    await page.locator('[data-testid=no-container]').waitFor({ timeout: 5000 })
    const charts = await page.locator('figure.chart').count()
    if (charts !== 3) throw new Error(`expected 3 charts, saw ${charts}`)
    await page.locator('.ranges button', { hasText: '1h' }).click()
    await page.waitForTimeout(500)
    await page.screenshot({ path: join(artifacts, 'detail.png'), fullPage: true })
  })

  await check("the detail page shows a firing alert's explanation", async () => {
    await page.goto(server.url + '/#/model/' + encodeURIComponent(SLO_MODEL))
    const item = page.locator('[data-testid=model-alerts] li', { hasText: 'p95_slo' })
    await item.waitFor({ timeout: 20000 })
    await page.locator('[data-testid=model-alerts] li', { hasText: 'firing' }).waitFor({ timeout: 10000 })
    const text = await item.innerText()
    // The engine's sentence, with the live figure and the limit, as the API has it.
    if (!/p95 [\d.]+ m?s, above its limit 0\.01 ms/.test(text)) {
      throw new Error(`the alert does not explain itself: ${text}`)
    }
    const d = await api(server, '/api/v1/models/' + encodeURIComponent(SLO_MODEL))
    const fromApi = d.alerts.find((a) => a.rule === 'p95_slo')
    if (!fromApi?.explanation.includes('above its limit 0.01 ms')) throw new Error(JSON.stringify(d.alerts))
    await page.screenshot({ path: join(artifacts, 'detail-alert.png'), fullPage: true })
  })

  await check("the overview's alerts list shows each value in its metric's unit", async () => {
    await page.goto(server.url + '/')
    const cell = page.locator('[data-testid=alerts] tr', { hasText: 'p95_slo' }).first().locator('td[data-col=value]')
    await cell.waitFor({ timeout: 10000 })
    const text = (await cell.innerText()).trim()
    if (!/^[\d.]+ m?s$/.test(text)) throw new Error(`p95_slo's value reads "${text}"`)
  })

  await check("a streaming model's detail shows its time to first byte, others' do not", async () => {
    await page.goto(server.url + '/#/model/' + encodeURIComponent(SLO_MODEL))
    const card = page.locator('[data-testid=ttfb-p95]')
    await card.waitFor({ timeout: 10000 })
    const shown = Number((await card.innerText()).replace(' ms', ''))
    const d = await api(server, '/api/v1/models/' + encodeURIComponent(SLO_MODEL))
    if (d.ttfb_p95_ms == null || !(shown > 0)) throw new Error(`TTFB: page ${shown}, API ${d.ttfb_p95_ms}`)
    // Live figures move: the page and a later API read agree within a factor, not exactly.
    if (shown > 3 * d.ttfb_p95_ms || d.ttfb_p95_ms > 3 * shown) {
      throw new Error(`the page says ${shown} ms, the API ${d.ttfb_p95_ms} ms`)
    }
    // Its generation time (first byte to last) beside it.
    const gen = Number((await page.locator('[data-testid=gen-p95]').innerText()).replace(' ms', ''))
    if (d.gen_p95_ms == null || !(gen > 0) || gen > 3 * d.gen_p95_ms || d.gen_p95_ms > 3 * gen) {
      throw new Error(`generation p95: page ${gen}, API ${d.gen_p95_ms}`)
    }
    const plain = names.find((n) => n !== SLO_MODEL)
    await page.goto(server.url + '/#/model/' + encodeURIComponent(plain))
    await page.locator('[data-testid=detail] h1', { hasText: plain }).waitFor({ timeout: 5000 })
    await page.locator('[data-testid=qps]').waitFor({ timeout: 5000 })
    const cards = await page.locator('[data-testid=ttfb]').count()
    if (cards !== 0) throw new Error(`${plain} does not stream, yet shows a first-byte card`)
    if ((await page.locator('[data-testid=gen]').count()) !== 0) {
      throw new Error(`${plain} does not stream, yet shows a generation card`)
    }
  })

  await check("the detail page's charts fill its width and follow the window's", async () => {
    await page.goto(server.url + '/#/model/' + encodeURIComponent(names[0]))
    await page.locator('[data-testid=detail] h1', { hasText: names[0] }).waitFor({ timeout: 5000 })
    await page.locator('figure.chart canvas').first().waitFor({ timeout: 10000 })
    // Each chart's canvas as wide as the page's content (within a pixel or two), once the
    // page has settled at a window width.
    const at = async (width) => {
      await page.setViewportSize({ width, height: 900 })
      const measure = () =>
        page.evaluate(() => ({
          content: document.querySelector('[data-testid=detail]').clientWidth,
          charts: [...document.querySelectorAll('figure.chart canvas')].map((c) => c.getBoundingClientRect().width),
        }))
      for (let i = 0; i < 50; i++) {
        const m = await measure()
        if (m.charts.length && m.charts.every((w) => Math.abs(w - m.content) <= 2)) return m
        await sleep(100)
      }
      const m = await measure()
      throw new Error(`at ${width} px the content is ${m.content} px wide, the charts ${m.charts.join(', ')} px`)
    }
    const narrow = await at(1000)
    const wide = await at(1600)
    await page.screenshot({ path: join(artifacts, 'detail-wide.png'), fullPage: true })
    // 600 px more window: about 600 px more chart (a scrollbar may come or go).
    if (wide.charts[0] - narrow.charts[0] < 570) {
      throw new Error(`the charts went from ${narrow.charts[0]} to ${wide.charts[0]} px`)
    }
    // And back: a narrower window narrows them again (nothing holds the old width).
    const again = await at(1000)
    if (Math.abs(again.charts[0] - narrow.charts[0]) > 2) {
      throw new Error(`back at 1000 px the charts are ${again.charts[0]} px, first ${narrow.charts[0]} px`)
    }
    await page.setViewportSize({ width: 1280, height: 900 })
  })

  await check('a model with several versions shows them side by side, one with one version names it', async () => {
    // The rollout of the 30-s script: up to a cycle and a half for a second version.
    let multi = null
    let single = null
    for (let i = 0; i < 45 && !multi; i++) {
      const o = await api(canary, '/api/v1/models')
      multi = o.models.find((m) => (m.versions?.length ?? 0) >= 2)
      single = o.models.find((m) => m.versions?.length === 1) ?? single
      if (!multi) await sleep(1000)
    }
    if (!multi && !single) throw new Error('no model of the demo has a version')
    if (single) {
      await page.goto(canary.url + '/#/model/' + encodeURIComponent(single.model))
      await page.locator('[data-testid=detail] h1', { hasText: single.model }).waitFor({ timeout: 5000 })
      await page.locator('[data-testid=qps]').waitFor({ timeout: 5000 })
      const badge = (await page.locator('[data-testid=version]').innerText()).trim()
      if (badge !== single.versions[0].version) throw new Error(`${single.model}: version "${badge}"`)
      if ((await page.locator('[data-testid=versions]').count()) !== 0) {
        throw new Error(`${single.model} has one version, yet shows a versions table`)
      }
    }
    if (!multi) {
      note('no demo model had two versions within 45 s: only the one-version page was checked')
      return
    }
    await page.goto(canary.url + '/#/model/' + encodeURIComponent(multi.model))
    await page.locator('[data-testid=versions]').waitFor({ timeout: 10000 })
    // The rows as the user reads them, all at one instant.
    const read = () =>
      page.$$eval('[data-testid=version-row]', (trs) =>
        trs.map((tr) => {
          const cell = (c) => tr.querySelector(`[data-col=${c}]`)?.innerText.trim() ?? null
          return {
            version: tr.dataset.version,
            worse: tr.classList.contains('worse'),
            requests: Number(cell('requests')),
            share: cell('share'),
            p95: cell('p95'),
            errors: cell('errors'),
            note: cell('note'),
          }
        }),
      )
    // The same versions as the API's (both live: read until they agree).
    let rows = []
    let fromApi = []
    for (let i = 0; i < 20; i++) {
      rows = await read()
      const d = await api(canary, '/api/v1/models/' + encodeURIComponent(multi.model))
      fromApi = d.versions.map((v) => v.version).sort()
      if (JSON.stringify(rows.map((r) => r.version).sort()) === JSON.stringify(fromApi)) break
      await sleep(250)
    }
    const shown = rows.map((r) => r.version).sort()
    if (JSON.stringify(shown) !== JSON.stringify(fromApi)) {
      throw new Error(`the page lists ${shown.join(', ')}, the API ${fromApi.join(', ')}`)
    }
    if (rows.length < 2) throw new Error(`${rows.length} version rows`)
    for (const r of rows) {
      if (!/^\d+\.\d\d %$/.test(r.share)) throw new Error(`${r.version}: share "${r.share}"`)
    }
    // The busiest is named so; any other is highlighted when clearly worse than it (p95
    // 1.5×, or errors 2× and a point more). Judged from the figures on the page, with a
    // margin for their rounding: only clear cases either way.
    const base = rows.reduce((a, b) => (b.requests > a.requests ? b : a))
    if (base.note !== 'busiest' || base.worse) throw new Error(`the busiest row: ${JSON.stringify(base)}`)
    const pctOf = (t) => (t === '–' ? null : Number(t.replace(' %', '')))
    let flagged = 0
    for (const r of rows) {
      if (r === base) continue
      const p95 = Number(r.p95) / Number(base.p95)
      const e = pctOf(r.errors)
      const be = pctOf(base.errors)
      const errClear = e != null && be != null && e >= 2.2 * be && e >= be + 1.2
      const errNot = e == null || be == null || e < 1.8 * be || e < be + 0.8
      if (p95 >= 1.6 || errClear) {
        if (!r.worse || !r.note.startsWith('worse:')) throw new Error(`not highlighted: ${JSON.stringify(r)}`)
      } else if (p95 < 1.4 && errNot && r.worse) {
        throw new Error(`highlighted, yet no worse than ${base.version}: ${JSON.stringify(r)}`)
      }
      if (r.worse) flagged++
    }
    note(`${multi.model}: versions ${shown.join(', ')}, ${flagged} highlighted as worse than ${base.version}`)
    await page.screenshot({ path: join(artifacts, 'detail-versions.png'), fullPage: true })
  })

  await check('after a restart that forgot the model, its detail page drops the old figures', async () => {
    const name = (await api(canary, '/api/v1/models')).models[0]?.model
    if (!name) throw new Error('the canary demo has no model')
    const p = await ctx.newPage()
    try {
      await p.goto(canary.url + '/#/model/' + encodeURIComponent(name))
      await p.locator('[data-testid=qps]').waitFor({ timeout: 5000 })
      const port = new URL(canary.url).port
      canary.child.kill('SIGKILL')
      await p.locator('[data-testid=conn]', { hasText: 'reconnecting' }).waitFor({ timeout: 5000 })
      // The same address served again, by a monitor that has never seen the model.
      restarted = await startServer(['--amqp', 'amqp://127.0.0.1:1/%2f'], {}, `127.0.0.1:${port}`)
      await p.locator('[data-testid=conn]', { hasText: 'live' }).waitFor({ timeout: 15000 })
      // No figure of the old server stays under the "live" badge; the history's next
      // fetch (every 10 s) says the model is unknown.
      await p.locator('[data-testid=cards]').waitFor({ state: 'detached', timeout: 15000 })
      await p.locator('[data-testid=detail] .empty', { hasText: 'No such model.' }).waitFor({ timeout: 15000 })
      await p.screenshot({ path: join(artifacts, 'detail-forgotten.png'), fullPage: true })
    } finally {
      await p.close()
    }
  })

  await check('every model shows the versions and measures panels exactly when it has their figures', async () => {
    // Model measures: ml keys (units from the key: `_us` in ms) and request/response sizes.
    const parse = (key, text) => {
      const m = text.match(/^([\d,.]+)(?: (ms|B|KiB|MiB|GiB))?$/)
      if (!m) throw new Error(`${key}: "${text}" is not a formatted figure`)
      const v = Number(m[1].replace(/,/g, ''))
      const scale = { ms: key.endsWith('_us') ? 1000 : 1, B: 1, KiB: 1024, MiB: 1048576, GiB: 1073741824 }
      return v * (m[2] ? scale[m[2]] : 1)
    }
    const keysOf = (testid) =>
      page.$$eval(`[data-testid=${testid}]`, (trs) => trs.map((tr) => tr.dataset.key).sort())
    const o = await api(server, '/api/v1/models')
    let withMl = 0
    for (const { model } of o.models) {
      await page.goto(server.url + '/#/model/' + encodeURIComponent(model))
      await page.locator('[data-testid=detail] h1', { hasText: model }).waitFor({ timeout: 5000 })
      await page.locator('[data-testid=qps]').waitFor({ timeout: 5000 })
      // What the page shows and what the API says, read until they agree (both are live).
      let seen = null
      let want = null
      for (let i = 0; i < 20; i++) {
        const d = await api(server, '/api/v1/models/' + encodeURIComponent(model))
        want = {
          versions: (d.versions?.length ?? 0) >= 2,
          measures: Object.keys(d.ml ?? {}).length + Object.keys(d.sizes ?? {}).length > 0,
          ml: Object.keys(d.ml ?? {}).sort(),
          sizes: Object.keys(d.sizes ?? {}).sort(),
          d,
        }
        seen = {
          versions: (await page.locator('[data-testid=versions]').count()) > 0,
          measures: (await page.locator('[data-testid=measures]').count()) > 0,
          ml: await keysOf('measure-row'),
          sizes: await keysOf('size-row'),
        }
        const same = ['versions', 'measures', 'ml', 'sizes'].every(
          (k) => JSON.stringify(seen[k]) === JSON.stringify(want[k]),
        )
        if (same) break
        seen.differs = true
        await sleep(250)
      }
      if (seen.differs) {
        const { d, ...w } = want
        throw new Error(`${model}: the page shows ${JSON.stringify(seen)}, the API has ${JSON.stringify(w)}`)
      }
      // A figure of each kind as formatted, against the API's (live: within a factor).
      const check1 = async (testid, key, stats) => {
        const text = (await page.locator(`[data-testid=${testid}][data-key=${key}] td`).nth(1).innerText()).trim()
        const v = parse(key, text)
        if (stats.p50 > 0 && (v > 3 * stats.p50 || stats.p50 > 3 * v)) {
          throw new Error(`${model} ${key} p50: the page says ${text}, the API ${stats.p50}`)
        }
      }
      if (want.ml.length) {
        withMl++
        await check1('measure-row', want.ml[0], want.d.ml[want.ml[0]])
      }
      if (want.sizes.length) await check1('size-row', want.sizes[0], want.d.sizes[want.sizes[0]])
      if (model === SLO_MODEL) await page.screenshot({ path: join(artifacts, 'detail-measures.png'), fullPage: true })
    }
    if (!withMl) note('no demo model sent ml figures: the measures panel showed sizes only')
  })

  await check("the detail page shows the model's normal beside the live figures", async () => {
    // The first normal needs a whole minute of history: up to three minutes of traffic.
    let pick = null
    for (let i = 0; i < 200 && !pick; i++) {
      const o = await api(server, '/api/v1/models')
      pick = o.models.find((m) => m.model !== SLO_MODEL && m.baseline?.ready && m.baseline.qps != null)
      if (!pick) await sleep(1000)
    }
    if (!pick) throw new Error('no model learnt a normal within 200 s')
    await page.goto(server.url + '/#/model/' + encodeURIComponent(pick.model))
    // How it was learnt, in the engine's words, and its figure beside the live one.
    const baseline = page.locator('[data-testid=baseline]')
    await baseline.filter({ hasText: 'per-minute medians over' }).waitFor({ timeout: 10000 })
    const b = await baseline.innerText()
    if (!b.includes('of the last 3 min')) throw new Error(`the normal's explanation: ${b}`)
    const normalQps = (await page.locator('[data-testid=normal-qps]').innerText()).trim()
    if (!/^normal \d+\.\d$/.test(normalQps)) throw new Error(`the normal QPS: ${normalQps}`)
    const want = (await api(server, '/api/v1/models/' + encodeURIComponent(pick.model))).baseline.qps
    if (Math.abs(Number(normalQps.slice(7)) - want) > 0.051) {
      throw new Error(`the page says ${normalQps}, the API ${want}`)
    }
    await page.screenshot({ path: join(artifacts, 'detail-normal.png'), fullPage: true })
  })

  await check('a monitor whose broker is down says so in a banner', async () => {
    const p2 = await ctx.newPage()
    try {
      await p2.goto(blind.url + '/')
      const banner = p2.locator('[data-testid=monitor-alert]', { hasText: 'broker down' })
      await banner.waitFor({ timeout: 20000 })
      const text = await banner.innerText()
      if (!text.includes('no connection to the broker') || !text.includes('request figures are unknown')) {
        throw new Error(`the banner: ${text}`)
      }
      // The alerts list has it too, with "monitor" as its subject and its explanation.
      const row = p2.locator('[data-testid=alerts] tr', { hasText: 'broker_down' })
      await row.waitFor({ timeout: 10000 })
      const cells = await row.innerText()
      if (!cells.includes('monitor') || !cells.includes('no connection to the broker')) throw new Error(cells)
      await p2.screenshot({ path: join(artifacts, 'monitor-banner.png'), fullPage: true })
    } finally {
      await p2.close()
    }
  })

  // Behind nginx under /modelmon/: every address the page uses must stay under the prefix
  // (an absolute /assets/app.js or /api would miss the monitor, nginx has nothing there).
  const needProxy = () => {
    if (!proxy) throw new Error('nginx did not start')
    return proxy
  }
  const base = () => needProxy().url + '/modelmon/'
  await check('nginx starts in front of the monitors (/modelmon/ and /private/)', async () => {
    proxy = await startNginx({ '/modelmon/': server.url, '/private/': guarded.url })
    // The config the README gives: a request without the trailing slash is sent to it.
    const r = await fetch(proxy.url + '/modelmon', { redirect: 'manual' })
    const to = r.headers.get('location') ?? ''
    if (r.status !== 301 || !to.endsWith('/modelmon/')) throw new Error(`/modelmon: ${r.status} to "${to}"`)
  })

  await check('behind nginx under /modelmon/, the overview shows every demo model, live', async () => {
    needProxy()
    proxied = await ctx.newPage()
    proxied.on('request', (r) => seen.requests.push(r.url()))
    proxied.on('response', (r) => r.status() >= 400 && seen.failed.push(`${r.status()} ${r.url()}`))
    proxied.on('pageerror', (e) => seen.errors.push(e.message))
    proxied.on('websocket', (ws) => {
      seen.sockets.push(ws.url())
      ws.on('framereceived', (f) => {
        seen.frames++
        const m = JSON.parse(String(f.payload))
        if (m.t === 'd') seen.details.push(m.detail?.model ?? null)
      })
      ws.on('framesent', (f) => seen.sent.push(String(f.payload)))
    })
    await proxied.goto(base())
    for (const n of names) {
      await proxied.locator(`tr[data-model="${n}"]`).waitFor({ timeout: 10000 })
    }
    await proxied.locator('[data-testid=conn]', { hasText: 'live' }).waitFor({ timeout: 5000 })
    // The WebSocket went through nginx, beside the page, and carries the overviews.
    const wsWant = base().replace(/^http/, 'ws') + 'ws'
    if (JSON.stringify(seen.sockets) !== JSON.stringify([wsWant])) {
      throw new Error(`WebSockets opened: ${JSON.stringify(seen.sockets)}, want ${wsWant}`)
    }
    // The header's time and the table both move with each overview pushed.
    const updated = proxied.locator('[data-testid=updated]')
    await proxied.waitForFunction(() => document.querySelector('[data-testid=updated]')?.innerText.trim() !== '', null, {
      timeout: 5000,
    })
    const t0 = (await updated.innerText()).trim()
    const rows0 = await proxied.locator('[data-testid=models] tbody').innerText()
    const frames0 = seen.frames
    await proxied.waitForFunction(
      ([t, r]) =>
        document.querySelector('[data-testid=updated]')?.innerText.trim() !== t &&
        document.querySelector('[data-testid=models] tbody')?.innerText !== r,
      [t0, rows0],
      { timeout: 5000 },
    )
    if (seen.frames <= frames0) throw new Error('the page changed, yet no WebSocket frame arrived')
    // The sparklines were seeded by the overview with its series, through the prefix too.
    if (!seen.requests.some((u) => u.startsWith(base() + 'api/v1/models?series=1'))) {
      throw new Error(`no seeding request under the prefix: ${seen.requests.join(' ')}`)
    }
    await proxied.screenshot({ path: join(artifacts, 'proxy-overview.png'), fullPage: true })
  })

  await check('behind nginx, a model\'s detail opens with its charts, live, and reloads', async () => {
    if (!proxied) throw new Error('no proxied page')
    const name = names[0]
    // By ?name=: a model's name is never part of the path nginx rewrites.
    const first = responseTo(proxied, `${base()}api/v1/model?name=${encodeURIComponent(name)}&range=5m`)
    await proxied.locator(`tr[data-model="${name}"] a`).click()
    const s5 = await statusOf(first, "the detail's history")
    if (s5 !== 200) throw new Error(`the detail's history: HTTP ${s5}`)
    const want = base() + '#/model/' + encodeURIComponent(name)
    if (proxied.url() !== want) throw new Error(`the detail's address is ${proxied.url()}, want ${want}`)
    const opened = async () => {
      await proxied.locator('[data-testid=detail] h1', { hasText: name }).waitFor({ timeout: 5000 })
      await proxied.locator('[data-testid=qps]').waitFor({ timeout: 5000 })
      await proxied.locator('figure.chart canvas').first().waitFor({ timeout: 10000 })
      const charts = await proxied.locator('figure.chart').count()
      if (charts !== 3) throw new Error(`expected 3 charts, saw ${charts}`)
    }
    await opened()
    // Its live figures come from the subscription, sent over the proxied WebSocket.
    const sub = JSON.stringify({ sub: name })
    for (let i = 0; i < 20 && !seen.sent.includes(sub); i++) await sleep(100)
    if (!seen.sent.includes(sub)) throw new Error(`never subscribed to ${name}: ${JSON.stringify(seen.sent)}`)
    const mine = () => seen.details.filter((m) => m === name).length
    for (let i = 0; i < 50 && mine() < 2; i++) await sleep(100)
    if (mine() < 2) throw new Error(`${mine()} detail messages for ${name} over the WebSocket in 5 s`)
    // Another range is fetched under the prefix as well.
    const hour = responseTo(proxied, `${base()}api/v1/model?name=${encodeURIComponent(name)}&range=1h`)
    await proxied.locator('.ranges button', { hasText: '1h' }).click()
    const s1h = await statusOf(hour, 'the 1h history')
    if (s1h !== 200) throw new Error(`the 1h history: HTTP ${s1h}`)
    await proxied.waitForTimeout(500)
    await proxied.screenshot({ path: join(artifacts, 'proxy-detail.png'), fullPage: true })
    // The hash route survives a reload of the page under the prefix.
    await proxied.reload()
    await opened()
    // Nothing the page asked for left the prefix or failed, and nothing threw.
    const outside = seen.requests.filter((u) => !u.startsWith(base()))
    if (outside.length) throw new Error(`asked outside /modelmon/: ${outside.join(' ')}`)
    if (seen.failed.length) throw new Error(`failed: ${seen.failed.join(' ')}`)
    if (seen.errors.length) throw new Error(`page errors: ${seen.errors.join(' | ')}`)
    note(`behind nginx: ${seen.requests.length} requests, all under /modelmon/; ${seen.frames} WebSocket frames`)
  })

  await check('behind nginx under /private/, ?token= once: its cookie, for that prefix only, opens the API and the WebSocket', async () => {
    const at = needProxy().url + '/private/'
    // Without the token nothing passes, through the proxy as directly.
    const denied = await fetch(at + 'api/v1/status')
    if (denied.status !== 401) throw new Error(`without a token: HTTP ${denied.status}`)
    const p = await ctx.newPage()
    try {
      const alerts = responseTo(p, at + 'api/v1/alerts')
      await p.goto(at + '?token=' + TOKEN)
      await p.locator('[data-testid=conn]', { hasText: 'live' }).waitFor({ timeout: 5000 })
      const sa = await statusOf(alerts, 'the alerts')
      if (sa !== 200) throw new Error(`the alerts: HTTP ${sa}`)
      // The token has left the address bar (and so the history, bookmarks and Referers).
      if (p.url() !== at) throw new Error(`the address once live: ${p.url()}`)
      const cookies = (await ctx.cookies(at)).filter((c) => c.name === 'modelmon_token')
      if (cookies.length !== 1 || cookies[0].path !== '/private') {
        throw new Error(`the token's cookie: ${JSON.stringify(cookies.map(({ value, ...c }) => c))}`)
      }
      // Not for the host's other paths: neither the other monitor under /modelmon/ nor /.
      for (const other of [base(), needProxy().url + '/']) {
        if ((await ctx.cookies(other)).some((c) => c.name === 'modelmon_token')) {
          throw new Error(`the token's cookie is sent to ${other} too`)
        }
      }
      // Opened again without the token in the address: the cookie carries page, API, socket.
      await p.goto('about:blank')
      const again = responseTo(p, at + 'api/v1/alerts')
      await p.goto(at)
      await p.locator('[data-testid=conn]', { hasText: 'live' }).waitFor({ timeout: 5000 })
      const sc = await statusOf(again, 'the alerts with the cookie')
      if (sc !== 200) throw new Error(`the alerts with the cookie: HTTP ${sc}`)
      // The overviews arrive over it: the header's time is set.
      await p.waitForFunction(() => document.querySelector('[data-testid=updated]')?.innerText.trim() !== '', null, {
        timeout: 5000,
      })
      // An alert's link followed from another site (chat, webmail): a top-level
      // navigation from localhost, a site other than 127.0.0.1, still carries the cookie.
      await p.goto(needProxy().url.replace('127.0.0.1', 'localhost') + '/ready')
      const linked = responseTo(p, at)
      await p.evaluate((u) => (location.href = u), at)
      const sl = await statusOf(linked, 'the dashboard linked from another site')
      if (sl !== 200) throw new Error(`the dashboard linked from another site: HTTP ${sl}`)
      await p.locator('[data-testid=conn]', { hasText: 'live' }).waitFor({ timeout: 5000 })
      // With a hash route, the token goes and the route stays.
      await p.goto(at + '?token=' + TOKEN + '#/model/none')
      await p.locator('[data-testid=conn]', { hasText: 'live' }).waitFor({ timeout: 5000 })
      if (p.url() !== at + '#/model/none') throw new Error(`the address once live: ${p.url()}`)
    } finally {
      await p.close()
      await ctx.clearCookies()
    }
  })

  await check('a lost server shows "reconnecting"', async () => {
    server.child.kill('SIGKILL')
    await page.locator('[data-testid=conn]', { hasText: 'reconnecting' }).waitFor({ timeout: 5000 })
    // And behind nginx, whose socket to it closes with it.
    if (proxied) {
      await proxied.locator('[data-testid=conn]', { hasText: 'reconnecting' }).waitFor({ timeout: 5000 })
    }
  })
} finally {
  await ctx.close()
  if (proxy) {
    await stopNginx(proxy)
    rmSync(proxy.dir, { recursive: true, force: true })
  }
  for (const srv of [server, canary, blind, guarded, restarted].filter(Boolean)) {
    srv.child.kill('SIGKILL')
    rmSync(srv.state, { recursive: true, force: true })
  }
  rmSync(profile, { recursive: true, force: true })
}

const passed = results.filter((r) => r[1]).length
const failed = results.length - passed
console.log(`browser: ${passed} passed, ${failed} failed`)
for (const n of notes) console.log(`note ${n}`)
process.exit(failed === 0 ? 0 : 1)
