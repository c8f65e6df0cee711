/**
 * Takes the README's screenshot (docs/chat.png): the real service with the committed model, a few
 * texts sent through the chat page in headless Chromium.
 *
 *   npx tsx tests/browser/readme-shot.ts
 */
import { chromiumPath, launchChromium } from './chromium.js'
import { openChat, send } from './harness.js'
import { startRealService } from './real-service.js'

const TEXTS = [
  "I didn't feel humiliated, just a little lonely tonight.",
  'I was so thrilled when the results came in!!! 😊',
]

const found = chromiumPath()
if (found.path === null) throw new Error(found.reason)
const service = await startRealService()
const browser = await launchChromium(found.path)
try {
  const { page } = await openChat(browser.context, service.url, { width: 860, height: 1070 })
  for (const [i, text] of TEXTS.entries()) {
    await send(page, text)
    await page.locator('.answer').nth(i).locator('.meta').waitFor({ timeout: 30_000 })
  }
  const out = new URL('../../docs/chat.png', import.meta.url).pathname
  await page.screenshot({ path: out, animations: 'disabled' })
  console.log(`wrote ${out}`)
} finally {
  await browser.close()
  await service.stop()
}
