/** Run one of the project's scripts (a .ts file) in a child Node process, as a user would. */
import { spawn } from 'node:child_process'

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
