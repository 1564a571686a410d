import { writeSync } from 'node:fs';

/**
 * The function's log stream (the shim's stdout), written with as few system calls as possible:
 * text is collected in memory and goes out in one `write(2)` right after an invocation's answer
 * (START, the runtime's lines, END and REPORT together), or at most `maxDelayMs` after it was
 * logged (lines written during init, or by a long invocation), or once `maxPendingBytes` have
 * piled up.
 *
 * A write that would block (a non-blocking pipe whose reader is behind) keeps the rest for the
 * next attempt instead of stalling the shim.
 */
export class FunctionLog {
  private pending = '';
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  constructor(
    private readonly fd: number,
    private readonly maxDelayMs = 100,
    private readonly maxPendingBytes = 64 * 1024,
  ) {}

  write(text: string): void {
    this.pending += text;
    if (this.pending.length >= this.maxPendingBytes) this.flush();
    else if (this.timer === undefined) {
      // One timer at a time, never re-armed by each write: a busy shim sets about ten a second.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.maxDelayMs);
      this.timer.unref();
    }
  }

  /**
   * An invocation's log is complete: it goes out on the next turn of the event loop, once the
   * invocation's answer has been written (the caller does not wait for the log), together with
   * the logs of invocations that ended in the same turn.
   */
  invocationEnded(): void {
    if (this.immediate !== undefined) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.flush();
    });
  }

  /** Writes what is pending now (or as much as the fd takes without blocking). */
  flush(): void {
    if (this.pending === '') return;
    const data = Buffer.from(this.pending, 'utf8');
    this.pending = '';
    let offset = 0;
    try {
      while (offset < data.length) offset += writeSync(this.fd, data, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
      // Kept for the next flush, ahead of anything logged meanwhile.
      this.pending = data.subarray(offset).toString('utf8') + this.pending;
      if (this.timer === undefined) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.flush();
        }, this.maxDelayMs);
        this.timer.unref();
      }
    }
  }

  /** Writes everything pending, waiting for the fd if it must (at exit). */
  flushSync(): void {
    for (let attempt = 0; this.pending !== '' && attempt < 1000; attempt++) {
      this.flush();
      if (this.pending !== '') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}
