// The dashboard in a real browser: Debian's headless Chromium driven by playwright-core,
// against `modelmon-tui --headless --demo --serve 127.0.0.1:0`.
// Usage: node tests/browser/dashboard.mjs   (MODELMON_TUI=path overrides the binary)
// Exits non-zero when a check fails; screenshots go to tests/browser/artifacts/.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
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

function startServer() {
  const state = mkdtempSync(join(tmpdir(), 'modelmon-browser-'))
  const child = spawn(bin, ['--headless', '--demo', '--no-docker', '--serve', '127.0.0.1:0'], {
    env: { ...process.env, XDG_CONFIG_HOME: '/nonexistent', XDG_STATE_HOME: state, MODELMON_TOKEN: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
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

const results = []
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

const server = await startServer()
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

  await check("a model's detail opens with its charts", async () => {
    const name = names[0]
    await page.locator(`tr[data-model="${name}"] a`).click()
    await page.locator('[data-testid=detail] h1', { hasText: name }).waitFor({ timeout: 5000 })
    await page.locator('[data-testid=qps]').waitFor({ timeout: 5000 })
    const charts = await page.locator('figure.chart').count()
    if (charts < 5) throw new Error(`expected 5 charts, saw ${charts}`)
    await page.locator('.ranges button', { hasText: '1h' }).click()
    await page.waitForTimeout(500)
    await page.screenshot({ path: join(artifacts, 'detail.png'), fullPage: true })
  })

  await check('a lost server shows "reconnecting"', async () => {
    server.child.kill('SIGKILL')
    await page.locator('[data-testid=conn]', { hasText: 'reconnecting' }).waitFor({ timeout: 5000 })
  })
} finally {
  await ctx.close()
  server.child.kill('SIGKILL')
  rmSync(profile, { recursive: true, force: true })
  rmSync(server.state, { recursive: true, force: true })
}

const passed = results.filter((r) => r[1]).length
const failed = results.length - passed
console.log(`browser: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
