/**
 * The Dockerfile as stages, for the tests that hold the image (docker.test.ts) and the deployment
 * files (deploy.test.ts) to it without a Docker engine.
 */
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')

/** A build stage: its name, its base image (global ARG defaults expanded), its instructions. */
export interface Stage {
  name: string
  base: string
  ins: { keyword: string; args: string }[]
}

export function parseDockerfile(text: string): Stage[] {
  // Comment lines go first (those inside a continuation too), then continuation lines are joined.
  const lines = text
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() !== '')
  const globalArgs: Record<string, string> = {}
  const stages: Stage[] = []
  for (const line of lines) {
    const [, word, args] = /^\s*(\w+)\s+(.*?)\s*$/.exec(line)!
    const keyword = word!.toUpperCase()
    if (keyword === 'FROM') {
      const [image, , name] = args!.split(/\s+/)
      stages.push({ name: name!, base: image!.replace(/\$\{(\w+)\}/g, (_, k: string) => globalArgs[k] ?? ''), ins: [] })
    } else if (stages.length === 0 && keyword === 'ARG') {
      const [k, v] = args!.split('=')
      globalArgs[k!] = v!
    } else {
      stages.at(-1)!.ins.push({ keyword, args: args! })
    }
  }
  return stages
}

export const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
export const byName = new Map(stages.map((s) => [s.name, s]))

export const argsOf = (s: Stage, keyword: string) => s.ins.filter((i) => i.keyword === keyword).map((i) => i.args)

/** `ENV a=b c=d`, every such line of the stage. */
export const envOf = (s: Stage): Record<string, string> =>
  Object.fromEntries(argsOf(s, 'ENV').flatMap((a) => [...a.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])))

/** The HEALTHCHECK's flags (`--interval=15s` as `{interval: '15s'}`) and its exec-form command (null in shell form). */
export function healthcheckOf(s: Stage): { flags: Record<string, string>; cmd: string[] | null } | undefined {
  const [hc] = argsOf(s, 'HEALTHCHECK')
  if (hc === undefined) return undefined
  const [, flags, cmd] = /^((?:--\S+\s+)*)CMD\s+(.*)$/.exec(hc) ?? []
  return {
    flags: Object.fromEntries([...(flags ?? '').matchAll(/--([\w-]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])),
    cmd: cmd?.startsWith('[') ? (JSON.parse(cmd) as string[]) : null,
  }
}
