/**
 * @module
 * The pino logger: readable lines on a terminal, JSON otherwise (LOG_FORMAT overrides).
 */
import { pino } from 'pino'
import type { Logger } from 'pino'
import pretty from 'pino-pretty'
import type { Config } from '../config.js'

export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>): Logger {
  const options = { level: config.logLevel, base: { service: 'because' } }
  if (config.logFormat === 'pretty') {
    return pino(options, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service', singleLine: true }))
  }
  return pino(options)
}
