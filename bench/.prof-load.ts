import { readFileSync } from 'node:fs'
import { closedLoop } from './lib/client.js'
const [base, c, n] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])]
const texts = readFileSync('../shared/data/emotion/validation.jsonl', 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string)
await closedLoop(base, texts, { concurrency: c, requests: 50 })
const r = await closedLoop(base, texts, { concurrency: c, requests: n, offset: 50 })
const ok = r.samples.filter((s) => s.ok).length
console.log(`C=${c} ${ok}/${n} ok in ${(r.elapsedMs / 1000).toFixed(1)} s: ${(ok / (r.elapsedMs / 1000)).toFixed(1)} cls/s`)
