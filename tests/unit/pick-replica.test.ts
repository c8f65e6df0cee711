import { describe, expect, it } from 'vitest'
import { pickReplica } from '../../src/engine/client.js'

const up = (numInFlight: number) => ({ info: {}, numInFlight })
const down = (numInFlight: number) => ({ info: null, numInFlight })

describe('pickReplica (which engine worker takes a request)', () => {
  it('takes the ready worker with the fewest sequences in flight', () => {
    const workers = [up(5), up(2), up(3)]
    expect(pickReplica(workers)).toBe(workers[1])
  })

  it('takes the lowest index on a tie', () => {
    const workers = [up(4), up(1), up(1)]
    expect(pickReplica(workers)).toBe(workers[1])
  })

  it('skips a worker that is starting or restarting, however idle', () => {
    const workers = [down(0), up(7)]
    expect(pickReplica(workers)).toBe(workers[1])
  })

  it('gives null when no worker is ready', () => {
    expect(pickReplica([down(0), down(0)])).toBeNull()
    expect(pickReplica([])).toBeNull()
  })
})
