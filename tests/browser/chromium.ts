/**
 * @module
 * Finds Debian's Chromium and launches it headless with flags that work as root and offline.
 * Where no Chromium exists, `chromiumPath()` says why, and the browser tests skip with that reason.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser']

/** The Chromium executable (`CHROMIUM_PATH` when set), or why there is none. */
export function chromiumPath(): { path: string } | { path: null; reason: string } {
  const chosen = process.env.CHROMIUM_PATH
  if (chosen) {
    return existsSync(chosen) ? { path: chosen } : { path: null, reason: `CHROMIUM_PATH=${chosen} does not exist` }
  }
  for (const candidate of CANDIDATES) {
    if (existsSync(candidate)) return { path: candidate }
  }
  return {
    path: null,
    reason: 'no Chromium at /usr/bin/chromium (install it with `apt-get install -y chromium`, or set CHROMIUM_PATH)',
  }
}

const FLAGS = [
  '--headless',
  '--no-sandbox', // root in a container: the sandbox cannot start
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking', // no update checks, safe-browsing lists, etc.: nothing leaves the machine
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
]

export interface LaunchedBrowser {
  /** The one browser context; each test opens its own page (tab), so sessionStorage starts empty. */
  context: BrowserContext
  close(): Promise<void>
}

/**
 * Launches with a fresh profile (`--user-data-dir`, which Playwright takes as the persistent
 * context's folder) in a temporary folder, removed on close.
 */
export async function launchChromium(executablePath: string): Promise<LaunchedBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'because-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: FLAGS,
    timeout: 30_000,
    viewport: { width: 1000, height: 800 },
  })
  return {
    context,
    close: async () => {
      await context.close().catch(() => {})
      rmSync(profile, { recursive: true, force: true })
    },
  }
}
