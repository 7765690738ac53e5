/**
 * Run one of the project's scripts (a .ts file) in a child Node process, as a user would; or
 * an `edgeward` command that should end by itself.
 */
import { spawn } from 'node:child_process'
import { BIN } from '../../node/cli/local-network.ts'

export interface ScriptResult {
  code: number | null
  stdout: string
  stderr: string
}

export function runScript(script: string, args: string[], nodeArgs: string[] = []): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', d => (stdout += d))
    child.stderr.on('data', d => (stderr += d))
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
  })
}

/**
 * An `edgeward` command that should end by itself (with `env`, or this process's): its exit
 * code and stderr, or -1 if it still ran after 20 s (it is killed then).
 */
export function runToExit(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    proc.stderr.on('data', d => (stderr += d))
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
    proc.on('error', reject)
    proc.on('close', code => {
      clearTimeout(timer)
      resolve({ code: code ?? -1, stderr })
    })
  })
}
