/**
 * End-to-end tests of the chat page (src/page/index.html) in headless Chromium.
 *
 * - "against the real service": src/main.ts with the committed model, started as a child process.
 *   The happy path (reasoning growing over time, label, six bars, highlights), the empty message,
 *   queueing, keyboard use, the phone width, 422, 429, the API-key flow, and an unreachable
 *   service (the browser refuses the connection via page.route, then Retry reaches the service).
 * - "against a fake service" (fake-service.ts): only what the real service cannot be made to
 *   produce on demand: a connection cut mid-stream, a 500, an `error` event mid-stream, a stream
 *   slow enough to press Stop, an /info that fails or lists the labels in another order, a model
 *   with labels of its own (3, and 12: more than the page has colours for) and a model picker.
 * - "with two models of different labels": the real service serving the embedded model and a copy
 *   relabelled with three labels of its own; the page's model picker switches between them.
 *
 * Without Chromium every test here is reported as skipped, with the reason in its suite's name.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { chromiumPath, launchChromium, type LaunchedBrowser } from './chromium.js'
import { EMOTIONS, startFakeService, type FakeService } from './fake-service.js'
import { openChat, reasoningStates, recordReasoningStates, screenshot, send } from './harness.js'
import { loadPageCore } from './page-core.js'
import { realServiceMissing, startRealService, type RealService } from './real-service.js'
import { SUPPORT, relabelledPackage } from '../support/relabel.js'
import { QRA } from '../support/service.js'

const LABELS = ['sadness', 'joy', 'love', 'anger', 'fear', 'surprise']
const core = loadPageCore()

const found = chromiumPath()
const noBrowser = found.path === null ? found.reason : null
const noService = realServiceMissing()
if (noBrowser) console.warn(`browser tests skipped: ${noBrowser}`)
else if (noService) console.warn(`real-service browser tests skipped: ${noService}`)
const skipped = (reason: string | null) => (reason ? ` (SKIPPED: ${reason})` : '')

// One browser per suite, closed before its server stops: Chromium keeps idle (and preconnected)
// sockets open, which would hold the service's graceful shutdown open.
let browser: LaunchedBrowser | undefined
async function openBrowser(): Promise<void> {
  browser = await launchChromium(found.path!)
}
async function closeBrowser(): Promise<void> {
  await browser?.close()
  browser = undefined
}

/** Sends two texts in one go, so the second is certainly sent while the first streams. */
/**
 * Submits two texts in one task and returns how the second answer looks right then (its state and
 * queued note): read in the same task, because the real engine can finish the first answer before
 * the test's next round trip to the page.
 */
async function sendTwoAtOnce(page: Page, first: string, second: string): Promise<{ state: string | null; note: string | null }> {
  return page.evaluate(
    ([a, b]) => {
      const input = document.getElementById('input') as HTMLTextAreaElement
      const form = document.getElementById('composer') as HTMLFormElement
      input.value = a!
      form.requestSubmit()
      input.value = b!
      form.requestSubmit()
      const answer = document.querySelectorAll('.answer')[1]
      return { state: answer?.getAttribute('data-state') ?? null, note: answer?.querySelector('.queued-note')?.textContent ?? null }
    },
    [first, second],
  )
}

/** The computed colour of each score bar of the newest answer. */
async function barColours(page: Page): Promise<string[]> {
  return page.locator('.answer').last().locator('.bar > span').evaluateAll((spans) => spans.map((s) => getComputedStyle(s).backgroundColor))
}

/** The answer's label, its score rows and the percentages shown, once it is done. */
async function finishedAnswer(page: Page, nth = 0) {
  const answer = page.locator('.answer').nth(nth)
  await answer.locator('.meta').waitFor({ timeout: 30_000 })
  expect(await answer.getAttribute('data-state')).toBe('done')
  const label = (await answer.locator('.label').textContent())!
  const rows = answer.locator('.scores .score')
  const names = await rows.locator('.score-name').allTextContents()
  const pcts = (await rows.locator('.score-pct').allTextContents()).map((t) => parseFloat(t.replace(/^[<>]/, '')))
  const widths = await rows.locator('.bar > span').evaluateAll((spans) =>
    spans.map((s) => (s as HTMLElement).style.width),
  )
  return { label, names, pcts, widths, reasoning: (await answer.locator('.reasoning').textContent())! }
}

