/**
 * @module
 * Page-level helpers shared by the browser tests: open the chat page, send a text, watch the
 * reasoning grow, list the requests the page made, save screenshots.
 */
import { mkdirSync } from 'node:fs'
import type { BrowserContext, Page } from 'playwright-core'

export const SCREENSHOT_DIR = new URL('../../test-output/browser/', import.meta.url)

export interface OpenedPage {
  page: Page
  /** Every URL the page requested, in order. */
  requests: string[]
  /** Console errors and uncaught page errors (a CSP violation shows up here too). */
  errors: string[]
}

export async function openChat(
  context: BrowserContext,
  url: string,
  viewport = { width: 1000, height: 800 },
): Promise<OpenedPage> {
  const page = await context.newPage()
  await page.setViewportSize(viewport)
  const requests: string[] = []
  const errors: string[] = []
  page.on('request', (r) => requests.push(r.url()))
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  page.on('pageerror', (e) => errors.push(String(e)))
  await page.goto(url)
  await page.locator('#status-line[data-state="ready"]').waitFor({ timeout: 15_000 })
  return { page, requests, errors }
}

/** Types into the text box and presses Enter, as a person would. */
export async function send(page: Page, text: string): Promise<void> {
  await page.locator('#input').fill(text)
  await page.locator('#input').press('Enter')
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true })
  // animations: 'disabled' completes the score bars' grow transition before the shot.
  await page.screenshot({ path: new URL(`${name}.png`, SCREENSHOT_DIR).pathname, animations: 'disabled' })
}

export interface ReasoningState {
  t: number
  reasoning: string
  labelled: boolean
}

/**
 * Starts recording, inside the page, every state the newest answer passes through: its reasoning
 * text and whether the label is shown yet, with a timestamp. Read them with `reasoningStates`.
 */
export async function recordReasoningStates(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { __states: ReasoningState[] }
    w.__states = []
    const log = document.getElementById('log')!
    const take = () => {
      const answers = log.querySelectorAll('.answer')
      const last = answers[answers.length - 1]
      if (!last) return
      const reasoning = last.querySelector('.reasoning')?.textContent ?? ''
      const labelled = last.querySelector('.label') !== null
      const prev = w.__states[w.__states.length - 1]
      if (!prev || prev.reasoning !== reasoning || prev.labelled !== labelled) {
        w.__states.push({ t: performance.now(), reasoning, labelled })
      }
    }
    new MutationObserver(take).observe(log, { childList: true, subtree: true, characterData: true })
  })
}

export async function reasoningStates(page: Page): Promise<ReasoningState[]> {
  return page.evaluate(() => (window as unknown as { __states: ReasoningState[] }).__states)
}
