import type { ServerResponse } from 'node:http';
import { headerValue } from '@hearth/api/http-connection';

/** An answer of the gateway's own routes, written by whichever server took the call. */
export interface InvokeAnswer {
  status: number;
  /** Besides the length, and the type (JSON) when `json`. */
  headers: Record<string, string>;
  body: Buffer;
  json: boolean;
}

/** Writes an answer on Node's HTTP server. */
export function writeAnswer(res: ServerResponse, answer: InvokeAnswer): void {
  const headers: Record<string, string | number> = { ...answer.headers };
  if (answer.status !== 204) headers['Content-Length'] = answer.body.length;
  if (answer.json) headers['Content-Type'] = 'application/json';
  res.writeHead(answer.status, headers).end(answer.body);
}

/** The answer's headers as lines of an HTTP/1.1 head, for the gateway's own front. */
export function headerLines(answer: InvokeAnswer): string {
  let lines = '';
  for (const name in answer.headers) lines += `${name}: ${headerValue(answer.headers[name]!)}\r\n`;
  return lines;
}
