import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './errors.js';

export type OutputFormat = 'text' | 'json';

/** Where the CLI finds the gateway and how it talks: resolved once per command. */
export interface Settings {
  url: string;
  token?: string;
  output: OutputFormat;
}

/** What a config file may hold (`~/.config/hearth/config.json`). */
export interface ConfigFile {
  url?: string;
  token?: string;
  output?: OutputFormat;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export function configFilePath(env: NodeJS.ProcessEnv): string {
  if (env.HEARTH_CONFIG) return env.HEARTH_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'hearth', 'config.json');
}

/** Reads the config file; a missing file is an empty one, a broken one an error that names it. */
export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return {};
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new Error('not a JSON object');
    return parsed as ConfigFile;
  } catch (error) {
    throw new CliError(`${path} is not valid: ${(error as Error).message}. Fix it or remove it.`, 2);
  }
}

/** Flags beat the environment (HEARTH_URL, HEARTH_TOKEN), which beats the config file. */
export function resolveSettings(
  flags: { url?: string; token?: string; output?: string },
  env: NodeJS.ProcessEnv,
  file: ConfigFile,
): Settings {
  const url = (flags.url ?? (env.HEARTH_URL || undefined) ?? file.url ?? DEFAULT_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(url))
    throw new CliError(
      `the gateway URL "${url}" is not an http(s) URL: pass --url http://HOST:PORT or set HEARTH_URL`,
      2,
    );
  const output = flags.output ?? (env.HEARTH_OUTPUT || undefined) ?? file.output ?? 'text';
  if (output !== 'text' && output !== 'json')
    throw new CliError(`--output must be text or json (got "${output}")`, 2);
  const token = flags.token ?? (env.HEARTH_TOKEN || undefined) ?? file.token;
  return token ? { url, token, output } : { url, output };
}
