import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { Limits, MultiConcurrentRuntimes, Runtimes } from './lambda.js';
import { MAX_RUNTIMES_PER_INSTANCE, runtimesPerInstance } from './shim-protocol.js';

/**
 * The Function resource (`hearth.dev/v1alpha1`, kind Function): the one source of truth for its
 * types, its validation, and (generated from these schemas) its CRD.
 */
export const API_GROUP = 'hearth.dev';
export const API_VERSION = 'v1alpha1';

const Quantity = (description: string, defaultValue: string) =>
  Type.String({ pattern: '^[0-9]+(Mi|Gi)$', default: defaultValue, description });

const Destination = Type.Object(
  {
    function: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'Another function, invoked async' }),
    ),
    url: Type.Optional(Type.String({ pattern: '^https?://', description: 'An HTTP URL receiving a POST' })),
    stream: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'A Redis stream' })),
  },
  { additionalProperties: false, description: 'Exactly one of function, url, stream' },
);
export type Destination = Static<typeof Destination>;

const EnvVar = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]*$', maxLength: 256 }),
    value: Type.Optional(Type.String()),
    valueFrom: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { additionalProperties: false },
);

export const FunctionCodeSchema = Type.Object(
  {
    inline: Type.Optional(
      Type.Object(
        { files: Type.Record(Type.String(), Type.String(), { description: 'File name to content' }) },
        { additionalProperties: false },
      ),
    ),
    configMap: Type.Optional(
      Type.Object({ name: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    ),
    archive: Type.Optional(
      Type.Object(
        {
          url: Type.String({ pattern: '^(https?|file)://' }),
          sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
        },
        { additionalProperties: false },
      ),
    ),
    image: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false, description: 'Exactly one of inline, configMap, archive, image' },
);
export type FunctionCode = Static<typeof FunctionCodeSchema>;

/**
 * Lambda's ImageConfig, for `code.image`: how to start the image's runtime. Hearth cannot read an
 * image's own ENTRYPOINT and CMD (no registry access), so the defaults are those of AWS's base
 * images: `/lambda-entrypoint.sh` started with the handler.
 */
export const ImageConfigSchema = Type.Object(
  {
    entryPoint: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), {
        minItems: 1,
        maxItems: 64,
        description: 'The runtime command (default ["/lambda-entrypoint.sh"])',
      }),
    ),
    command: Type.Optional(
      Type.Array(Type.String({ maxLength: 1024 }), {
        maxItems: 64,
        description: 'Arguments after the entry point (default [handler])',
      }),
    ),
    workingDirectory: Type.Optional(
      Type.String({
        pattern: '^/',
        maxLength: 1024,
        description: 'Where the runtime starts, and LAMBDA_TASK_ROOT (default /var/task)',
      }),
    ),
  },
  { additionalProperties: false, description: 'For code.image only: how to start the image' },
);
export type ImageConfig = Static<typeof ImageConfigSchema>;

/** What an image function's instance runs, with Lambda's base-image defaults filled in. */
export function imageCommand(spec: Pick<FunctionSpec, 'handler' | 'imageConfig'>): {
  argv: string[];
  workingDirectory: string;
} {
  const config = spec.imageConfig ?? {};
  return {
    argv: [...(config.entryPoint ?? ['/lambda-entrypoint.sh']), ...(config.command ?? [spec.handler])],
    workingDirectory: config.workingDirectory ?? '/var/task',
  };
}

