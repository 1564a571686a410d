import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import type { FunctionDetails, Runtime } from '@hearth/api';
import { humanLine } from './children.js';
import { GatewayClient, serviceError } from './client.js';
import { CliError, ExitCode } from './errors.js';
import { configurationFields, packageSizeProblem, readManifest, templateFiles } from './function-folder.js';
import { packageFolder } from './package.js';
import type { Settings } from './settings.js';

/** The parts of Lambda's FunctionConfiguration the CLI shows. */
interface FunctionConfiguration {
  FunctionName: string;
  Runtime?: string;
  Handler?: string;
  MemorySize: number;
  Timeout: number;
  CodeSize: number;
  CodeSha256: string;
  LastModified: string;
  State: string;
  StateReason?: string;
  LastUpdateStatus: string;
  LastUpdateStatusReason?: string;
}

const out = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
const note = (text: string) => process.stderr.write(`${text}\n`);
const fn = (name: string) => `/2015-03-31/functions/${encodeURIComponent(name)}`;

function print(settings: Settings, json: unknown, human: () => string): void {
  out(settings.output === 'json' ? JSON.stringify(json, null, 2) : human());
}

export async function init(name: string, runtime: Runtime, into: string | undefined): Promise<void> {
  const dir = resolve(into ?? name);
  if (existsSync(join(dir, 'hearth.json')))
    throw new CliError(`${dir} already has a hearth.json: pick another name or folder`, ExitCode.usage);
  const { files, executable } = templateFiles(name, runtime);
  await mkdir(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) await writeFile(join(dir, file), content);
  for (const file of executable) await chmod(join(dir, file), 0o755);
  note(`Created ${dir} (${runtime}): ${Object.keys(files).join(', ')}`);
  note(`Next: hearth deploy ${into ?? name}`);
}

/**
 * Reads the function's configuration every 300 ms until `settled` accepts it; `known` is a
 * configuration just read, so that the first look costs no request.
 */
async function pollConfiguration(
  client: GatewayClient,
  name: string,
  timeoutMs: number,
  wait: { settled: (c: FunctionConfiguration) => boolean; stillBeing: (c: FunctionConfiguration) => string },
  known?: FunctionConfiguration,
): Promise<FunctionConfiguration> {
  const deadline = Date.now() + timeoutMs;
  const read = async () =>
    (await client.json<{ Configuration: FunctionConfiguration }>('GET', fn(name))).Configuration;
  for (let c = known ?? (await read()); ; c = await read()) {
    if (wait.settled(c)) return c;
    if (Date.now() > deadline)
      throw new CliError(
        `${name} is still ${wait.stillBeing(c)} after ${timeoutMs / 1000} s: "hearth get ${name}" shows where it is`,
      );
    await sleep(300);
  }
}

/** Waits until the function is Active and its last update Successful; Failed ends the wait. */
function waitUntilReady(client: GatewayClient, name: string, timeoutMs: number) {
  return pollConfiguration(client, name, timeoutMs, {
    settled: (c) => {
      if (c.State === 'Failed' || c.LastUpdateStatus === 'Failed') {
        throw new CliError(
          `${name} failed to start: ${c.LastUpdateStatusReason ?? c.StateReason ?? 'no reason given'}\n  next: fix the code and run "hearth deploy" again; "hearth logs ${name}" shows its output`,
        );
      }
      return c.State === 'Active' && c.LastUpdateStatus === 'Successful';
    },
    stillBeing: (c) => `${c.State}/${c.LastUpdateStatus}`,
  });
}

/**
 * Waits until the function's last update has finished: the API, like Lambda's, refuses an update
 * while another is in progress (ResourceConflictException).
 */
async function waitForUpdateToFinish(
  client: GatewayClient,
  name: string,
  timeoutMs: number,
  known?: FunctionConfiguration,
): Promise<void> {
  await pollConfiguration(
    client,
    name,
    timeoutMs,
    { settled: (c) => c.LastUpdateStatus !== 'InProgress', stillBeing: () => 'being updated' },
    known,
  );
}

