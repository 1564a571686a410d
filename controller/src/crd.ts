import { stringify } from 'yaml';
import {
  API_GROUP,
  API_VERSION,
  EventSourceKinds,
  EventSourceLimits,
  EventSourceMappingSpecSchema,
  FunctionSpecSchema,
  Limits,
  MAX_RUNTIMES_PER_INSTANCE,
  MultiConcurrentRuntimes,
  RESERVED_HTTP_PREFIXES,
} from '@hearth/api';

/** An OpenAPI v3 schema as a CustomResourceDefinition holds it. */
export type CrdSchema = { [key: string]: unknown };

/**
 * Turns one of api's TypeBox (JSON Schema) schemas into a structural CRD schema: every node
 * typed, unions of constants as enums, records as `additionalProperties`, free-form objects as
 * preserved unknown fields, defaults and descriptions kept.
 */
export function toStructural(schema: Record<string, unknown>): CrdSchema {
  const out: CrdSchema = {};
  if (typeof schema.description === 'string') out.description = schema.description;
  if (Array.isArray(schema.anyOf)) {
    const options = schema.anyOf as Record<string, unknown>[];
    if (!options.every((o) => 'const' in o && o.type === 'string'))
      throw new Error('only unions of string constants map to a CRD');
    return withDefault({ ...out, type: 'string', enum: options.map((o) => o.const) }, schema);
  }
  if ('const' in schema) {
    if (schema.type !== 'string') throw new Error('only string constants map to a CRD');
    return withDefault({ ...out, type: 'string', enum: [schema.const] }, schema);
  }
  // Any JSON value at all (TypeBox's Unknown), such as a schedule's constant input.
  if ((schema as Record<symbol, unknown>)[Symbol.for('TypeBox.Kind')] === 'Unknown') {
    return { ...out, 'x-kubernetes-preserve-unknown-fields': true };
  }
  const type = schema.type;
  switch (type) {
    case 'object': {
      out.type = 'object';
      const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      const patterns = schema.patternProperties as Record<string, Record<string, unknown>> | undefined;
      if (patterns) {
        const [value] = Object.values(patterns);
        out.additionalProperties = toStructural(value!);
      } else if (Object.keys(properties).length === 0 && schema.additionalProperties === true) {
        out['x-kubernetes-preserve-unknown-fields'] = true;
      } else {
        out.properties = Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, toStructural(v)]));
      }
      // A field with a default is always there after defaulting; requiring it would make the
      // API server reject the parent's own default (`{}`).
      const required = ((schema.required as string[] | undefined) ?? []).filter(
        (k) => properties[k]?.default === undefined,
      );
      if (required.length > 0) out.required = required;
      break;
    }
    case 'array':
      out.type = 'array';
      out.items = toStructural(schema.items as Record<string, unknown>);
      for (const key of ['minItems', 'maxItems']) {
        if (schema[key] !== undefined) out[key] = schema[key];
      }
      break;
    case 'string':
    case 'integer':
    case 'number':
    case 'boolean':
      out.type = type;
      for (const key of ['pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'format']) {
        if (schema[key] !== undefined) out[key] = schema[key];
      }
      break;
    default:
      throw new Error(`no CRD mapping for schema type ${String(type)}`);
  }
  return withDefault(out, schema);
}

function withDefault(out: CrdSchema, schema: Record<string, unknown>): CrdSchema {
  if (schema.default !== undefined) out.default = withChildDefaults(schema.default, out);
  return out;
}

/**
 * An object's default written out with its fields' defaults (`{}` -> `{ minWarm: 0, ... }`): the
 * API server checks a default against the CEL rules as it stands, before nested defaulting.
 */
function withChildDefaults(value: unknown, node: CrdSchema): unknown {
  const properties = node.properties as Record<string, CrdSchema> | undefined;
  if (!properties || value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const filled: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, child] of Object.entries(properties)) {
    if (filled[key] === undefined && child.default !== undefined) filled[key] = child.default;
  }
  return filled;
}

const exactlyOne = (fields: string[]) => fields.map((f) => `(has(self.${f}) ? 1 : 0)`).join(' + ') + ' == 1';

function quantityRange(field: string, minMb: number, maxMb: number) {
  const min = `${minMb}Mi`;
  const max = `${maxMb / 1024}Gi`;
  return {
    rule: `quantity(self).compareTo(quantity('${min}')) >= 0 && quantity(self).compareTo(quantity('${max}')) <= 0`,
    message: `spec.${field} must be between ${min} and ${max}`,
  };
}

/** CEL: the spec's runtime is one that takes several calls at once. */
const multiConcurrentRuntime = `self.runtime in [${MultiConcurrentRuntimes.map((r) => `'${r}'`).join(', ')}]`;

