import { timedOut } from './errors.js';
import type { InvokeRequest, InvokeResult } from './runtime-slot.js';

/** What the dispatcher needs of a slot. */
export interface Slot {
  readonly busy: boolean;
  readonly warm: boolean;
  invoke(request: InvokeRequest): Promise<InvokeResult>;
}

interface Waiting {
  request: InvokeRequest;
  arrivedAt: number;
  resolve: (result: InvokeResult | 'unavailable') => void;
  timer?: NodeJS.Timeout;
}

/** Picks a free slot, warm ones first. */
export function pickSlot<S extends Pick<Slot, 'busy' | 'warm'>>(slots: readonly S[]): S | undefined {
  return slots.find((slot) => slot.warm) ?? slots.find((slot) => !slot.busy);
}

/**
 * Hands invocations to runtime slots, one at a time per slot; the rest wait in arrival order
 * (bounded), and their deadline keeps counting while they wait.
 */
export class Dispatcher<S extends Slot = Slot> {
  private readonly waiting: Waiting[] = [];
  private closed = false;

  constructor(
    private readonly slots: readonly S[],
    private readonly capacity: number,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }

  /** 'unavailable': the queue is full or the instance is draining; another instance may take it. */
  submit(request: InvokeRequest): Promise<InvokeResult | 'unavailable'> {
    if (this.closed) return Promise.resolve('unavailable');
    if (this.waiting.length === 0) {
      const slot = pickSlot(this.slots);
      if (slot) return slot.invoke(request);
    }
    if (this.waiting.length >= this.capacity) return Promise.resolve('unavailable');
    return new Promise((resolve) => {
      const entry: Waiting = { request, arrivedAt: Date.now(), resolve };
      const waitMs = request.deadlineMs - Date.now();
      if (Number.isFinite(waitMs)) {
        entry.timer = setTimeout(() => this.expire(entry), Math.max(0, waitMs));
      }
      this.waiting.push(entry);
    });
  }

  /** Drops a waiting invocation whose caller went away; false when it already runs. */
  cancel(request: InvokeRequest): boolean {
    const index = this.waiting.findIndex((entry) => entry.request === request);
    if (index < 0) return false;
    const [entry] = this.waiting.splice(index, 1);
    clearTimeout(entry!.timer);
    entry!.resolve('unavailable');
    return true;
  }

  /** A slot became free: the longest waiting invocation goes next. */
  pump(): void {
    while (this.waiting.length > 0) {
      const slot = pickSlot(this.slots);
      if (!slot) return;
      const entry = this.waiting.shift()!;
      clearTimeout(entry.timer);
      void slot.invoke(entry.request).then(entry.resolve);
    }
  }

  /** Takes no more invocations; those still waiting are turned away. */
  close(): void {
    this.closed = true;
    for (const entry of this.waiting.splice(0)) {
      clearTimeout(entry.timer);
      entry.resolve('unavailable');
    }
  }

  private expire(entry: Waiting): void {
    const index = this.waiting.indexOf(entry);
    if (index < 0) return;
    this.waiting.splice(index, 1);
    const waitedMs = Date.now() - entry.arrivedAt;
    const error = timedOut(entry.request.requestId, waitedMs / 1000);
    entry.resolve({
      body: error.toBody(),
      errorType: error.errorType,
      durationMs: 0,
      billedDurationMs: 0,
      maxMemoryUsedMb: 0,
    });
  }
}