export const FunctionSpecSchema = Type.Object(
  {
    runtime: Type.Union(
      Runtimes.map((r) => Type.Literal(r)),
      { description: "Lambda's runtime identifier" },
    ),
    handler: Type.String({
      pattern: '^[^\\s]+$',
      maxLength: 128,
      default: 'index.handler',
      description: 'file.export (nodejs), module.function (python), ignored by provided',
    }),
    code: FunctionCodeSchema,
    imageConfig: Type.Optional(ImageConfigSchema),
    memory: Quantity('Memory, 128Mi..10Gi; CPU in proportion (1 vCPU per 1769Mi)', '128Mi'),
    timeoutSeconds: Type.Integer({
      minimum: Limits.timeoutSeconds.min,
      maximum: Limits.timeoutSeconds.max,
      default: Limits.timeoutSeconds.default,
    }),
    ephemeralStorage: Quantity('/tmp size, 512Mi..10Gi', '512Mi'),
    env: Type.Optional(Type.Array(EnvVar)),
    concurrency: Type.Object(
      {
        reserved: Type.Optional(
          Type.Integer({ minimum: 0, description: 'Reserved concurrency: a guarantee and a cap' }),
        ),
        perInstance: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 1,
          description: 'Calls one instance takes at once',
        }),
        perRuntime: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 1,
          description:
            'Calls one runtime process takes at once (AWS_LAMBDA_MAX_CONCURRENCY, as on Lambda Managed Instances); 1 as on Lambda',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    scaling: Type.Object(
      {
        minWarm: Type.Integer({ minimum: 0, default: 0, description: 'Instances always warm' }),
        maxInstances: Type.Integer({ minimum: 1, default: 100 }),
        idleSeconds: Type.Integer({
          minimum: 0,
          default: 300,
          description: 'Scale down after this long idle',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    async: Type.Object(
      {
        maxRetryAttempts: Type.Integer({ minimum: 0, maximum: 2, default: 2 }),
        maxEventAgeSeconds: Type.Integer({ minimum: 60, maximum: 21600, default: 21600 }),
        onSuccess: Type.Optional(Destination),
        onFailure: Type.Optional(Destination),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);
export type FunctionSpec = Static<typeof FunctionSpecSchema>;

/**
 * What `GET /hearth/v1/functions/{name}` answers: the parts of a Function that Lambda's
 * GetFunction has no field for (how many calls an instance and a runtime process take, the pool's
 * bounds) and the instances serving it now, as this gateway's discovery sees them.
 */
export interface FunctionDetails {
  name: string;
  concurrency: { perInstance: number; perRuntime: number; reserved?: number };
  scaling: FunctionSpec['scaling'];
  instances: {
    /** Ready instances of the current revision: the ones calls go to. */
    ready: number;
    /** Started, not ready yet (a cold start, or a new revision rolling out). */
    starting: number;
    /** Finishing their calls before they stop, or serving an earlier revision until they do. */
    draining: number;
  };
}

export interface Condition {
  type: 'Ready' | 'CodeReady' | 'PoolReady';
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message?: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface FunctionStatus {
  observedGeneration?: number;
  revision?: string;
  conditions?: Condition[];
  instances?: { desired: number; ready: number; busy: number };
  url?: string;
}

export interface FunctionResource {
  apiVersion: `${typeof API_GROUP}/${typeof API_VERSION}`;
  kind: 'Function';
  metadata: { name: string; namespace?: string; generation?: number; uid?: string; [key: string]: unknown };
  spec: FunctionSpec;
  status?: FunctionStatus;
}

/** A field-named validation problem. */
export interface SpecProblem {
  path: string;
  message: string;
}

const MEBI = { Mi: 1, Gi: 1024 } as const;

/** `256Mi` -> 256, `1Gi` -> 1024. */
export function quantityToMb(quantity: string): number {
  const match = /^([0-9]+)(Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`not a quantity in Mi or Gi: ${quantity}`);
  return Number(match[1]) * MEBI[match[2] as keyof typeof MEBI];
}

/**
 * Fills in defaults and checks a spec the way the CRD's schema does, so that manifests read from
 * files (hearth dev) and from the API server are judged alike. Returns the defaulted spec or the
 * problems, each naming its field.
 */
export function validateFunctionSpec(
  input: unknown,
): { spec: FunctionSpec; problems: [] } | { spec?: undefined; problems: SpecProblem[] } {
  const candidate = Value.Default(FunctionSpecSchema, structuredClone(input ?? {}));
  const problems: SpecProblem[] = [...Value.Errors(FunctionSpecSchema, candidate)].map((e) => ({
    path: `spec${e.path.replaceAll('/', '.')}`,
    message: e.message,
  }));
  if (problems.length === 0) problems.push(...crossFieldProblems(candidate as FunctionSpec));
  return problems.length ? { problems } : { spec: candidate as FunctionSpec, problems: [] };
}

function crossFieldProblems(spec: FunctionSpec): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const sources = Object.values(spec.code).filter((v) => v !== undefined).length;
  if (sources !== 1) {
    problems.push({
      path: 'spec.code',
      message: `must have exactly one of inline, configMap, archive, image (has ${sources})`,
    });
  }
  if (spec.imageConfig && spec.code.image === undefined) {
    problems.push({
      path: 'spec.imageConfig',
      message: 'is only for functions whose code is an image (spec.code.image)',
    });
  }
  if (spec.code.image !== undefined && spec.runtime !== 'provided.al2023') {
    problems.push({
      path: 'spec.runtime',
      message: `must be provided.al2023 when spec.code.image is set: an image brings its own runtime (got ${spec.runtime})`,
    });
  }
  const range = (path: string, value: string, min: number, max: number) => {
    const mb = quantityToMb(value);
    if (mb < min || mb > max)
      problems.push({ path, message: `must be between ${min}Mi and ${max / 1024}Gi (got ${value})` });
  };
  range('spec.memory', spec.memory, Limits.memoryMb.min, Limits.memoryMb.max);
  range(
    'spec.ephemeralStorage',
    spec.ephemeralStorage,
    Limits.ephemeralStorageMb.min,
    Limits.ephemeralStorageMb.max,
  );
  const { perInstance, perRuntime } = spec.concurrency;
  if (perRuntime > 1 && !MultiConcurrentRuntimes.includes(spec.runtime)) {
    problems.push({
      path: 'spec.concurrency.perRuntime',
      message: `must be 1 for ${spec.runtime}, whose runtime takes one call at a time: raise spec.concurrency.perInstance instead (got ${perRuntime})`,
    });
  }
  const runtimes = runtimesPerInstance(spec.concurrency);
  if (runtimes > MAX_RUNTIMES_PER_INSTANCE) {
    problems.push({
      path: 'spec.concurrency.perInstance',
      message: `needs ${runtimes} runtime processes at ${perRuntime} call(s) each, and an instance runs at most ${MAX_RUNTIMES_PER_INSTANCE}: raise spec.concurrency.perRuntime, or lower this and let the pool grow (got ${perInstance})`,
    });
  }
  if (spec.scaling.minWarm > spec.scaling.maxInstances) {
    problems.push({ path: 'spec.scaling.minWarm', message: 'must not exceed spec.scaling.maxInstances' });
  }
  for (const [key, destination] of Object.entries({
    onSuccess: spec.async.onSuccess,
    onFailure: spec.async.onFailure,
  })) {
    if (destination && Object.values(destination).filter((v) => v !== undefined).length !== 1) {
      problems.push({ path: `spec.async.${key}`, message: 'must have exactly one of function, url, stream' });
    }
  }
  const envBytes = (spec.env ?? []).reduce((n, e) => n + e.name.length + (e.value?.length ?? 0), 0);
  if (envBytes > Limits.envVarsBytes) {
    problems.push({
      path: 'spec.env',
      message: `all variables together must be at most ${Limits.envVarsBytes} bytes (got ${envBytes})`,
    });
  }
  return problems;
}
