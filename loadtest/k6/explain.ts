/**
 * Streamed /explain parts of a scenario from loadtest/scenarios.json, under k6 (bring your own,
 * v0.57+ runs TypeScript directly):
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e SCENARIO=explain_stream loadtest/k6/explain.ts
 *
 * k6 reads an SSE body only once it has ended: time to first token is the server's own
 * done.timings.ttft_ms (metric explain_ttft). See lib.ts for the environment variables.
 */

import { buildOptions } from './lib.ts'

export { explain, setup } from './lib.ts'

export const options = buildOptions(['explain'])
