// Entry of the engine worker thread: registers tsx's loader (so the TypeScript sources run without
// a build step, under `npm start` and under vitest alike), then runs worker.ts.
import { register } from 'tsx/esm/api'

register()
await import('./worker.ts')
