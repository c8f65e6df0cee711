/**
 * @module
 * What a JSON route answers when its body fails the schema: `invalid_request`, naming the first
 * offending field (`texts[3]: expected string, received number`), or the unknown fields along
 * with the allowed ones. The field's path travels as the error's `param`, which OpenAI-shaped
 * errors show.
 */
import type { z } from '@hono/zod-openapi'
import { ApiError } from './errors.js'

type ValidationResult = { success: true } | { success: false; error: z.ZodError }

/**
 * The validation hook of a route whose body is `schema` (pass it as `app.openapi`'s third
 * argument).
 *
 * @example
 * ```ts
 * app.openapi(classifyRoute, handler, rejectInvalid(ClassifyRequest))
 * ```
 */
export function rejectInvalid(schema: z.ZodObject): (result: ValidationResult) => undefined {
  const allowed = Object.keys(schema.shape)
  return function rejectInvalid(result) {
    if (result.success) return undefined
    const issue = result.error.issues[0]
    const path = issue ? fieldPath(issue.path) : ''
    // The field at fault: for an unknown field, that field rather than the object holding it.
    const param = issue?.code === 'unrecognized_keys' ? fieldPath([...issue.path, issue.keys[0]!]) : path
    throw new ApiError('invalid_request', formatIssue(issue, path, allowed), undefined, param || undefined)
  }
}

/** `messages[2].content`, from zod's `['messages', 2, 'content']`. */
const fieldPath = (path: readonly PropertyKey[]): string =>
  path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '')

function formatIssue(issue: z.core.$ZodIssue | undefined, path: string, allowed: string[]): string {
  if (!issue) return 'body: invalid'
  if (issue.code === 'unrecognized_keys') {
    return `${path || 'body'}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}; allowed: ${allowed.join(', ')}`
  }
  if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) {
    return `${path}: required (expected ${issue.expected})`
  }
  const message = issue.message.replace(/^Invalid input: /, '')
  return `${path || 'body'}: ${message}`
}
