import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CodeArchiveLimits, Limits, Runtimes, type Runtime } from '@hearth/api';
import { CliError, ExitCode } from './errors.js';

/** The manifest of a function folder: what `hearth deploy` sends besides the code. */
export interface FunctionManifest {
  name: string;
  runtime: Runtime;
  handler: string;
  description?: string;
  /** MB, 128-10240. */
  memorySize?: number;
  /** Seconds, 1-900. */
  timeout?: number;
  /** MB of /tmp, 512-10240. */
  ephemeralStorage?: number;
  environment?: Record<string, string>;
}

export const MANIFEST_FILE = 'hearth.json';
/** Never packaged: the manifest itself, version control, local state. */
export const EXCLUDED = new Set([MANIFEST_FILE, '.git', '.hearth', '.DS_Store', '__pycache__']);

const NAME = /^[a-z0-9]([-a-z0-9]{0,62}[a-z0-9])?$/;

/** Checks a manifest as the gateway will, so that mistakes show before anything is uploaded. */
export function parseManifest(raw: unknown, file: string): FunctionManifest {
  const bad = (message: string) => new CliError(`${file}: ${message}`, ExitCode.usage);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad('must be a JSON object');
  const m = raw as Record<string, unknown>;
  if (typeof m.name !== 'string' || !NAME.test(m.name))
    throw bad('"name" must be a lower-case name of letters, digits and -, at most 64 characters');
  if (typeof m.runtime !== 'string' || !(Runtimes as readonly string[]).includes(m.runtime))
    throw bad(`"runtime" must be one of ${Runtimes.join(', ')}`);
  if (typeof m.handler !== 'string' || m.handler === '')
    throw bad('"handler" is required, e.g. "index.handler"');
  const range = (key: string, min: number, max: number) => {
    const value = m[key];
    if (
      value !== undefined &&
      (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    ) {
      throw bad(`"${key}" must be an integer from ${min} to ${max}`);
    }
  };
  range('memorySize', Limits.memoryMb.min, Limits.memoryMb.max);
  range('timeout', Limits.timeoutSeconds.min, Limits.timeoutSeconds.max);
  range('ephemeralStorage', Limits.ephemeralStorageMb.min, Limits.ephemeralStorageMb.max);
  if (m.environment !== undefined) {
    if (
      typeof m.environment !== 'object' ||
      m.environment === null ||
      Object.values(m.environment).some((v) => typeof v !== 'string')
    ) {
      throw bad('"environment" must map names to strings');
    }
  }
  return m as unknown as FunctionManifest;
}

export async function readManifest(dir: string): Promise<FunctionManifest> {
  const file = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new CliError(
      `${file} not found: run "hearth init NAME --runtime nodejs20.x" to start a function folder, or pass the folder to deploy`,
      ExitCode.usage,
    );
  }
  try {
    return parseManifest(JSON.parse(text), file);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`${file} is not valid JSON: ${(error as Error).message}`, ExitCode.usage);
  }
}

/** The CreateFunction / UpdateFunctionConfiguration fields of a manifest. */
export function configurationFields(manifest: FunctionManifest): Record<string, unknown> {
  return {
    Runtime: manifest.runtime,
    Handler: manifest.handler,
    Description: manifest.description ?? '',
    MemorySize: manifest.memorySize ?? Limits.memoryMb.default,
    Timeout: manifest.timeout ?? Limits.timeoutSeconds.default,
    EphemeralStorage: { Size: manifest.ephemeralStorage ?? Limits.ephemeralStorageMb.default },
    Environment: { Variables: manifest.environment ?? {} },
  };
}

/** Why a package may not be uploaded, before it is: Lambda's 50 MB zipped and 250 MB unzipped. */
export function packageSizeProblem(zippedBytes: number, unzippedBytes: number): string | undefined {
  const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
  if (unzippedBytes > CodeArchiveLimits.unzippedBytes) {
    return `the folder holds ${mb(unzippedBytes)} of files, more than the ${mb(CodeArchiveLimits.unzippedBytes)} a function may unpack to: remove dev dependencies (npm prune --omit=dev) or large files`;
  }
  if (zippedBytes > CodeArchiveLimits.zippedBytes) {
    return `the package is ${mb(zippedBytes)} zipped, more than the ${mb(CodeArchiveLimits.zippedBytes)} an upload may be: remove dev dependencies (npm prune --omit=dev) or large files`;
  }
  return undefined;
}

/** The files `hearth init` writes for each runtime: a handler that answers, and the manifest. */
export function templateFiles(
  name: string,
  runtime: Runtime,
): { files: Record<string, string>; executable: string[] } {
  const manifest = (handler: string) =>
    `${JSON.stringify({ name, runtime, handler, memorySize: 128, timeout: 3, environment: {} }, null, 2)}\n`;
  if (runtime.startsWith('nodejs')) {
    return {
      files: {
        [MANIFEST_FILE]: manifest('index.handler'),
        'index.mjs': `// Called once per invocation; what it returns is the response.\nexport const handler = async (event, context) => {\n  return { message: \`Hello from ${name}\`, input: event, requestId: context.awsRequestId };\n};\n`,
        'package.json': `${JSON.stringify({ name, version: '0.1.0', private: true, type: 'module' }, null, 2)}\n`,
      },
      executable: [],
    };
  }
  if (runtime.startsWith('python')) {
    return {
      files: {
        [MANIFEST_FILE]: manifest('app.handler'),
        'app.py': `# Called once per invocation; what it returns is the response.\n# Vendor packages into this folder (pip install -t . PACKAGE) and deploy packages them too.\ndef handler(event, context):\n    return {"message": "Hello from ${name}", "input": event, "requestId": context.aws_request_id}\n`,
      },
      executable: [],
    };
  }
  return {
    files: {
      [MANIFEST_FILE]: manifest('function.handler'),
      bootstrap: `#!/bin/sh\n# A custom runtime: fetch the next event from the Lambda Runtime API, answer it, repeat.\nset -eu\napi="http://\${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"\nwhile true; do\n  headers=$(mktemp)\n  event=$(curl -sS -D "$headers" "$api/next")\n  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\\r')\n  rm -f "$headers"\n  curl -sS -X POST "$api/$id/response" -d "{\\"message\\":\\"Hello from ${name}\\",\\"input\\":$event}" >/dev/null\ndone\n`,
    },
    executable: ['bootstrap'],
  };
}
