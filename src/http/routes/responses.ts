/**
 * @module
 * Shorthands for the response entries of the route definitions (what openapi.yaml lists).
 */
import type { z } from '@hono/zod-openapi'
import { ErrorResponse } from '../schemas.js'

export const jsonBody = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})

/** An error answer; `description` names its codes. */
export const errorBody = (description: string) => jsonBody(ErrorResponse, description)

export const UNAUTHORIZED = errorBody('unauthorized: API keys are configured and Authorization: Bearer <key> is missing or wrong.')
