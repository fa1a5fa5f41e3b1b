// `atedb solo` from dist/ for the network benchmarks (net, auth, cluster): resolves with its port
// once it prints its listening line; stderr goes to the benchmark's.
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

export async function startAtedb(repo: string, dataDir: string, args: string[] = []): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [path.join(repo, 'dist', 'cli', 'atedb.js'), 'solo', '--data-dir', dataDir, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /listening: [\d.]+:(\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', () => reject(new Error(`atedb exited: ${text}`)));
  });
  return { proc, port };
}
