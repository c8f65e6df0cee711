/**
 * JSON classify parts of a scenario from loadtest/scenarios.json, under k6 (bring your own,
 * v0.57+ runs TypeScript directly):
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e SCENARIO=classify_constant loadtest/k6/classify.ts
 *
 * See lib.ts for the environment variables and the thresholds.
 */

import { buildOptions } from './lib.ts'

export { classify, setup } from './lib.ts'

export const options = buildOptions(['classify'])
