import { readFileSync } from 'node:fs'
import { pino } from 'pino'
import { parse } from 'yaml'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config.js'
import { createApp } from '../../src/http/app.js'
import { ERROR_STATUS } from '../../src/http/errors.js'
import { openapiYaml } from '../../src/http/openapi.js'

describe('openapi.yaml', () => {
  const config = parseConfig([], {})
  const app = createApp({
    service: { models: [], limits: config, runtime: { device: config.device, provider: 'cpu', threads: 1, workers: 1 } },
    logger: pino({ level: 'silent' }),
  })
  const generated = openapiYaml(app)

  it('is what the code generates (run `npm run openapi` after changing a route or schema)', () => {
    expect(readFileSync('openapi.yaml', 'utf8')).toBe(generated)
  })

  it('describes every route and every error code', () => {
    const doc = parse(generated) as { paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, any> } }
    expect(Object.keys(doc.paths).sort()).toEqual(['/', '/classify', '/explain', '/healthz', '/info', '/metrics', '/openapi.yaml', '/readyz', '/v1/chat/completions', '/v1/models'])
    expect(doc.components.schemas.Error.properties.error.properties.code.enum).toEqual(Object.keys(ERROR_STATUS))
    const classify = doc.paths['/classify']!.post as { responses: Record<string, unknown> }
    expect(Object.keys(classify.responses).sort()).toEqual(['200', '400', '401', '413', '415', '422', '429', '500', '503', '504'])
  })

  it("describes labels as the serving model's strings, not a fixed list", () => {
    const doc = parse(generated) as { components: { schemas: Record<string, any> } }
    const { Label, Scores } = doc.components.schemas
    expect(Label.type).toBe('string')
    expect(Label.enum).toBeUndefined()
    expect(Label.description).toMatch(/GET \/info/)
    expect(Scores.type).toBe('object')
    expect(Scores.properties).toBeUndefined()
    expect(Scores.required).toBeUndefined()
    expect(Scores.additionalProperties).toEqual({ type: 'number', minimum: 0, maximum: 1 })
  })

  it('gives the OpenAI-compatible routes OpenAI error bodies, statuses and both response forms', () => {
    const doc = parse(generated) as { paths: Record<string, Record<string, any>>; components: { schemas: Record<string, any> } }
    const chat = doc.paths['/v1/chat/completions']!.post
    expect(Object.keys(chat.responses).sort()).toEqual(['200', '400', '401', '404', '413', '415', '429', '500', '503', '504'])
    for (const [status, r] of Object.entries<any>(chat.responses)) {
      if (status !== '200') expect(r.content['application/json'].schema.$ref, status).toBe('#/components/schemas/OpenAIError')
    }
    expect(Object.keys(chat.responses['200'].content).sort()).toEqual(['application/json', 'text/event-stream'])
    expect(doc.components.schemas.OpenAIError.properties.error.properties.code.enum).toEqual(Object.keys(ERROR_STATUS))
    expect(Object.keys(doc.components.schemas.ChatCompletion.properties.choices.items.properties.message.properties)).toContain('scores')
  })
})
