// Notifications to the kernel (INVAL_INODE, INVAL_ENTRY, DELETE): what another machine changed,
// so that the kernel drops what it cached of it.
import { write as writeAsync } from 'node:fs';
import type { InvalidateEvent } from '../core/api.js';
import { encodeDelete, encodeInvalEntry, encodeInvalInode } from './codec.js';
import { Notify, OUT_HEADER_SIZE } from './protocol.js';

export class Notifier {
  notifications = 0;
  notifyFailures = 0;
  private readonly queue: Array<{ buf: Buffer; n: number; kind: string }> = [];
  private busy = false;

  /** `live()`: false before INIT and after DESTROY (nothing is sent then). */
  constructor(private readonly fd: number, private readonly live: () => boolean, private readonly debug: boolean) {}

  /**
   * Tells the kernel to drop cached data/names. Written from the threadpool, never inline: the
   * kernel may hold page or directory locks while it processes a notification and wait on a
   * request that only this thread can answer.
   */
  notify(ev: InvalidateEvent): void {
    if (!this.live()) return;
    let buf: Buffer;
    let n: number;
    if (ev.kind === 'inode') {
      buf = Buffer.allocUnsafe(OUT_HEADER_SIZE + 24);
      n = encodeInvalInode(buf, Notify.INVAL_INODE, ev.ino, ev.offset, ev.length);
    } else if (ev.kind === 'entry') {
      buf = Buffer.allocUnsafe(OUT_HEADER_SIZE + 16 + ev.name.length + 1);
      n = encodeInvalEntry(buf, Notify.INVAL_ENTRY, ev.parent, ev.name);
    } else {
      buf = Buffer.allocUnsafe(OUT_HEADER_SIZE + 24 + ev.name.length + 1);
      n = encodeDelete(buf, Notify.DELETE, ev.parent, ev.child, ev.name);
    }
    this.notifications++;
    this.queue.push({ buf, n, kind: ev.kind });
    this.pump();
  }

  /**
   * One notification in flight at a time. The kernel may block a notification until a request
   * it holds a lock for is answered (INVAL_ENTRY waits for the directory's lock, which an FSYNCDIR
   * holds while it waits for our reply); a burst of them written at once blocked every libuv
   * threadpool thread, and the reply they waited for needed one of those threads (the commit's file
   * I/O): a deadlock, seen with a replicated store applying another machine's untar.
   */
  private pump(): void {
    if (this.busy || !this.live()) return;
    const next = this.queue.shift();
    if (next === undefined) return;
    this.busy = true;
    writeAsync(this.fd, next.buf, 0, next.n, null, (err) => {
      this.busy = false;
      // ENOENT: the kernel does not know that inode/name (nothing cached) — fine.
      if (err && (err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.notifyFailures++;
        if (this.debug) process.stderr.write(`kernel: notify ${next.kind} failed: ${err.message}\n`);
      }
      this.pump();
    });
  }
}
