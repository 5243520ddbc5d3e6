/**
 * Vite's React template, as a newcomer gets it: `npm create vite` with the react-ts template, then
 * `npm install`, both from the npm registry into a folder under the system's temp directory (outside the
 * repository; made once per machine and reused, since it does not change). Its dev server runs as a child
 * process on a free port of 127.0.0.1; `vite build` writes a production build.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { freePort } from '../../demo/free-port.js';

/** The create-vite release the template comes from (its package.json names the vite and plugin versions). */
export const CREATE_VITE = 'create-vite@9.3.0';

const READY = '.idporten-bff-ready';

/** How long an npm step may take on a slow registry connection. */
const NPM_TIMEOUT_MS = 240_000;

/** The template's folder with its packages installed; made on first use. Rejects when npm cannot make it. */
export async function viteReactTemplate(): Promise<string> {
  const dir = join(tmpdir(), `idporten-bff-${CREATE_VITE.replace('@', '-')}-react-ts`);
  if (existsSync(join(dir, READY))) return dir;
  const staging = mkdtempSync(join(tmpdir(), 'idporten-bff-vite-'));
  try {
    // `npm create vite@V` runs create-vite@V.
    await run('npm', ['create', '--yes', CREATE_VITE.replace(/^create-/, ''), 'app', '--', '--template', 'react-ts', '--no-interactive'], staging);
    const app = join(staging, 'app');
    await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], app);
    writeFileSync(join(app, READY), `${CREATE_VITE}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(app, dir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return dir;
}

/** Runs a command to its end; rejects with its output when it fails. */
export function run(command: string, args: string[], cwd: string, timeoutMs = NPM_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${output.slice(-2000)}`));
    });
  });
}

/** The template's own vite, run with node. */
function viteArgs(dir: string, args: string[]): string[] {
  return [join(dir, 'node_modules', 'vite', 'bin', 'vite.js'), ...args];
}

/** `vite build` into `outDir`. */
export async function viteBuild(dir: string, outDir: string): Promise<void> {
  await run(process.execPath, viteArgs(dir, ['build', '--outDir', outDir, '--emptyOutDir']), dir, 120_000);
}

/** Starts the dev server (HMR on) on a free port of 127.0.0.1; stopped at the test's teardown. */
export async function startViteDevServer(t: Test, dir: string): Promise<{ url: string; process: ChildProcess; output: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, viteArgs(dir, ['--host', '127.0.0.1', '--port', String(port), '--strictPort', '--clearScreen', 'false']), {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`vite exited (${child.exitCode}): ${output}`);
    const up = await fetch(url).then((res) => res.ok, () => false);
    if (up) break;
    if (Date.now() > deadline) throw new Error(`vite did not answer within 30 s: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { url, process: child, output: () => output };
}