/** The spec schema with the cross-field rules that JSON Schema cannot say, as CEL. */
export function specSchema(): CrdSchema {
  const spec = toStructural(FunctionSpecSchema as unknown as Record<string, unknown>);
  const props = spec.properties as Record<string, CrdSchema>;
  props.code!['x-kubernetes-validations'] = [
    {
      rule: exactlyOne(['inline', 'configMap', 'archive', 'image']),
      message: 'spec.code must have exactly one of inline, configMap, archive, image',
    },
  ];
  spec['x-kubernetes-validations'] = [
    {
      rule: '!has(self.imageConfig) || has(self.code.image)',
      message: 'spec.imageConfig is only for functions whose code is an image (spec.code.image)',
    },
    {
      rule: "!has(self.code.image) || self.runtime == 'provided.al2023'",
      message:
        'spec.runtime must be provided.al2023 when spec.code.image is set: an image brings its own runtime',
    },
    {
      rule: `!has(self.concurrency) || !has(self.concurrency.perRuntime) || self.concurrency.perRuntime == 1 || ${multiConcurrentRuntime}`,
      message:
        'spec.concurrency.perRuntime must be 1 for a runtime that takes one call at a time (python3.11): raise spec.concurrency.perInstance instead',
    },
  ];
  props.concurrency!['x-kubernetes-validations'] = [
    {
      rule: `!has(self.perInstance) || !has(self.perRuntime) || (self.perInstance + self.perRuntime - 1) / self.perRuntime <= ${MAX_RUNTIMES_PER_INSTANCE}`,
      message: `spec.concurrency.perInstance needs ceil(perInstance / perRuntime) runtime processes, and an instance runs at most ${MAX_RUNTIMES_PER_INSTANCE}: raise spec.concurrency.perRuntime, or lower perInstance and let the pool grow`,
    },
  ];
  // Quantities match ^[0-9]+(Mi|Gi)$; the bound keeps CEL's cost estimate small.
  for (const field of ['memory', 'ephemeralStorage']) props[field]!.maxLength = 16;
  props.memory!['x-kubernetes-validations'] = [
    quantityRange('memory', Limits.memoryMb.min, Limits.memoryMb.max),
  ];
  props.ephemeralStorage!['x-kubernetes-validations'] = [
    quantityRange('ephemeralStorage', Limits.ephemeralStorageMb.min, Limits.ephemeralStorageMb.max),
  ];
  props.scaling!['x-kubernetes-validations'] = [
    {
      rule: 'self.minWarm <= self.maxInstances',
      message: 'spec.scaling.minWarm must not exceed spec.scaling.maxInstances',
    },
  ];
  const env = props.env!;
  env['x-kubernetes-list-type'] = 'map';
  env['x-kubernetes-list-map-keys'] = ['name'];
  const async = (props.async!.properties as Record<string, CrdSchema>)!;
  for (const key of ['onSuccess', 'onFailure']) {
    async[key]!['x-kubernetes-validations'] = [
      {
        rule: exactlyOne(['function', 'url', 'stream']),
        message: `spec.async.${key} must have exactly one of function, url, stream`,
      },
    ];
  }
  return spec;
}

const conditionSchema: CrdSchema = {
  type: 'object',
  required: ['type', 'status'],
  properties: {
    type: { type: 'string' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    reason: { type: 'string' },
    message: { type: 'string' },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    observedGeneration: { type: 'integer', format: 'int64' },
  },
};

const statusSchema: CrdSchema = {
  type: 'object',
  properties: {
    observedGeneration: { type: 'integer', format: 'int64' },
    revision: { type: 'string' },
    url: { type: 'string' },
    conditions: {
      type: 'array',
      items: conditionSchema,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
    instances: {
      type: 'object',
      properties: { desired: { type: 'integer' }, ready: { type: 'integer' }, busy: { type: 'integer' } },
    },
  },
};

export const FUNCTION_PLURAL = 'functions';

interface CrdDefinition {
  kind: string;
  plural: string;
  shortName: string;
  printerColumns: Record<string, unknown>[];
  description: string;
  spec: CrdSchema;
  status: CrdSchema;
}

/** A namespaced CustomResourceDefinition with one served, stored version and a status subresource. */
function namespacedCrd(d: CrdDefinition): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${d.plural}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      scope: 'Namespaced',
      names: {
        kind: d.kind,
        listKind: `${d.kind}List`,
        plural: d.plural,
        singular: d.kind.toLowerCase(),
        shortNames: [d.shortName],
      },
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: d.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: d.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: d.spec,
                status: d.status,
              },
            },
          },
        },
      ],
    },
  };
}

