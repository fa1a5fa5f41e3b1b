// One writer per chain directory, across processes.
//
// Node has no flock(2), so the lock is a file created with O_EXCL that holds "<pid> <start time>".
// It is stale when that process is gone, or when the PID now belongs to a process that started at
// a different time (PID reuse; start time from /proc/<pid>/stat). A stale lock is taken over by
// renaming it away first, so of two processes racing for a stale lock only one can win the rename.
// The lock is released on close(); a crashed writer leaves a stale lock, which the next open takes over.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DiskFull, isDiskFullCode, LogLockedError } from './errors.js';
import { LOCK } from './format.js';

function procStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields restart after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null; // field 22 (starttime) overall
  } catch {
    return null;
  }
}

function alive(pid: number, start: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = procStart(pid);
  return !(start && now && now !== start);
}

export interface DirLock {
  release(): void;
}

export function lockDir(dir: string): DirLock {
  const file = path.join(dir, LOCK);
  const me = `${process.pid} ${procStart(process.pid) ?? ''}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      try {
        fs.writeSync(fd, me);
      } catch (e) {
        // e.g. ENOSPC: an empty lock file would look like a writer in the middle of locking
        fs.closeSync(fd);
        fs.unlinkSync(file);
        throw e;
      }
      fs.closeSync(fd);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          try {
            if (fs.readFileSync(file, 'utf8') === me) fs.unlinkSync(file);
          } catch {
            /* already gone */
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw isDiskFullCode(e) ? new DiskFull(`locking ${dir}: ${(e as Error).message}`, e.code) : e;
    }
    let content = '';
    try {
      content = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // vanished between open and read: retry
    }
    const [pidStr, start] = content.trim().split(' ');
    const pid = Number(pidStr);
    if (content.length > 0 && Number.isInteger(pid) && pid > 0 && alive(pid, start))
      throw new LogLockedError(`chain directory ${dir} is locked by process ${pid}`);
    if (content.length === 0) {
      // A writer between create and write, or one that died right there: give it a moment.
      const st = fs.statSync(file, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs < 2000) throw new LogLockedError(`chain directory ${dir} is being locked by another process`);
    }
    const aside = `${file}.stale-${process.pid}-${attempt}`;
    try {
      fs.renameSync(file, aside);
      fs.unlinkSync(aside);
    } catch {
      /* someone else took it over first: retry */
    }
  }
  throw new LogLockedError(`could not lock chain directory ${dir}`);
}

const memLocks = new Set<string>();
export function lockMemory(key: string): DirLock {
  if (memLocks.has(key)) throw new LogLockedError(`in-memory log ${key} already has a writer`);
  memLocks.add(key);
  return { release: () => void memLocks.delete(key) };
}
