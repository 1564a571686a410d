import { Limits } from '@hearth/api';

/** An AWS-style access key pair that SigV4-signed calls (AWS SDK, AWS CLI) are checked against. */
export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  /** Temporary credentials: the key is valid only with this token (`X-Amz-Security-Token`). */
  sessionToken?: string;
}

export interface AuthConfig {
  enabled: boolean;
  /** Static keys accepted as `Authorization: Bearer <key>`. */
  apiKeys: string[];
  accessKeys: AccessKey[];
}

export type GatewayRole = 'http' | 'worker' | 'all';

export interface GatewayConfig {
  port: number;
  host: string;
  redisUrl: string;
  role: GatewayRole;
  /** Names this gateway in demand reports and concurrency leases; unique per replica. */
  gatewayId: string;
  region: string;
  accountId: string;
  auth: AuthConfig;
  /** Cluster-wide concurrent executions (Lambda's account limit). */
  accountConcurrency: number;
  /** How long a call may wait for an instance of its function while the pool grows. */
  coldStartBudgetMs: number;
  /** A concurrency lease not renewed for this long is dropped (its gateway is gone). */
  leaseTtlMs: number;
  /** How often discovery re-reads the whole registry, besides reacting to change messages. */
  discoveryResyncMs: number;
  /** How often demand (in-flight and waiting counts) is reported to Redis. */
  demandReportMs: number;
  syncPayloadBytes: number;
  asyncPayloadBytes: number;
  logLevel: string;
  /** The management API (CreateFunction, ...); absent: not served. See docs/management-api.md. */
  management?: ManagementConfig;
}

export interface ManagementConfig {
  /** Where Functions are written: manifest files the process controller watches, or Kubernetes. */
  backend: { kind: 'manifests'; functionsDir: string } | { kind: 'kubernetes'; namespace: string };
  /** Where uploaded zips are kept, one per sha256: files in a directory, or objects in a bucket. */
  codeStore: { kind: 'directory'; dir: string } | ({ kind: 's3' } & S3CodeStoreConfig);
  /** All stored code together may not pass this (CodeStorageExceededException). */
  codeStoreBytes: number;
  /** The base URL the controller fetches stored code from (`{url}/hearth/v1/code/{sha256}.zip`). */
  codeBaseUrl: string;
}

/** An S3-compatible bucket as the code store; credentials come from the AWS SDK's chain. */
export interface S3CodeStoreConfig {
  bucket: string;
  /** An S3-compatible server (MinIO, Ceph, ...); absent: AWS S3. */
  endpoint?: string;
  region: string;
  /** Objects are `<prefix><sha256>.zip`; the prefix is empty or ends with `/`. */
  prefix: string;
  /** `<endpoint>/<bucket>/<key>` URLs rather than `<bucket>.<host>`, as MinIO-style servers need. */
  forcePathStyle: boolean;
}

/** Lambda's default code storage quota per region: 75 GB. */
const DEFAULT_CODE_STORE_BYTES = 75 * 1024 ** 3;