describe.skipIf(noBrowser !== null || noService !== null)(
  `chat page against the real service${skipped(noBrowser ?? noService)}`,
  () => {
    let service: RealService

    beforeAll(async () => {
      // One batch row and no waiting room, so the 429 test below can fill it. The page itself
      // sends one request at a time, so the other tests never notice.
      ;[service] = await Promise.all([
        startRealService(['--max-batch', '1', '--max-queue', '0', '--threads', '1']),
        openBrowser(),
      ])
    }, 120_000)
    afterAll(async () => {
      await closeBrowser()
      await service?.stop()
    })

    it('streams the reasoning in steps, then shows the label, six bars and highlights', async () => {
      const { page, requests, errors } = await openChat(browser!.context, service.url)
      await recordReasoningStates(page)
      const text = "I didn't feel humiliated, I felt so alone and sad tonight."
      await send(page, text)
      const answer = await finishedAnswer(page)

      // The reasoning grew over time: at least two distinct partial states before the label, each
      // a prefix of the final reasoning, seen at different moments.
      const states = await reasoningStates(page)
      const partial = states.filter((s) => !s.labelled && s.reasoning !== '')
      expect(partial.length, JSON.stringify(states)).toBeGreaterThanOrEqual(2)
      for (const s of partial) expect(answer.reasoning.startsWith(s.reasoning)).toBe(true)
      expect(new Set(partial.map((s) => s.reasoning)).size).toBe(partial.length)
      expect(partial.at(-1)!.t).toBeGreaterThan(partial[0]!.t)
      expect(states.findIndex((s) => s.labelled)).toBeGreaterThan(states.indexOf(partial.at(-1)!))

      // The label and one bar per emotion, with percentages that add up.
      expect(LABELS).toContain(answer.label)
      expect(answer.names).toEqual(LABELS)
      expect(Math.abs(answer.pcts.reduce((a, b) => a + b, 0) - 100)).toBeLessThan(1)
      expect(answer.pcts[LABELS.indexOf(answer.label)]).toBe(Math.max(...answer.pcts))
      expect(answer.widths.every((w) => /^\d+(\.\d+)?%$/.test(w))).toBe(true)

      // Highlights: every phrase the reasoning quotes that occurs in the text is marked in it.
      const quoted = core.quotedPhrases(answer.reasoning).map((p) => core.normalize(p)).filter((p) => p !== '')
      const inText = quoted.filter((p) => ` ${core.normalize(text)} `.includes(` ${p} `))
      expect(inText.length, `quoted: ${JSON.stringify(quoted)}`).toBeGreaterThan(0)
      const marks = (await page.locator('.user mark').allTextContents()).map((m) => core.normalize(m))
      for (const p of inText) expect(marks.some((m) => ` ${m} `.includes(` ${p} `))).toBe(true)
      // In the reasoning, quotes found in the text are marked like the text; the others (an emoji's
      // name) differently.
      expect(await page.locator('.reasoning mark:not(.absent)').count()).toBe(
        quoted.filter((p) => inText.includes(p)).length,
      )
      expect(await page.locator('.reasoning mark.absent').count()).toBe(
        quoted.filter((p) => !inText.includes(p)).length,
      )

      // Screen readers: the log is a polite live region, and the answer is no longer busy.
      expect(await page.locator('#log').getAttribute('aria-live')).toBe('polite')
      expect(await page.locator('.answer').getAttribute('aria-busy')).toBe('false')

      // Nothing outside the service's own origin was requested, and nothing broke.
      const origin = new URL(service.url).origin
      expect(requests.filter((u) => new URL(u).origin !== origin)).toEqual([])
      expect(requests.some((u) => u.endsWith('/explain'))).toBe(true)
      expect(errors).toEqual([])
      await screenshot(page, 'real-answer')
      await page.close()
    })

    it('does not send an empty or blank message', async () => {
      const { page, requests } = await openChat(browser!.context, service.url)
      await page.locator('#input').press('Enter')
      await send(page, '   \n  ')
      await page.getByRole('button', { name: 'Send' }).click()
      expect(await page.locator('#hint').textContent()).toContain('Nothing to send yet')
      expect(await page.locator('.exchange').count()).toBe(0)
      expect(requests.filter((u) => u.endsWith('/explain'))).toEqual([])
      await screenshot(page, 'real-empty')
      await page.close()
    })

    it('is usable from the keyboard: Shift+Enter adds a line, Tab reaches Send, focus is visible', async () => {
      const { page } = await openChat(browser!.context, service.url)
      const input = page.locator('#input')
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('input')
      expect(await page.locator('label[for="input"]').textContent()).toBeTruthy()
      await input.pressSequentially('so happy')
      await input.press('Shift+Enter')
      await input.pressSequentially('and grateful')
      expect(await input.inputValue()).toBe('so happy\nand grateful')
      expect(await page.locator('.exchange').count()).toBe(0)

      await page.keyboard.press('Tab')
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('send')
      const outline = await page.locator('#send').evaluate((b) => getComputedStyle(b).outlineStyle)
      expect(outline).not.toBe('none')
      await page.keyboard.press('Enter')
      const answer = await finishedAnswer(page)
      expect(LABELS).toContain(answer.label)
      expect(await page.locator('.user').textContent()).toBe('so happy\nand grateful')
      await page.close()
    })

    it('queues a text sent while an answer streams, shows it, then answers both', async () => {
      const { page } = await openChat(browser!.context, service.url)
      const second = await sendTwoAtOnce(page, 'i am so angry at him', 'what a lovely surprise this was')
      expect(second.state).toBe('queued')
      expect(second.note).toContain('Queued: starts when the answer above finishes')
      await finishedAnswer(page, 0)
      const b = await finishedAnswer(page, 1)
      expect(LABELS).toContain(b.label)
      expect(await page.locator('.queued-note').count()).toBe(0)
      await page.close()
    })

    it('shows a 422 (nothing left to classify) readably and offers to edit the text', async () => {
      const { page } = await openChat(browser!.context, service.url)
      await send(page, '… --- ### ~')
      const notice = page.locator('.answer .notice[role="alert"]')
      await notice.waitFor({ timeout: 15_000 })
      expect(await notice.locator('p').first().textContent()).toBe('The service could not take this text (HTTP 422).')
      expect(await notice.locator('.notice-detail').textContent()).toMatch(/^text: .+\.$/)
      expect(await notice.getByRole('button', { name: 'Retry' }).count()).toBe(0)
      await notice.getByRole('button', { name: 'Edit text' }).click()
      expect(await page.locator('#input').inputValue()).toBe('… --- ### ~')
      await screenshot(page, 'real-422')
      await page.close()
    })

    it('says so when the service cannot be reached, and retries', async () => {
      const { page } = await openChat(browser!.context, service.url)
      // The browser refuses the connection, as it would with the service down.
      await page.route('**/explain', (route) => route.abort('connectionrefused'))
      await send(page, 'i feel so calm and content')
      const notice = page.locator('.answer .notice[role="alert"]')
      await notice.waitFor({ timeout: 15_000 })
      expect(await notice.textContent()).toContain('Could not reach the service.')
      await page.unroute('**/explain')
      await notice.getByRole('button', { name: 'Retry' }).click()
      const answer = await finishedAnswer(page)
      expect(LABELS).toContain(answer.label)
      expect(await page.locator('.answer .notice').count()).toBe(0)
      await page.close()
    })

    it('reads well at phone width (375 px)', async () => {
      const { page } = await openChat(browser!.context, service.url, { width: 375, height: 720 })
      await send(page, 'I was shocked and amazed when they told me the news!')
      await finishedAnswer(page)
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      expect(overflow).toBeLessThanOrEqual(0)
      const sendBox = await page.locator('#send').boundingBox()
      expect(sendBox!.x + sendBox!.width).toBeLessThanOrEqual(375)
      await screenshot(page, 'real-phone')
      await page.close()
    })

    it('shows a 429 with its Retry-After and retries once the service has room', async () => {
      const { page } = await openChat(browser!.context, service.url)
      // Keep the only batch row busy from Node, so the page's request finds the queue full.
      let busy = true
      const explain = new URL('explain', service.url)
      const load = Array.from({ length: 6 }, async () => {
        while (busy) {
          await fetch(explain, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
            body: JSON.stringify({ text: 'i feel so sad and lonely and tired of waiting for nothing at all' }),
          }).then((r) => r.text()).catch(() => {})
        }
      })
      const notice = page.locator('.answer .notice[role="alert"]').last()
      let got429 = false
      for (let attempt = 0; attempt < 5 && !got429; attempt++) {
        await send(page, 'i feel so happy')
        const last = page.locator('.answer').last()
        await expect.poll(() => last.getAttribute('data-state'), { timeout: 15_000 }).toMatch(/done|failed/)
        got429 = (await last.getAttribute('data-state')) === 'failed'
      }
      busy = false
      await Promise.all(load)
      expect(got429).toBe(true)
      expect(await notice.locator('p').first().textContent()).toMatch(
        /^The service is busy right now\. Try again in (about \d+ seconds?|a moment)\.$/,
      )
      expect(await notice.locator('.notice-detail').textContent()).toMatch(/\S/)
      await screenshot(page, 'real-429')

      await notice.getByRole('button', { name: 'Retry' }).click()
      const answer = page.locator('.answer').last()
      await answer.locator('.meta').waitFor({ timeout: 30_000 })
      expect(LABELS).toContain(await answer.locator('.label').textContent())
      expect(await answer.locator('.notice').count()).toBe(0)
      await page.close()
    })
  },
)

