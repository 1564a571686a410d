/** Lambda's text log format for the function's log stream. */

export interface Report {
  requestId: string;
  durationMs: number;
  memorySizeMb: number;
  maxMemoryUsedMb: number;
  /** Only on a cold start. */
  initDurationMs?: number;
}

/** Lambda bills in 1 ms steps, never less than 1 ms. */
export function billedDurationMs(durationMs: number): number {
  return Math.max(1, Math.ceil(durationMs));
}

export function startLine(requestId: string, version: string): string {
  return `START RequestId: ${requestId} Version: ${version}\n`;
}

export function endLine(requestId: string): string {
  return `END RequestId: ${requestId}\n`;
}

export function reportLine(report: Report): string {
  let line =
    `REPORT RequestId: ${report.requestId}\tDuration: ${report.durationMs.toFixed(2)} ms\t` +
    `Billed Duration: ${billedDurationMs(report.durationMs)} ms\tMemory Size: ${report.memorySizeMb} MB\t` +
    `Max Memory Used: ${report.maxMemoryUsedMb} MB\t`;
  if (report.initDurationMs !== undefined) line += `Init Duration: ${report.initDurationMs.toFixed(2)} ms\t`;
  return line + '\n';
}

/**
 * One line the runtime wrote during an invocation, as it goes to the log stream: lines that
 * already carry the request id (the Node runtime's `<time>\t<id>\tINFO\tmsg`) stay as they are,
 * others get Lambda's time and request id prefix.
 */
export function tagLine(line: string, requestId: string | undefined, now: Date): string {
  if (requestId === undefined || line.includes(requestId)) return line + '\n';
  return `${now.toISOString()}\t${requestId}\t${line}\n`;
}

/** The last `maxBytes` of an invocation's log, base64, as in `X-Amz-Log-Result`. */
export function logTail(chunks: readonly string[], maxBytes: number): string {
  const all = Buffer.from(chunks.join(''), 'utf8');
  return all.subarray(Math.max(0, all.length - maxBytes)).toString('base64');
}

/** Splits a stream's chunks into whole lines, keeping an unfinished last line for the next chunk. */
export class LineSplitter {
  private pending = '';

  /** The complete lines in `chunk` (without their newline). */
  push(chunk: string): string[] {
    const text = this.pending + chunk;
    const lines = text.split('\n');
    this.pending = lines.pop() ?? '';
    return lines;
  }

  /** Whatever is left without a newline (e.g. when the process exits). */
  flush(): string | undefined {
    const rest = this.pending;
    this.pending = '';
    return rest === '' ? undefined : rest;
  }
}
