/**
 * What some tests read from outside this repository, which CI always has: `../shared` next to
 * the checkout, and `training/.venv` (made by scripts/ensure-venv.sh, which `npm test` runs). A
 * test that needs one fails where it is missing, naming it: never a skip, never a silent pass.
 */
import { existsSync } from 'node:fs'

const WHERE = {
  'shared data': 'CI provides ../shared next to the checkout',
  'Python environment': 'bash scripts/ensure-venv.sh creates it (npm test runs it)',
} as const

/** `path` as given; throws `<what> missing: <path>; <where it comes from>` when it does not exist. */
export function required(what: keyof typeof WHERE, path: string): string {
  if (!existsSync(path)) throw new Error(`${what} missing: ${path}; ${WHERE[what]}`)
  return path
}