describe.skipIf(noBrowser !== null || noService !== null)(
  `chat page against the real service with API keys${skipped(noBrowser ?? noService)}`,
  () => {
    const KEY = 'test-key-0123456789abcdef'
    let service: RealService
    let unauthenticatedStatus = 0
    beforeAll(async () => {
      await openBrowser()
      service = await startRealService([], { API_KEYS: KEY })
      const res = await fetch(new URL('explain', service.url), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ text: 'hello' }),
      })
      unauthenticatedStatus = res.status
    }, 120_000)
    afterAll(async () => {
      await closeBrowser()
      await service?.stop()
    })

    it('asks for an API key on 401, keeps it in the tab only, and retries', async () => {
      expect(unauthenticatedStatus, 'POST /explain without a key, API_KEYS set').toBe(401)
      const { page } = await openChat(browser!.context, service.url)
      await send(page, 'i am terrified of tomorrow')
      const field = page.getByLabel('API key')
      await field.waitFor({ timeout: 15_000 })
      expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('api-key')
      await field.fill('wrong-key')
      await field.press('Enter')
      await expect.poll(() => page.locator('.key-prompt').textContent()).toContain('did not accept that API key')
      expect(await page.evaluate(() => sessionStorage.getItem('because.apiKey'))).toBeNull()
      await screenshot(page, 'real-401')
      await page.getByLabel('API key').fill(KEY)
      await page.getByRole('button', { name: 'Use key' }).click()
      const answer = await finishedAnswer(page)
      expect(LABELS).toContain(answer.label)
      expect(await page.evaluate(() => sessionStorage.getItem('because.apiKey'))).toBe(KEY)
      expect(await page.evaluate(() => localStorage.length)).toBe(0)

      // A new tab starts without the key.
      const other = await openChat(browser!.context, service.url)
      expect(await other.page.evaluate(() => sessionStorage.getItem('because.apiKey'))).toBeNull()
      await other.page.close()
      await page.close()
    })
  },
)