export const defaultConfig: Omit<GatewayConfig, 'redisUrl' | 'gatewayId'> = {
  port: 8080,
  host: '0.0.0.0',
  role: 'all',
  region: 'us-east-1',
  accountId: '000000000000',
  auth: { enabled: true, apiKeys: [], accessKeys: [] },
  accountConcurrency: Limits.accountConcurrency,
  coldStartBudgetMs: 30_000,
  leaseTtlMs: 15_000,
  discoveryResyncMs: 5_000,
  demandReportMs: 1_000,
  syncPayloadBytes: Limits.syncPayloadBytes,
  asyncPayloadBytes: Limits.asyncPayloadBytes,
  logLevel: 'info',
};

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid gateway config: ${field} ${message}`);
  }
}

/**
 * Where each setting comes from: a `--flag=value` beats the environment variable. Access keys are
 * `ID:SECRET` pairs, session tokens `ID:TOKEN` pairs naming one of them, API keys plain strings,
 * all comma separated.
 */
const sources = {
  port: { flag: 'port', env: 'HEARTH_GATEWAY_PORT' },
  host: { flag: 'host', env: 'HEARTH_GATEWAY_HOST' },
  redisUrl: { flag: 'redis-url', env: 'HEARTH_REDIS_URL' },
  role: { flag: 'role', env: 'HEARTH_GATEWAY_ROLE' },
  gatewayId: { flag: 'gateway-id', env: 'HEARTH_GATEWAY_ID' },
  region: { flag: 'region', env: 'HEARTH_REGION' },
  accountId: { flag: 'account-id', env: 'HEARTH_ACCOUNT_ID' },
  authEnabled: { flag: 'auth', env: 'HEARTH_AUTH' },
  apiKeys: { flag: 'api-keys', env: 'HEARTH_API_KEYS' },
  accessKeys: { flag: 'access-keys', env: 'HEARTH_ACCESS_KEYS' },
  sessionTokens: { flag: 'session-tokens', env: 'HEARTH_SESSION_TOKENS' },
  accountConcurrency: { flag: 'account-concurrency', env: 'HEARTH_ACCOUNT_CONCURRENCY' },
  coldStartBudgetMs: { flag: 'cold-start-budget-ms', env: 'HEARTH_COLD_START_BUDGET_MS' },
  leaseTtlMs: { flag: 'lease-ttl-ms', env: 'HEARTH_LEASE_TTL_MS' },
  discoveryResyncMs: { flag: 'discovery-resync-ms', env: 'HEARTH_DISCOVERY_RESYNC_MS' },
  demandReportMs: { flag: 'demand-report-ms', env: 'HEARTH_DEMAND_REPORT_MS' },
  syncPayloadBytes: { flag: 'sync-payload-bytes', env: 'HEARTH_SYNC_PAYLOAD_BYTES' },
  asyncPayloadBytes: { flag: 'async-payload-bytes', env: 'HEARTH_ASYNC_PAYLOAD_BYTES' },
  logLevel: { flag: 'log-level', env: 'HEARTH_LOG_LEVEL' },
  functionsDir: { flag: 'functions-dir', env: 'HEARTH_FUNCTIONS_DIR' },
  codeStoreDir: { flag: 'code-store-dir', env: 'HEARTH_CODE_STORE_DIR' },
  codeStoreBytes: { flag: 'code-store-bytes', env: 'HEARTH_CODE_STORE_BYTES' },
  codeBaseUrl: { flag: 'code-base-url', env: 'HEARTH_CODE_BASE_URL' },
  codeStoreS3Bucket: { flag: 'code-store-s3-bucket', env: 'HEARTH_CODE_STORE_S3_BUCKET' },
  codeStoreS3Endpoint: { flag: 'code-store-s3-endpoint', env: 'HEARTH_CODE_STORE_S3_ENDPOINT' },
  codeStoreS3Region: { flag: 'code-store-s3-region', env: 'HEARTH_CODE_STORE_S3_REGION' },
  codeStoreS3Prefix: { flag: 'code-store-s3-prefix', env: 'HEARTH_CODE_STORE_S3_PREFIX' },
  codeStoreS3ForcePathStyle: {
    flag: 'code-store-s3-force-path-style',
    env: 'HEARTH_CODE_STORE_S3_FORCE_PATH_STYLE',
  },
  managementBackend: { flag: 'management-backend', env: 'HEARTH_MANAGEMENT_BACKEND' },
  namespace: { flag: 'namespace', env: 'HEARTH_NAMESPACE' },
} as const;

/** Where the code store is: a bucket when one is named, else a directory (`dir`, if any). */
function parseCodeStore(
  raw: (key: keyof typeof sources) => string | undefined,
  dir: string | undefined,
): ManagementConfig['codeStore'] | undefined {
  const named = (key: keyof typeof sources) => `--${sources[key].flag} or ${sources[key].env}`;
  const bucket = raw('codeStoreS3Bucket');
  if (bucket === undefined) {
    for (const key of [
      'codeStoreS3Endpoint',
      'codeStoreS3Region',
      'codeStoreS3Prefix',
      'codeStoreS3ForcePathStyle',
    ] as const) {
      if (raw(key) !== undefined)
        throw new ConfigError(
          'management.codeStore.s3.bucket',
          `is required when ${sources[key].env} is set (${named('codeStoreS3Bucket')})`,
        );
    }
    return dir === undefined ? undefined : { kind: 'directory', dir };
  }
  if (raw('codeStoreDir') !== undefined) {
    throw new ConfigError(
      'management.codeStore',
      `is either a directory (${sources.codeStoreDir.env}) or a bucket (${sources.codeStoreS3Bucket.env}), not both`,
    );
  }
  // S3's bucket naming rules, which S3-compatible servers share.
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ConfigError(
      'management.codeStore.s3.bucket',
      `must be an S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens (${sources.codeStoreS3Bucket.env}="${bucket}")`,
    );
  }
  const endpoint = raw('codeStoreS3Endpoint');
  if (endpoint !== undefined && !/^https?:\/\/[^/]+\/?$/.test(endpoint)) {
    throw new ConfigError(
      'management.codeStore.s3.endpoint',
      `must be an http(s) URL without a path (${sources.codeStoreS3Endpoint.env}="${endpoint}")`,
    );
  }
  const rawPrefix = raw('codeStoreS3Prefix') ?? '';
  if (rawPrefix.startsWith('/')) {
    throw new ConfigError(
      'management.codeStore.s3.prefix',
      `must not start with "/" (${sources.codeStoreS3Prefix.env}="${rawPrefix}")`,
    );
  }
  const pathStyle = raw('codeStoreS3ForcePathStyle');
  if (pathStyle !== undefined && pathStyle !== 'true' && pathStyle !== 'false') {
    throw new ConfigError(
      'management.codeStore.s3.forcePathStyle',
      `must be true or false (${sources.codeStoreS3ForcePathStyle.env}="${pathStyle}")`,
    );
  }
  return {
    kind: 's3',
    bucket,
    ...(endpoint !== undefined ? { endpoint: endpoint.replace(/\/$/, '') } : {}),
    region: raw('codeStoreS3Region') ?? 'us-east-1',
    prefix: rawPrefix === '' || rawPrefix.endsWith('/') ? rawPrefix : `${rawPrefix}/`,
    // Servers other than AWS S3 rarely have a DNS name per bucket.
    forcePathStyle: pathStyle === undefined ? endpoint !== undefined : pathStyle === 'true',
  };
}

/**
 * The management API is served with manifests (`--functions-dir`, what hearth dev passes; code
 * kept beside them by default) or with `--management-backend=kubernetes` (a code store the
 * gateways share is then required: a directory on a shared volume, or a bucket).
 */
function parseManagement(
  raw: (key: keyof typeof sources) => string | undefined,
  integer: (key: keyof typeof sources, fallback: number, min: number) => number,
  port: number,
): ManagementConfig | undefined {
  const kind = raw('managementBackend') ?? (raw('functionsDir') ? 'manifests' : undefined);
  if (kind === undefined) return undefined;
  const codeBaseUrl = raw('codeBaseUrl') ?? `http://127.0.0.1:${port}`;
  if (!/^https?:\/\/[^/]+$/.test(codeBaseUrl)) {
    throw new ConfigError(
      'management.codeBaseUrl',
      `must be an http(s) URL without a path (got "${codeBaseUrl}")`,
    );
  }
  const codeStoreBytes = integer('codeStoreBytes', DEFAULT_CODE_STORE_BYTES, 1);
  if (kind === 'manifests') {
    const functionsDir = raw('functionsDir');
    if (!functionsDir) {
      throw new ConfigError(
        'management.functionsDir',
        `is required (--functions-dir or ${sources.functionsDir.env})`,
      );
    }
    const codeStore = parseCodeStore(raw, raw('codeStoreDir') ?? `${functionsDir}/.hearth/code`)!;
    return { backend: { kind, functionsDir }, codeStore, codeStoreBytes, codeBaseUrl };
  }
  if (kind === 'kubernetes') {
    const codeStore = parseCodeStore(raw, raw('codeStoreDir'));
    if (!codeStore) {
      throw new ConfigError(
        'management.codeStore',
        `is required with the kubernetes backend: a shared directory (--code-store-dir or ${sources.codeStoreDir.env}) or a bucket (--code-store-s3-bucket or ${sources.codeStoreS3Bucket.env})`,
      );
    }
    return {
      backend: { kind, namespace: raw('namespace') ?? 'default' },
      codeStore,
      codeStoreBytes,
      codeBaseUrl,
    };
  }
  throw new ConfigError('management.backend', `must be manifests or kubernetes (got "${kind}")`);
}

