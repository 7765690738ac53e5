/**
 * Run one of the project's scripts (a .ts file) in a child Node process, as a user would; or
 * an `edgeward` command, one that should end by itself or one that runs until stopped.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { BIN } from '../../node/cli/local-network.ts'

export interface ScriptResult {
  code: number | null
  stdout: string
  stderr: string
}

/** A child process whose output is collected as it comes: what it wrote so far, and its exit code once it ends. */
export interface Running {
  child: ChildProcess
  stdout: string
  stderr: string
  exited: Promise<number | null>
}

function collect(child: ChildProcess): Running {
  const running: Running = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve, reject) => {
      child.on('error', reject)
      child.on('close', resolve)
    }),
  }
  child.stdout?.on('data', d => (running.stdout += d))
  child.stderr?.on('data', d => (running.stderr += d))
  return running
}

export async function runScript(script: string, args: string[], nodeArgs: string[] = []): Promise<ScriptResult> {
  const run = collect(spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }))
  const code = await run.exited
  return { code, stdout: run.stdout, stderr: run.stderr }
}

/** An `edgeward` command in a process of its own (with `env`, or this process's), running until it ends or is killed. */
export function startEdgeward(args: string[], env?: NodeJS.ProcessEnv): Running {
  return collect(spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] }))
}

/**
 * An `edgeward` command that should end by itself (with `env`, or this process's): its exit
 * code and output, or -1 if it still ran after `deadlineMs` (it is killed then).
 */
export async function runToExit(
  args: string[],
  env?: NodeJS.ProcessEnv,
  deadlineMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = startEdgeward(args, env)
  const timer = setTimeout(() => run.child.kill('SIGKILL'), deadlineMs)
  try {
    const code = await run.exited
    return { code: code ?? -1, stdout: run.stdout, stderr: run.stderr }
  } finally {
    clearTimeout(timer)
  }
}
