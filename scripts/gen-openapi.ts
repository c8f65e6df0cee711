/**
 * Writes openapi.yaml (repository root) from the routes' schemas: `npm run openapi`.
 * With --check, exits 1 when the committed file differs instead of writing it.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { pino } from 'pino'
import { createApp } from '../src/http/app.js'
import { openapiYaml } from '../src/http/openapi.js'
import { parseConfig } from '../src/config.js'

const config = parseConfig([], {})
const app = createApp({
  service: { models: [], limits: config, runtime: { device: config.device, provider: 'cpu', threads: 1, workers: 1 } },
  logger: pino({ level: 'silent' }),
})
const yaml = openapiYaml(app)
const path = new URL('../openapi.yaml', import.meta.url)
if (process.argv.includes('--check')) {
  let current = ''
  try {
    current = readFileSync(path, 'utf8')
  } catch {}
  if (current !== yaml) {
    console.error('openapi.yaml is out of date; run npm run openapi')
    process.exit(1)
  }
} else {
  writeFileSync(path, yaml)
  console.log(`wrote openapi.yaml (${yaml.length} bytes)`)
}
