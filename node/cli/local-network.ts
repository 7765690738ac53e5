/**
 * Real OS processes of `edgeward` on one machine: what the demo and the end-to-end tests
 * use to start peers, run commands against them, and stop everything they started. Peers
 * listen on 127.0.0.1 and run no mDNS unless asked (peers of one suite must not find those of
 * another); a peer may run in a Linux network namespace (`ip netns exec`), and so its commands.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AccessRefusedError, DeadlineError, ProcessExitError } from '../errors.ts'
import { ApiClient, type NodeInfo } from './client.ts'

export const BIN = join(import.meta.dirname, 'bin.ts')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
  ms: number
}

/** The program and arguments that run `node args` (inside network namespace `netns` when given). */
function nodeCommand(args: string[], netns: string | undefined): [string, string[]] {
  return netns === undefined ? [process.execPath, args] : ['ip', ['netns', 'exec', netns, process.execPath, ...args]]
}

/** What a process is run with: its stdin, what is added to our environment, the network namespace it runs in. */
export interface RunOptions {
  input?: string
  env?: NodeJS.ProcessEnv
  netns?: string
}

/** Run one `edgeward` command to completion (inside network namespace `netns` when given). */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return runNode([BIN, ...args], opts)
}

/** Run `node args` to completion (inside network namespace `netns` when given): what it wrote, its exit code, how long it took. */
export function runNode(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    const p = spawn(...nodeCommand(args, opts.netns), {
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', d => (stdout += d))
    p.stderr.on('data', d => (stderr += d))
    p.on('error', reject)
    p.on('close', code => resolve({ code: code ?? -1, stdout, stderr, ms: performance.now() - t0 }))
    p.stdin.end(opts.input ?? '')
  })
}

/** A node running as its own process (on 127.0.0.1 unless told), with its data directory, and the CLI pointed at it. */
export class LocalPeer {
  readonly name: string
  readonly dataDir: string
  readonly process: ChildProcess
  info: NodeInfo
  /** everything it wrote on stderr, from its start */
  stderr = ''
  /** the network namespace it runs in, if any: its commands run there too */
  readonly netns: string | undefined

  constructor(name: string, dataDir: string, proc: ChildProcess, info: NodeInfo, netns?: string) {
    this.name = name
    this.dataDir = dataDir
    this.process = proc
    this.info = info
    this.netns = netns
  }

  /** Run a command against this peer's data directory (in its network namespace). */
  cli(args: string[], opts: { input?: string } = {}): Promise<CliResult> {
    return runCli([...args, '--data', this.dataDir], { ...opts, netns: this.netns })
  }

  /**
   * The peer's local API, for tests and measurements that must not pay a process start per call
   * (not for a peer in a network namespace: its API listens on that namespace's 127.0.0.1).
   */
  api(): Promise<ApiClient> {
    return ApiClient.connect(this.dataDir)
  }

  /** SIGTERM, then wait for a clean exit (SIGKILL after the deadline). */
  async stop(deadlineMs = 10_000): Promise<number | null> {
    if (this.process.exitCode !== null) return this.process.exitCode
    const exited = new Promise<number | null>(resolve => this.process.once('exit', code => resolve(code)))
    this.process.kill('SIGTERM')
    const timer = setTimeout(() => this.process.kill('SIGKILL'), deadlineMs)
    const code = await exited
    clearTimeout(timer)
    return code
  }
}

/** Where a peer of the tests listens unless told: loopback only, any free port. */
export const LOOPBACK_LISTEN = ['/ip4/127.0.0.1/tcp/0']
/** The flags that keep a node a test starts by hand on loopback, and off the LAN's mDNS. */
export const LOOPBACK_FLAGS = ['--listen', LOOPBACK_LISTEN[0], '--no-mdns']

/**
 * What a node started with `--json` says first: its info line, once it listens. The deadline
 * kills it; an exit before that line rejects with what it said on stderr.
 */
export async function startedInfo(
  proc: ChildProcess,
  name: string,
  timeoutMs: number,
): Promise<{ info: NodeInfo; stderr: string }> {
  let stderr = ''
  proc.stderr?.on('data', d => (stderr += d))
  const info = await new Promise<NodeInfo>((resolve, reject) => {
    let stdout = ''
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new DeadlineError(`${name} did not start within ${timeoutMs} ms: ${stderr}`))
    }, timeoutMs)
    proc.stdout?.on('data', d => {
      stdout += d
      const nl = stdout.indexOf('\n')
      if (nl < 0) return
      clearTimeout(timer)
      try {
        resolve(JSON.parse(stdout.slice(0, nl)) as NodeInfo)
      } catch (err) {
        reject(err)
      }
    })
    proc.once('exit', code => {
      clearTimeout(timer)
      reject(new ProcessExitError(`${name} exited with ${code}: ${stderr.trim()}`))
    })
  })
  return { info, stderr }
}

/**
 * Start `edgeward start` (or `gateway`, with `args` such as `--mqtt-port 0`) for an
 * initialised data directory and wait until it is listening. It listens on `listen` (default
 * LOOPBACK_LISTEN; `[]`: what the data directory's configuration says) and runs mDNS only
 * with `mdns: true`; with `netns`, inside that Linux network namespace.
 */
export async function startPeer(
  name: string,
  dataDir: string,
  opts: {
    bootstrap?: string[]
    listen?: string[]
    mdns?: boolean
    netns?: string
    timeoutMs?: number
    env?: NodeJS.ProcessEnv
    command?: 'start' | 'gateway'
    args?: string[]
  } = {},
): Promise<LocalPeer> {
  const args = [BIN, opts.command ?? 'start', '--data', dataDir, '--json', ...(opts.args ?? [])]
  for (const b of opts.bootstrap ?? []) args.push('--bootstrap', b)
  for (const l of opts.listen ?? LOOPBACK_LISTEN) args.push('--listen', l)
  if (opts.mdns !== true) args.push('--no-mdns')
  const proc = spawn(...nodeCommand(args, opts.netns), {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const { info, stderr } = await startedInfo(proc, name, opts.timeoutMs ?? 20_000)
  const peer = new LocalPeer(name, dataDir, proc, info, opts.netns)
  // what it said while starting, then what it says as it runs
  peer.stderr = stderr
  proc.stderr.on('data', d => (peer.stderr += d))
  return peer
}

/** A data directory's node.json, or undefined when no node has written one. */
export async function readNodeJson(dataDir: string): Promise<NodeInfo | undefined> {
  const path = join(dataDir, 'node.json')
  return existsSync(path) ? (JSON.parse(await readFile(path, 'utf8')) as NodeInfo) : undefined
}

/** Poll `check` until it returns a value other than undefined, or fail at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  deadlineMs = 20_000,
  everyMs = 50,
): Promise<T> {
  const end = Date.now() + deadlineMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > end) throw new DeadlineError(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await new Promise(r => setTimeout(r, everyMs))
  }
}

/** Is a read of `stream` refused by the key holder right now (through the peer's API)? */
export async function isReadRefused(peer: LocalPeer, space: string, stream: string): Promise<boolean> {
  const api = await peer.api()
  try {
    for await (const _ of api.lines(`/v1/spaces/${space}/streams/${stream}/readings`)) {
      // reading succeeded
    }
    return false
  } catch (err) {
    if ((err as Error).name === AccessRefusedError.name) return true
    throw err
  }
}
