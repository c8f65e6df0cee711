import { HTTPException } from 'hono/http-exception'
import { describe, expect, it } from 'vitest'
import { EngineError } from '../../src/engine/types.js'
import { ApiError, ERROR_STATUS, toApiError } from '../../src/http/errors.js'
import { planProviders } from '../../src/model/session.js'

describe('planProviders', () => {
  it('cpu: the CPU only', () => {
    expect(planProviders('cpu', null)).toEqual({ attempts: ['cpu'], fallback: false })
  })

  it('auto: CUDA then the CPU when the library is there, the CPU with a reason when not', () => {
    expect(planProviders('auto', '/x/libonnxruntime_providers_cuda.so')).toEqual({ attempts: ['cuda', 'cpu'], fallback: true })
    const plan = planProviders('auto', null)
    expect(plan.attempts).toEqual(['cpu'])
    expect(plan.skipReason).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/)
  })

  it('cuda: CUDA without fallback; nothing to try (and a reason) without the library', () => {
    expect(planProviders('cuda', '/x/lib.so')).toEqual({ attempts: ['cuda'], fallback: false })
    const plan = planProviders('cuda', null)
    expect(plan.attempts).toEqual([])
    expect(plan.skipReason).toMatch(/CUDA 12 and cuDNN 9/)
  })
})

describe('errors', () => {
  it('maps every engine failure to a code with its status', () => {
    const cases = [
      ['queue_full', 'queue_full', 429],
      ['deadline_exceeded', 'deadline_exceeded', 504],
      ['not_ready', 'not_ready', 503],
      ['cancelled', 'client_closed_request', 499],
      ['engine_failed', 'engine_failed', 500],
    ] as const
    for (const [reason, code, status] of cases) {
      const e = toApiError(new EngineError(reason, 'x'))
      expect([e.code, e.status]).toEqual([code, status])
    }
    expect(toApiError(new EngineError('queue_full', 'x')).retryAfter).toBe(1)
  })

  it('maps the framework exceptions of bad requests to 4xx codes', () => {
    expect(toApiError(new HTTPException(400, { message: 'Malformed JSON in request body' })).code).toBe('malformed_json')
    expect(toApiError(new HTTPException(413)).code).toBe('body_too_large')
    expect(toApiError(new HTTPException(415)).code).toBe('unsupported_media_type')
  })

  it('turns anything else into internal_error without leaking its message', () => {
    const e = toApiError(new Error('secret path /etc/x'))
    expect(e.toJSON()).toEqual({ error: { code: 'internal_error', message: 'internal error' } })
  })

  it('has one status per code', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(new ApiError(code as keyof typeof ERROR_STATUS, 'm').status).toBe(status)
    }
  })
})