/** Reads and validates the config once at start; throws ConfigError naming the bad field. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv, defaultGatewayId: string): GatewayConfig {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new ConfigError(arg, 'is not a --flag=value argument');
    flags.set(match[1]!, match[2] ?? 'true');
  }
  const known = new Set<string>(Object.values(sources).map((s) => s.flag));
  for (const flag of flags.keys())
    if (!known.has(flag)) throw new ConfigError(`--${flag}`, 'is not a known flag');

  const raw = (key: keyof typeof sources): string | undefined => {
    const value = flags.get(sources[key].flag) ?? env[sources[key].env];
    return value === undefined || value === '' ? undefined : value;
  };
  const integer = (
    key: keyof typeof sources,
    fallback: number,
    min: number,
    max = Number.MAX_SAFE_INTEGER,
  ) => {
    const value = raw(key);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new ConfigError(key, `must be an integer between ${min} and ${max} (got "${value}")`);
    }
    return n;
  };
  const list = (key: keyof typeof sources) =>
    (raw(key) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);

  const redisUrl = raw('redisUrl');
  if (!redisUrl) throw new ConfigError('redisUrl', `is required (--redis-url or ${sources.redisUrl.env})`);
  if (!/^rediss?:\/\//.test(redisUrl))
    throw new ConfigError('redisUrl', `must be a redis:// URL (got "${redisUrl}")`);

  const role = raw('role') ?? defaultConfig.role;
  if (role !== 'http' && role !== 'worker' && role !== 'all') {
    throw new ConfigError('role', `must be http, worker or all (got "${role}")`);
  }

  const authFlag = raw('authEnabled') ?? 'true';
  if (!['true', 'false', 'on', 'off'].includes(authFlag)) {
    throw new ConfigError('auth.enabled', `must be true or false (got "${authFlag}")`);
  }
  const accessKeys = list('accessKeys').map((pair, i): AccessKey => {
    const separator = pair.indexOf(':');
    if (separator <= 0 || separator === pair.length - 1) {
      throw new ConfigError(`auth.accessKeys[${i}]`, 'must be ACCESS_KEY_ID:SECRET_ACCESS_KEY');
    }
    return { accessKeyId: pair.slice(0, separator), secretAccessKey: pair.slice(separator + 1) };
  });
  list('sessionTokens').forEach((pair, i) => {
    const separator = pair.indexOf(':');
    const key = accessKeys.find((k) => k.accessKeyId === pair.slice(0, separator));
    if (separator <= 0 || separator === pair.length - 1 || !key) {
      throw new ConfigError(
        `auth.sessionTokens[${i}]`,
        'must be ACCESS_KEY_ID:SESSION_TOKEN, naming one of the access keys',
      );
    }
    key.sessionToken = pair.slice(separator + 1);
  });
  const auth: AuthConfig = {
    enabled: authFlag === 'true' || authFlag === 'on',
    apiKeys: list('apiKeys'),
    accessKeys,
  };
  if (auth.enabled && auth.apiKeys.length === 0 && auth.accessKeys.length === 0) {
    throw new ConfigError(
      'auth',
      'is enabled but has no apiKeys and no accessKeys: nobody could call the gateway',
    );
  }

  const leaseTtlMs = integer('leaseTtlMs', defaultConfig.leaseTtlMs, 300);
  const port = integer('port', defaultConfig.port, 0, 65_535);
  const management = parseManagement(raw, integer, port);
  return {
    port,
    host: raw('host') ?? defaultConfig.host,
    redisUrl,
    role,
    gatewayId: raw('gatewayId') ?? defaultGatewayId,
    region: raw('region') ?? defaultConfig.region,
    accountId: raw('accountId') ?? defaultConfig.accountId,
    auth,
    accountConcurrency: integer('accountConcurrency', defaultConfig.accountConcurrency, 1),
    coldStartBudgetMs: integer('coldStartBudgetMs', defaultConfig.coldStartBudgetMs, 0),
    leaseTtlMs,
    discoveryResyncMs: integer('discoveryResyncMs', defaultConfig.discoveryResyncMs, 100),
    demandReportMs: integer('demandReportMs', defaultConfig.demandReportMs, 50),
    syncPayloadBytes: integer('syncPayloadBytes', defaultConfig.syncPayloadBytes, 1),
    asyncPayloadBytes: integer('asyncPayloadBytes', defaultConfig.asyncPayloadBytes, 1),
    logLevel: raw('logLevel') ?? defaultConfig.logLevel,
    ...(management ? { management } : {}),
  };
}