describe.skipIf(noBrowser !== null || noService !== null)(
  `chat page against the real service with two models of different labels${skipped(noBrowser ?? noService)}`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'because-browser-labels-'))
    let service: RealService
    beforeAll(async () => {
      const support = relabelledPackage(dir, 'support', SUPPORT)
      ;[service] = await Promise.all([startRealService(['--models', `${QRA},${support}`, '--threads', '1']), openBrowser()])
    }, 120_000)
    afterAll(async () => {
      await closeBrowser()
      await service?.stop()
      rmSync(dir, { recursive: true, force: true })
    })

    it('picks the model, and shows the answer in its own labels', async () => {
      const { page, requests, errors } = await openChat(browser!.context, service.url)
      const picker = page.getByLabel('Model')
      await page.locator('#model-picker').waitFor()
      expect(await picker.locator('option').allTextContents()).toEqual(['emotion-qra-natural', SUPPORT.id])
      await picker.selectOption(SUPPORT.id)
      await send(page, 'Why is my order late again? I am so angry about it')
      const answer = await finishedAnswer(page)
      expect(SUPPORT.labels).toContain(answer.label)
      expect(answer.names).toEqual(SUPPORT.labels)
      expect(Math.abs(answer.pcts.reduce((a, b) => a + b, 0) - 100)).toBeLessThan(1)
      expect(answer.pcts[SUPPORT.labels.indexOf(answer.label)]).toBe(Math.max(...answer.pcts))
      expect(await page.locator('.answer .meta').textContent()).toContain(SUPPORT.id)

      await picker.selectOption('emotion-qra-natural')
      await send(page, 'i feel so happy today')
      const emotion = await finishedAnswer(page, 1)
      expect(emotion.names).toEqual(LABELS)
      expect(requests.filter((u) => u.endsWith('/explain'))).toHaveLength(2)
      expect(errors).toEqual([])
      await screenshot(page, 'real-two-models')
      await page.close()
    })
  },
)