export async function deploy(
  settings: Settings,
  folder: string | undefined,
  options: { wait: boolean; timeoutSeconds: number },
): Promise<void> {
  const dir = resolve(folder ?? '.');
  const manifest = await readManifest(dir);
  const pkg = await packageFolder(dir);
  const tooLarge = packageSizeProblem(pkg.zip.length, pkg.unzippedBytes);
  if (tooLarge) throw new CliError(`cannot deploy ${manifest.name}: ${tooLarge}`, ExitCode.usage);
  if (settings.output === 'text')
    note(
      `Packaged ${manifest.name}: ${pkg.files} file${pkg.files === 1 ? '' : 's'}, ${kb(pkg.zip.length)} zipped (${kb(pkg.unzippedBytes)} unzipped)`,
    );

  const client = new GatewayClient(settings);
  const existing = await client.request('GET', `${fn(manifest.name)}/configuration`);
  if (existing.status >= 400 && existing.status !== 404) throw serviceError(existing);
  const zipFile = pkg.zip.toString('base64');
  const upload = (body: string) =>
    withProgressBar(settings, Buffer.byteLength(body), (onUploadProgress) => ({ body, onUploadProgress }));
  if (existing.status === 404) {
    await client.json(
      'POST',
      '/2015-03-31/functions',
      await upload(
        JSON.stringify({
          FunctionName: manifest.name,
          ...configurationFields(manifest),
          Code: { ZipFile: zipFile },
        }),
      ),
    );
  } else {
    const timeoutMs = options.timeoutSeconds * 1000;
    // The configuration read above says whether an update is still rolling out.
    const current = JSON.parse(existing.body.toString('utf8')) as FunctionConfiguration;
    await waitForUpdateToFinish(client, manifest.name, timeoutMs, current);
    await client.json('PUT', `${fn(manifest.name)}/configuration`, {
      body: JSON.stringify(configurationFields(manifest)),
    });
    await waitForUpdateToFinish(client, manifest.name, timeoutMs);
    await client.json('PUT', `${fn(manifest.name)}/code`, await upload(JSON.stringify({ ZipFile: zipFile })));
  }
  const configuration = options.wait
    ? await waitUntilReady(client, manifest.name, options.timeoutSeconds * 1000)
    : (await client.json<{ Configuration: FunctionConfiguration }>('GET', fn(manifest.name))).Configuration;
  const invokeUrl = `${settings.url}/function/${manifest.name}`;
  print(settings, { ...configuration, InvokeUrl: invokeUrl }, () =>
    [
      `${existing.status === 404 ? 'Created' : 'Updated'} ${manifest.name}: ${configuration.State}${options.wait ? '' : ` (${configuration.LastUpdateStatus})`}`,
      `  invoke   curl -s -X POST ${invokeUrl} -d '{}'`,
      `           hearth invoke ${manifest.name} --payload '{}'`,
    ].join('\n'),
  );
}

