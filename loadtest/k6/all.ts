/**
 * Every part of a scenario, classify and explain together (smoke, overload and soak mix both):
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8080 -e SCENARIO=overload loadtest/k6/all.ts
 *
 * See lib.ts for the environment variables and the thresholds.
 */

import { buildOptions } from './lib.ts'

export { classify, explain, setup } from './lib.ts'

export const options = buildOptions(['classify', 'explain'])