describe.skipIf(noBrowser !== null)(`chat page against a fake service${skipped(noBrowser)}`, () => {
  let fake: FakeService

  beforeAll(async () => {
    ;[fake] = await Promise.all([startFakeService(), openBrowser()])
  }, 60_000)
  afterAll(async () => {
    await closeBrowser()
    await fake?.close()
  })

  it('shows a connection lost mid-stream, keeps the partial reasoning, and retries', async () => {
    const { page } = await openChat(browser!.context, fake.url)
    fake.script({ kind: 'drop', deltas: ['the', ' words', ' "feel'] })
    await send(page, 'I feel lucky today')
    const notice = page.locator('.answer .notice[role="alert"]')
    await expect.poll(() => notice.textContent()).toContain('connection was lost')
    expect(await page.locator('.answer').getAttribute('data-state')).toBe('lost')
    expect(await page.locator('.answer .reasoning').textContent()).toBe('the words "feel')
    await screenshot(page, 'fake-lost-connection')

    await notice.getByRole('button', { name: 'Retry' }).click()
    await page.locator('.answer[data-state="done"] .label').waitFor()
    expect(await page.locator('.answer .label').textContent()).toBe('joy')
    expect(await page.locator('.answer .notice').count()).toBe(0)
    expect(await page.locator('.user mark').allTextContents()).toEqual(['feel lucky'])
    await page.close()
  })

  it('shows a 500 readably and retries', async () => {
    const { page } = await openChat(browser!.context, fake.url)
    fake.script({ kind: 'status', status: 500, code: 'internal', message: 'the worker crashed' })
    await send(page, 'what a day')
    const notice = page.locator('.answer .notice[role="alert"]')
    await notice.waitFor()
    expect(await notice.textContent()).toContain('The service failed to answer (HTTP 500).')
    expect(await notice.locator('.notice-detail').textContent()).toBe('the worker crashed.')
    await screenshot(page, 'fake-500')
    await notice.getByRole('button', { name: 'Retry' }).click()
    await page.locator('.answer[data-state="done"] .label').waitFor()
    await page.close()
  })

  it('shows an error event that arrives after the stream started', async () => {
    const { page } = await openChat(browser!.context, fake.url)
    fake.script({ kind: 'error-event', deltas: ['the', ' word'], code: 'deadline', message: 'deadline passed' })
    await send(page, 'so tired')
    const notice = page.locator('.answer .notice[role="alert"]')
    await notice.waitFor()
    expect(await notice.textContent()).toContain('The model stopped with an error.')
    expect(await notice.locator('.notice-detail').textContent()).toBe('deadline passed.')
    expect(await page.locator('.answer').getAttribute('data-state')).toBe('failed')
    expect(await notice.getByRole('button', { name: 'Retry' }).count()).toBe(1)
    await page.close()
  })

  it("lists the scores in the order /info gives the model's labels", async () => {
    fake.models = [{ ...EMOTIONS, labels: [...LABELS].reverse() }]
    try {
      const { page } = await openChat(browser!.context, fake.url)
      await expect.poll(() => fake.requests.some((r) => r.path === '/info')).toBe(true)
      await send(page, 'I feel lucky')
      const answer = await finishedAnswer(page)
      expect(answer.names).toEqual([...LABELS].reverse())
      expect(await page.locator('#info-error').isHidden()).toBe(true)
      await page.close()
    } finally {
      fake.models = [EMOTIONS]
    }
  })

  it("serves a model with its own labels: their names, in its order, each its own colour", async () => {
    const support = { id: 'support-fake', labels: ['question', 'complaint', 'praise'] }
    fake.models = [support]
    try {
      const { page, errors } = await openChat(browser!.context, fake.url)
      await expect.poll(() => page.locator('#model').inputValue()).toBe(support.id)
      // One model: nothing to choose.
      expect(await page.locator('#model-picker').isHidden()).toBe(true)
      fake.script({ kind: 'answer', label: 'complaint' })
      await send(page, 'Why is my order late again?')
      const answer = await finishedAnswer(page)
      expect(answer.label).toBe('complaint')
      expect(answer.names).toEqual(support.labels)
      expect(await page.locator('.answer .caption').allTextContents()).toEqual(['Reasoning', 'Label'])
      expect(JSON.parse(fake.requests.filter((r) => r.path === '/explain').at(-1)!.body)).toEqual({ text: 'Why is my order late again?', model: 'support-fake' })
      const colours = await barColours(page)
      expect(new Set(colours).size).toBe(3)
      const pill = await page.locator('.answer .label').evaluate((n) => getComputedStyle(n).backgroundColor)
      expect(pill).toBe(colours[1])
      expect(errors).toEqual([])
      await screenshot(page, 'fake-other-labels')

      // Past the palette, every label still gets a colour of its own.
      fake.models = [{ id: 'many-fake', labels: Array.from({ length: 12 }, (_, k) => `topic-${k}`) }]
      const many = await openChat(browser!.context, fake.url)
      await expect.poll(() => many.page.locator('#model').inputValue()).toBe('many-fake')
      fake.script({ kind: 'answer', label: 'topic-10' })
      await send(many.page, 'Something else entirely')
      expect((await finishedAnswer(many.page)).names).toHaveLength(12)
      expect(new Set(await barColours(many.page)).size).toBe(12)
      await many.page.close()
      await page.close()
    } finally {
      fake.models = [EMOTIONS]
    }
  })

  it('offers a model picker when /info lists several models, and asks the chosen one', async () => {
    const support = { id: 'support-fake', labels: ['question', 'complaint', 'praise'] }
    fake.models = [EMOTIONS, support]
    try {
      const { page, errors } = await openChat(browser!.context, fake.url)
      const picker = page.getByLabel('Model')
      await page.locator('#model-picker').waitFor()
      expect(await picker.locator('option').allTextContents()).toEqual([EMOTIONS.id, support.id])
      expect(await picker.inputValue()).toBe(EMOTIONS.id)
      expect(await page.locator('#model-labels').textContent()).toBe(`Labels: ${LABELS.join(', ')}`)
      await screenshot(page, 'fake-model-picker')

      // The default first, then the other; each answer shows its own model's labels.
      await send(page, 'I feel lucky')
      expect((await finishedAnswer(page, 0)).names).toEqual(LABELS)
      await picker.selectOption(support.id)
      expect(await page.locator('#model-labels').textContent()).toBe('Labels: question, complaint, praise')
      fake.script({ kind: 'answer', label: 'praise' })
      await send(page, 'Thank you, that was quick')
      const second = await finishedAnswer(page, 1)
      expect(second.names).toEqual(support.labels)
      expect(second.label).toBe('praise')
      const bodies = fake.requests.filter((r) => r.path === '/explain').slice(-2).map((r) => JSON.parse(r.body) as { model: string })
      expect(bodies.map((b) => b.model)).toEqual([EMOTIONS.id, support.id])
      // The first answer keeps the labels of the model that gave it.
      expect((await finishedAnswer(page, 0)).names).toEqual(LABELS)
      // The picker is reachable from the keyboard and can be changed with it.
      await picker.focus()
      await page.keyboard.press('ArrowUp')
      expect(await picker.inputValue()).toBe(EMOTIONS.id)
      expect(errors).toEqual([])
      await page.close()
    } finally {
      fake.models = [EMOTIONS]
    }
  })

  it('says so when /info cannot be read, and tries again until it can', async () => {
    fake.models = null
    const { page } = await openChat(browser!.context, fake.url)
    const error = page.locator('#info-error')
    await error.waitFor()
    expect(await error.textContent()).toBe('Could not load the models and their labels from /info (HTTP 503); trying again…')
    await screenshot(page, 'fake-info-error')
    fake.models = [EMOTIONS]
    await error.waitFor({ state: 'hidden', timeout: 10_000 })
    await page.close()
  })

  it('shows a text read in parts one part after another, marks the part that decided, and highlights all', async () => {
    const { page, errors } = await openChat(browser!.context, fake.url)
    const text = 'The flight was cancelled. Nobody helped. I am furious.'
    fake.script({
      kind: 'windows',
      windows: [
        { start: 0, end: 25, deltas: ['sadness, because of "', 'cancelled', '".'] },
        { start: 26, end: 54, deltas: ['anger, because of "', 'furious', '".'] },
      ],
      deciding: 1,
    })
    await send(page, text)
    await page.locator('.answer[data-state="done"]').waitFor()
    const parts = page.locator('.answer .reasoning .part')
    expect(await parts.locator('.part-head').allTextContents()).toEqual([
      'Part 1 of 2 (characters 0–25)',
      'Part 2 of 2 (characters 26–54): decided the label',
    ])
    expect(await parts.locator('.part-body').allTextContents()).toEqual(['sadness, because of "cancelled".', 'anger, because of "furious".'])
    expect(await page.locator('.answer .part.deciding .part-body').textContent()).toBe('anger, because of "furious".')
    expect(await page.locator('.user mark').allTextContents()).toEqual(['cancelled', 'furious'])
    expect(await page.locator('.answer .meta').textContent()).toContain('read in 2 parts')
    expect(errors).toEqual([])
    await screenshot(page, 'fake-windows')
    await page.close()
  })

  it('says how many tokens of a text it was not given (truncate start or end)', async () => {
    const { page } = await openChat(browser!.context, fake.url)
    fake.script({ kind: 'answer', dropped: 12 })
    await send(page, 'I feel lucky')
    await page.locator('.answer[data-state="done"]').waitFor()
    expect(await page.locator('.answer .meta').textContent()).toContain('12 tokens of the text not read (longer than the model reads)')
    await page.close()
  })

  it('stops a streaming answer with the Stop button', async () => {
    const { page } = await openChat(browser!.context, fake.url)
    fake.script({ kind: 'answer', gapMs: 400 })
    await send(page, 'I feel lucky')
    await expect.poll(() => page.locator('.answer .reasoning').textContent()).not.toBe('')
    await page.getByRole('button', { name: 'Stop this answer' }).click()
    await page.locator('.answer[data-state="stopped"]').waitFor()
    expect(await page.locator('.answer .notice').textContent()).toContain('Stopped.')
    expect(await page.locator('.answer .label').count()).toBe(0)
    // The Stop button went away with the stream; keyboard focus is back in the text box.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('input')
    await page.close()
  })
})
