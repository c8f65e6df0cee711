/**
 * @module
 * openapi.yaml from the routes' own schemas. `npm run openapi` writes it to the repository root;
 * a test fails when the committed file differs from what this produces.
 */
import { stringify } from 'yaml'
import { VERSION } from '../version.js'
import type { App } from './app.js'

export function openapiDocument(app: App) {
  return app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'because',
      version: VERSION,
      description:
        'Classifies text with a small generative model that first writes a short reasoning, then the label: one of the labels of the model package serving the request. Each package brings its own labels (GET /info lists them per model; the embedded models know six emotions). Errors are `{"error": {"code", "message"}}`; under /v1/ (the OpenAI-compatible routes) they are OpenAI\'s `{"error": {"message", "type", "param", "code"}}`.',
    },
  })
}

export function openapiYaml(app: App): string {
  return stringify(openapiDocument(app), { lineWidth: 0 })
}
