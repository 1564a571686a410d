import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

/** The versions test/cluster/build-node.sh builds; keep the two in step. */
export const HELM_VERSION = process.env.HELM_VERSION ?? 'v3.19.5';
export const KUBE_VERSION = process.env.KUBE_VERSION ?? 'v1.34.4';
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const CHART = join(REPO, 'charts/hearth');
export const CI_VALUES = join(CHART, 'ci/local-values.yaml');
export const CACHE = process.env.HEARTH_CACHE ?? join(homedir(), '.cache', 'hearth');

/** The cached helm, or undefined when test/cluster/build-node.sh has not built it. */
export function helmBinary(): string | undefined {
  const helm = join(CACHE, 'helm', HELM_VERSION, 'bin', 'helm');
  return existsSync(helm) ? helm : undefined;
}
export const HELM_MISSING = 'helm not built: run test/cluster/build-node.sh helm';

export function promtoolBinary(): string | undefined {
  for (const p of ['/usr/bin/promtool', '/usr/local/bin/promtool']) if (existsSync(p)) return p;
  return undefined;
}
export const PROMTOOL_MISSING = 'promtool not installed (Debian package prometheus)';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never rejects (the caller asserts on the result). */
export function run(
  command: string,
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      command,
      args,
      { maxBuffer: 64 << 20, env: options.env ?? process.env, timeout: options.timeoutMs ?? 120_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    // A command that exits without reading its input closes the pipe: its exit code tells, not EPIPE.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

/** Runs a command and returns its stdout; throws with its stderr when it fails. */
export async function must(
  command: string,
  args: string[],
  options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0)
    throw new Error(
      `${command} ${args.join(' ')} exited with ${result.code}:\n${result.stderr}${result.stdout.slice(-2000)}`,
    );
  return result.stdout;
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  data?: Record<string, string>;
  [key: string]: unknown;
}

/** `helm template` of the chart; `args` adds --set, -f, --api-versions and so on. */
export async function renderChart(
  args: string[] = [],
  release = 'hearth',
  namespace = 'hearth-system',
): Promise<Manifest[]> {
  const helm = helmBinary();
  if (!helm) throw new Error(HELM_MISSING);
  const out = await must(helm, [
    'template',
    release,
    CHART,
    '--namespace',
    namespace,
    '--kube-version',
    KUBE_VERSION,
    ...args,
  ]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null && typeof m === 'object');
}

/** The alert rules file the chart's PrometheusRule carries, thresholds filled in. */
export function ruleGroups(manifests: Manifest[]): {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[];
} {
  const rule = manifests.find((m) => m.kind === 'PrometheusRule');
  if (!rule) throw new Error('no PrometheusRule rendered');
  return rule.spec;
}

/** An alert's signal: its expression without the trailing threshold comparison. */
export function alertSignal(expr: string): string {
  return expr.replace(/\s*(>|<|>=|<=|==|!=)\s*[0-9.e+-]+\s*$/, '').trim();
}

export interface DashboardQuery {
  panel: string;
  expr: string;
}

/** Every query of the chart's Grafana dashboard, with Grafana's variables replaced for Prometheus. */
export function dashboardQueries(rangeInterval = '5m'): DashboardQuery[] {
  const dashboard = JSON.parse(readFileSync(join(CHART, 'files/hearth-functions.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  return dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      panel: p.title,
      expr: t.expr.replaceAll('$__rate_interval', rangeInterval).replaceAll('$function', '.*'),
    })),
  );
}

export function yamlOf(text: string): unknown {
  return parseYaml(text);
}
