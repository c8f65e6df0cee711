/**
 * Entry point: `npm start` (tsx src/main.ts [flags]). Parses the configuration, starts the service,
 * and stops it on SIGTERM/SIGINT. A bad flag or a model that cannot be served prints one line to
 * stderr and exits 1.
 */
import { ConfigError, parseConfig, usage } from './config.js'
import { createLogger } from './obs/logger.js'
import { StartupError, startService } from './server.js'

const argv = process.argv.slice(2)
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(usage())
  process.exit(0)
}

let config
try {
  config = parseConfig(argv, process.env, Boolean(process.stdout.isTTY))
} catch (e) {
  if (!(e instanceof ConfigError)) throw e
  console.error(`because: ${e.message}`)
  process.exit(1)
}

const logger = createLogger(config)
try {
  const running = await startService(config, logger)
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal ends the drain at once.
      logger.info({ signal }, 'ending the drain now')
      void running.shutdown(0)
      return
    }
    stopping = true
    logger.info({ signal, drain_timeout_ms: config.drainTimeoutMs }, 'shutting down')
    running.shutdown(config.drainTimeoutMs).then(
      () => {
        logger.info('stopped')
        logger.flush?.()
        process.exit(0)
      },
      (err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
} catch (e) {
  // A keys file that cannot be used is a ConfigError, found only when the service starts.
  if (!(e instanceof StartupError) && !(e instanceof ConfigError)) throw e
  console.error(`because: ${e.message}`)
  logger.flush?.()
  process.exit(1)
}