/** The Function CustomResourceDefinition. */
export function functionCrd(): Record<string, unknown> {
  return namespacedCrd({
    kind: 'Function',
    plural: FUNCTION_PLURAL,
    shortName: 'fn',
    printerColumns: [
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: 'Runtime', type: 'string', jsonPath: '.spec.runtime' },
      { name: 'Instances', type: 'integer', jsonPath: '.status.instances.ready' },
      { name: 'Revision', type: 'string', jsonPath: '.status.revision' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
    description: 'A function: code and settings, run as a warm pool of instances.',
    spec: specSchema(),
    status: statusSchema,
  });
}

function crdYaml(crd: Record<string, unknown>, source: string): string {
  const header = `# Generated from ${source} by \`node controller/dist/gen-crd.js\`; do not edit by hand.\n`;
  return header + stringify(crd, { lineWidth: 0, singleQuote: true });
}

export function functionCrdYaml(): string {
  return crdYaml(functionCrd(), 'api/src/function.ts');
}

/** The EventSourceMapping spec schema with the rules across fields, as CEL. */
export function eventSourceMappingSpecSchema(): CrdSchema {
  const spec = toStructural(EventSourceMappingSpecSchema as unknown as Record<string, unknown>);
  const props = spec.properties as Record<string, CrdSchema>;
  const age = EventSourceLimits.maximumRecordAgeInSeconds;
  spec['x-kubernetes-validations'] = [
    {
      rule: "self.startingPosition != 'AT_TIMESTAMP' || has(self.startingPositionTimestamp)",
      message: 'spec.startingPositionTimestamp is required with startingPosition AT_TIMESTAMP',
      fieldPath: '.startingPositionTimestamp',
    },
  ];
  props.maximumRecordAgeInSeconds!['x-kubernetes-validations'] = [
    {
      rule: `self == -1 || (self >= ${age.min} && self <= ${age.max})`,
      message: `spec.maximumRecordAgeInSeconds must be -1 or between ${age.min} and ${age.max}`,
    },
  ];
  props.source!['x-kubernetes-validations'] = [
    {
      rule: exactlyOne([...EventSourceKinds]),
      message: `spec.source must have exactly one of ${EventSourceKinds.join(', ')}`,
    },
  ];
  const sources = props.source!.properties as Record<string, CrdSchema>;
  const reserved = RESERVED_HTTP_PREFIXES.map((prefix) => `'${prefix}'`).join(', ');
  (sources.http!.properties as Record<string, CrdSchema>).pathPrefix!['x-kubernetes-validations'] = [
    {
      // A prefix above them (such as "/") is fine: the gateway's own paths match first.
      rule: `![${reserved}].exists(p, (self + '/').startsWith(p))`,
      message: "spec.source.http.pathPrefix must not overlap the gateway's own paths",
    },
  ];
  const destinations = props.destinationConfig!.properties as Record<string, CrdSchema>;
  destinations.onFailure!['x-kubernetes-validations'] = [
    {
      rule: exactlyOne(['function', 'url', 'stream']),
      message: 'spec.destinationConfig.onFailure must have exactly one of function, url, stream',
    },
  ];
  return spec;
}

const mappingStatusSchema: CrdSchema = {
  type: 'object',
  properties: {
    observedGeneration: { type: 'integer', format: 'int64' },
    state: { type: 'string', enum: ['Creating', 'Enabled', 'Disabled', 'Failed'] },
    stateReason: { type: 'string' },
    lastProcessedPosition: { type: 'string' },
    lastProcessingResult: { type: 'string' },
    lastError: { type: 'string' },
    lastModified: { type: 'string', format: 'date-time' },
  },
};

export const EVENT_SOURCE_MAPPING_PLURAL = 'eventsourcemappings';

/** The EventSourceMapping CustomResourceDefinition. */
export function eventSourceMappingCrd(): Record<string, unknown> {
  return namespacedCrd({
    kind: 'EventSourceMapping',
    plural: EVENT_SOURCE_MAPPING_PLURAL,
    shortName: 'esm',
    printerColumns: [
      { name: 'Function', type: 'string', jsonPath: '.spec.functionName' },
      { name: 'State', type: 'string', jsonPath: '.status.state' },
      { name: 'Last Result', type: 'string', jsonPath: '.status.lastProcessingResult' },
      { name: 'Position', type: 'string', jsonPath: '.status.lastProcessedPosition', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
    description:
      'What invokes a function besides a direct call: a stream or queue it polls, a schedule, an HTTP route or bucket notifications.',
    spec: eventSourceMappingSpecSchema(),
    status: mappingStatusSchema,
  });
}

export function eventSourceMappingCrdYaml(): string {
  return crdYaml(eventSourceMappingCrd(), 'api/src/event-source.ts');
}