/** Sends a large body with a progress bar on a terminal (and silently elsewhere). */
async function withProgressBar<T>(
  settings: Settings,
  total: number,
  build: (onProgress?: (sent: number) => void) => T,
): Promise<T> {
  if (!process.stderr.isTTY || settings.output === 'json') return build();
  const bar = new cliProgress.SingleBar(
    {
      format: 'Uploading {bar} {percentage}% | {value}/{total} KB',
      stream: process.stderr,
      clearOnComplete: true,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Math.ceil(total / 1024), 0);
  return build((sent) => {
    bar.update(Math.ceil(sent / 1024));
    if (sent >= total) bar.stop();
  });
}

function kb(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function readPayload(payload: string | undefined): Promise<Buffer> {
  if (payload === undefined) return Buffer.from('{}');
  if (payload === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
  if (payload.startsWith('@')) {
    try {
      return await readFile(payload.slice(1));
    } catch (error) {
      throw new CliError(
        `cannot read the payload file ${payload.slice(1)}: ${(error as Error).message}`,
        ExitCode.usage,
      );
    }
  }
  return Buffer.from(payload);
}

export async function invoke(
  settings: Settings,
  name: string,
  options: { async?: boolean; payload?: string; log?: boolean },
): Promise<number> {
  const payload = await readPayload(options.payload);
  try {
    JSON.parse(payload.toString('utf8'));
  } catch (error) {
    throw new CliError(
      `the payload is not JSON (${(error as Error).message}): pass --payload '{"key":"value"}', @file.json or - for stdin`,
      ExitCode.usage,
    );
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (options.async) headers['x-amz-invocation-type'] = 'Event';
  else if (options.log) headers['x-amz-log-type'] = 'Tail';
  const client = new GatewayClient(settings);
  const response = await client.request('POST', `${fn(name)}/invocations`, { body: payload, headers });
  if (response.status >= 400) throw serviceError(response);
  const requestId = response.headers.get('x-amzn-requestid') ?? '';
  if (options.async) {
    print(
      settings,
      { StatusCode: response.status, RequestId: requestId },
      () => `Queued ${name} (request ${requestId})`,
    );
    return ExitCode.ok;
  }
  const functionError = response.headers.get('x-amz-function-error') ?? undefined;
  const logResult = response.headers.get('x-amz-log-result');
  const log = logResult ? Buffer.from(logResult, 'base64').toString('utf8') : undefined;
  if (settings.output === 'json') {
    let result: unknown = response.body.toString('utf8');
    try {
      result = JSON.parse(result as string);
    } catch {
      // not JSON: kept as text
    }
    out(
      JSON.stringify(
        {
          StatusCode: response.status,
          RequestId: requestId,
          ...(functionError ? { FunctionError: functionError } : {}),
          ...(log ? { LogResult: log } : {}),
          Payload: result,
        },
        null,
        2,
      ),
    );
  } else {
    if (log) note(log.trimEnd());
    out(response.body.toString('utf8'));
    if (functionError)
      note(`${name} returned an error (${functionError}); "hearth logs ${name}" shows its output`);
  }
  return functionError ? ExitCode.functionError : ExitCode.ok;
}

export async function list(settings: Settings): Promise<void> {
  const client = new GatewayClient(settings);
  const functions: FunctionConfiguration[] = [];
  let marker: string | undefined;
  do {
    const page = await client.json<{ Functions: FunctionConfiguration[]; NextMarker?: string }>(
      'GET',
      `/2015-03-31/functions/?MaxItems=50${marker ? `&Marker=${encodeURIComponent(marker)}` : ''}`,
    );
    functions.push(...page.Functions);
    marker = page.NextMarker;
  } while (marker);
  print(settings, functions, () => {
    if (functions.length === 0)
      return 'No functions yet: "hearth init NAME --runtime nodejs20.x", then "hearth deploy NAME".';
    const rows = [['NAME', 'RUNTIME', 'MEMORY', 'TIMEOUT', 'STATE', 'LAST MODIFIED']];
    for (const f of functions)
      rows.push([
        f.FunctionName,
        f.Runtime ?? 'image',
        `${f.MemorySize} MB`,
        `${f.Timeout} s`,
        stateOf(f),
        f.LastModified,
      ]);
    return table(rows);
  });
}

function stateOf(f: FunctionConfiguration): string {
  return f.LastUpdateStatus === 'Successful' ? f.State : `${f.State} (update ${f.LastUpdateStatus})`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export async function get(settings: Settings, name: string): Promise<void> {
  const client = new GatewayClient(settings);
  const [result, details] = await Promise.all([
    client.json<{
      Configuration: FunctionConfiguration & Record<string, unknown>;
      Concurrency?: { ReservedConcurrentExecutions: number };
    }>('GET', fn(name)),
    client.json<FunctionDetails>('GET', `/hearth/v1/functions/${encodeURIComponent(name)}`),
  ]);
  const c = result.Configuration;
  print(settings, { ...result, Hearth: details }, () =>
    [
      `${c.FunctionName}`,
      `  state          ${stateOf(c)}${c.StateReason ? ` - ${c.StateReason}` : ''}${c.LastUpdateStatusReason ? ` - ${c.LastUpdateStatusReason}` : ''}`,
      `  runtime        ${c.Runtime ?? 'image'}${c.Handler ? ` (${c.Handler})` : ''}`,
      `  memory         ${c.MemorySize} MB, timeout ${c.Timeout} s`,
      `  code           ${kb(c.CodeSize)}, sha256 ${c.CodeSha256}`,
      `  concurrency    ${concurrencyLine(details.concurrency)}`,
      `  instances      ${instancesLine(details)}`,
      `  last modified  ${c.LastModified}`,
      `  invoke         ${settings.url}/function/${c.FunctionName}`,
    ].join('\n'),
  );
}

function concurrencyLine({ reserved, perInstance, perRuntime }: FunctionDetails['concurrency']): string {
  const calls = (n: number) => (n === 1 ? '1 call' : `${n} calls`);
  const perProcess = perInstance === 1 ? '' : ` (${calls(perRuntime)} per runtime process)`;
  return `${reserved === undefined ? 'unreserved' : `${reserved} reserved`}, ${calls(perInstance)} at once per instance${perProcess}`;
}

function instancesLine({ instances, scaling }: FunctionDetails): string {
  const now = [`${instances.ready} ready`];
  if (instances.starting > 0) now.push(`${instances.starting} starting`);
  if (instances.draining > 0) now.push(`${instances.draining} draining`);
  return `${now.join(', ')} (${scaling.minWarm} to ${scaling.maxInstances}, idle ones stop after ${scaling.idleSeconds} s)`;
}

export async function remove(settings: Settings, name: string): Promise<void> {
  await new GatewayClient(settings).json('DELETE', fn(name));
  print(settings, { FunctionName: name, Deleted: true }, () => `Deleted ${name}`);
}

interface LogPage {
  lines: { id: string; time: number; instance: string; line: string }[];
  nextToken?: string;
}

export async function logs(
  settings: Settings,
  name: string,
  options: { follow?: boolean; limit: number },
  signal: AbortSignal,
): Promise<void> {
  const client = new GatewayClient(settings);
  let after: string | undefined;
  for (;;) {
    const query = after ? `after=${encodeURIComponent(after)}&limit=1000` : `limit=${options.limit}`;
    const page = await client.json<LogPage>(
      'GET',
      `/hearth/v1/functions/${encodeURIComponent(name)}/logs?${query}`,
    );
    for (const line of page.lines) {
      // The shim's own lines are JSON (pino); a person reads them as `LEVEL message key=value`.
      out(
        settings.output === 'json'
          ? JSON.stringify(line)
          : `${new Date(line.time).toISOString()} ${humanLine(line.line)}`,
      );
    }
    after = page.nextToken ?? after;
    if (!options.follow || signal.aborted) return;
    await sleep(1000, undefined, { signal }).catch(() => undefined);
    if (signal.aborted) return;
  }
}

interface DeadLetter {
  id: string;
  requestId: string;
  payload: string;
  condition: string;
  errorType: string;
  errorMessage: string;
  attempts: number;
  deadLetteredAt: string;
}

export async function dlq(
  settings: Settings,
  action: string,
  name: string,
  id: string | undefined,
): Promise<void> {
  const client = new GatewayClient(settings);
  const base = `/hearth/v1/functions/${encodeURIComponent(name)}/dlq`;
  switch (action) {
    case 'ls': {
      const items: DeadLetter[] = [];
      let token: string | undefined;
      let size: number;
      do {
        const page = await client.json<{ items: DeadLetter[]; nextToken?: string; size: number }>(
          'GET',
          `${base}?limit=1000${token ? `&nextToken=${encodeURIComponent(token)}` : ''}`,
        );
        items.push(...page.items);
        size = page.size;
        token = page.nextToken;
      } while (token);
      print(settings, { size, items }, () => {
        if (items.length === 0) return `The dead-letter queue of ${name} is empty.`;
        const rows = [['ID', 'DEAD-LETTERED', 'CONDITION', 'ATTEMPTS', 'ERROR']];
        for (const item of items)
          rows.push([
            item.id,
            item.deadLetteredAt,
            item.condition,
            String(item.attempts),
            `${item.errorType}: ${item.errorMessage}`.slice(0, 80),
          ]);
        return table(rows);
      });
      return;
    }
    case 'show': {
      if (!id)
        throw new CliError(
          'dlq show needs an ID: hearth dlq show NAME ID (IDs come from "hearth dlq ls NAME")',
          ExitCode.usage,
        );
      const item = await client.json<DeadLetter>('GET', `${base}/${encodeURIComponent(id)}`);
      print(settings, item, () => JSON.stringify(item, null, 2));
      return;
    }
    case 'redrive': {
      const result = await client.json<Record<string, unknown>>(
        'POST',
        id ? `${base}/${encodeURIComponent(id)}/redrive` : `${base}/redrive`,
      );
      print(settings, result, () =>
        id
          ? `Redrove ${id} as request ${String(result.requestId)}`
          : `Redrove ${String(result.redriven)} events of ${name}`,
      );
      return;
    }
    case 'purge': {
      const result = await client.json<{ purged: number }>('DELETE', base);
      print(settings, result, () => `Purged ${result.purged} events from the dead-letter queue of ${name}`);
      return;
    }
    default:
      throw new CliError(`unknown dlq action "${action}": use ls, show, redrive or purge`, ExitCode.usage);
  }
}
