import { Redis } from 'ioredis';
import type { RecordSource, SourceRecord, StartingPosition } from './types.js';

export interface RedisStreamSourceOptions {
  redisUrl: string;
  /** The stream's key. */
  stream: string;
  group: string;
  /** This reader's name in the group; a stable one lets a restarted reader take back its own entries at once. */
  consumer: string;
  /** Where a new group starts; an existing group keeps its own position. */
  position: StartingPosition;
  /** The name in the source's ARN and the default partition key; default the stream's key. */
  streamName?: string;
  /**
   * Entries another consumer of the group was handed and has not acknowledged for this long are
   * taken over (that consumer is taken for dead). Default 60 s.
   */
  claimIdleMs?: number;
}

/** Redis's largest sequence part of an entry id. */
const MAX_SEQUENCE = '18446744073709551615';

/**
 * The id a new consumer group starts after: it is handed the entries with greater ids. For
 * AT_TIMESTAMP that is every entry of that millisecond or later.
 */
export function groupStartId(position: StartingPosition): string {
  switch (position.startingPosition) {
    case 'LATEST':
      return '$';
    case 'TRIM_HORIZON':
      return '0';
    case 'AT_TIMESTAMP': {
      const ms = Date.parse(position.startingPositionTimestamp ?? '');
      if (!Number.isFinite(ms)) throw new Error('AT_TIMESTAMP needs a valid startingPositionTimestamp');
      return ms <= 0 ? '0' : `${ms - 1}-${MAX_SEQUENCE}`;
    }
  }
}

/** The milliseconds part of an entry id `<ms>-<seq>`. */
export function entryMillis(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

/**
 * A stream entry as a record: the field `data` is the record's bytes when present, else the
 * entry's fields as a JSON object; the field `partitionKey` orders it, else the stream's name.
 */
export function entryToRecord(
  id: string,
  fields: readonly Buffer[],
  defaultPartitionKey: string,
  redelivered: boolean,
): SourceRecord {
  let data: Buffer | undefined;
  let partitionKey = defaultPartitionKey;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toString();
    if (name === 'data') data = fields[i + 1]!;
    if (name === 'partitionKey') partitionKey = fields[i + 1]!.toString();
  }
  return {
    sequence: id,
    partitionKey,
    data: data ?? fieldsAsJson(fields),
    arrivedAt: entryMillis(id),
    ...(redelivered ? { redelivered: true } : {}),
  };
}

/** An entry without a `data` field: all its fields as one JSON object, the record's bytes. */
function fieldsAsJson(fields: readonly Buffer[]): Buffer {
  const all: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) all[fields[i]!.toString()] = fields[i + 1]!.toString();
  return Buffer.from(JSON.stringify(all));
}

type Entry = [id: Buffer, fields: Buffer[] | null];

function isBusyGroup(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('BUSYGROUP');
}

function isNoGroup(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOGROUP');
}

/**
 * Reads a Redis stream through a consumer group. On open it first hands out what this group was
 * handed before and never acknowledged (this consumer's pending entries, and other consumers'
 * idle ones), marked redelivered; then new entries in order. Blocking reads use a connection of
 * their own, so that acknowledgements never wait behind them.
 */
export async function openRedisStreamSource(options: RedisStreamSourceOptions): Promise<RecordSource> {
  const { stream, group, consumer } = options;
  const streamName = options.streamName ?? stream;
  const claimIdleMs = options.claimIdleMs ?? 60_000;
  // RESP2 keeps replies in the documented shapes (RESP3 would flatten XREADGROUP's stream map).
  const connectionOptions = { protocol: 2 as const, maxRetriesPerRequest: 2, lazyConnect: true };
  const commands = new Redis(options.redisUrl, connectionOptions);
  const blocking = new Redis(options.redisUrl, connectionOptions);
  // Errors surface as rejected commands; without listeners ioredis would also print each one.
  commands.on('error', () => undefined);
  blocking.on('error', () => undefined);

  const ensureGroup = async () => {
    try {
      await commands.xgroup('CREATE', stream, group, groupStartId(options.position), 'MKSTREAM');
    } catch (error) {
      if (!isBusyGroup(error)) throw error;
    }
  };

  /** Handed out and not yet acknowledged: never handed out twice by this reader. */
  const inFlight = new Set<string>();
  /** Where the walk through this consumer's own pending entries is; undefined once done. */
  let pendingCursor: string | undefined = '0';
  let lastSweepAt = 0;
  let closed = false;

  try {
    await Promise.all([commands.connect(), blocking.connect()]);
    await ensureGroup();
    // Other consumers' idle entries become this consumer's, so the walk below hands them out too.
    for (let cursor = '0-0'; ;) {
      const [next] = (await commands.xautoclaim(
        stream,
        group,
        consumer,
        claimIdleMs,
        cursor,
        'COUNT',
        1000,
        'JUSTID',
      )) as [string, ...unknown[]];
      if (next === '0-0') break;
      cursor = next;
    }
    lastSweepAt = Date.now();
  } catch (error) {
    commands.disconnect();
    blocking.disconnect();
    throw error;
  }

  const toRecords = (
    entries: Entry[],
    redelivered: boolean,
  ): { records: SourceRecord[]; deleted: string[] } => {
    const records: SourceRecord[] = [];
    const deleted: string[] = [];
    for (const [rawId, fields] of entries) {
      const id = rawId.toString();
      // A pending entry trimmed from the stream since: nothing to deliver, only to acknowledge.
      if (fields === null) deleted.push(id);
      else if (!inFlight.has(id)) {
        inFlight.add(id);
        records.push(entryToRecord(id, fields, streamName, redelivered));
      }
    }
    return { records, deleted };
  };

  const readGroup = async (count: number, blockMs: number | undefined, id: string): Promise<Entry[]> => {
    const reply = (await blocking.callBuffer(
      'XREADGROUP',
      'GROUP',
      group,
      consumer,
      'COUNT',
      count,
      ...(blockMs === undefined ? [] : ['BLOCK', Math.max(1, Math.round(blockMs))]),
      'STREAMS',
      stream,
      id,
    )) as [Buffer, Entry[]][] | null;
    return reply?.[0]?.[1] ?? [];
  };

  /** Where a sweep for other consumers' idle entries is; undefined between sweeps. */
  let claimCursor: string | undefined;

  /** The next page of a dead consumer's entries that went idle since the last sweep, if any. */
  const claimIdle = async (max: number): Promise<SourceRecord[]> => {
    if (claimCursor === undefined && Date.now() - lastSweepAt >= claimIdleMs) claimCursor = '0-0';
    while (claimCursor !== undefined) {
      const [next, entries] = (await commands.callBuffer(
        'XAUTOCLAIM',
        stream,
        group,
        consumer,
        claimIdleMs,
        claimCursor,
        'COUNT',
        max,
      )) as [Buffer, Entry[], ...unknown[]];
      claimCursor = next.toString() === '0-0' ? undefined : next.toString();
      if (claimCursor === undefined) lastSweepAt = Date.now();
      // This reader's own entries show up too once idle that long (a long retry): they stay as they are.
      const { records } = toRecords(entries, true);
      if (records.length > 0) return records;
    }
    return [];
  };

  const read = async (max: number, waitMs: number): Promise<SourceRecord[]> => {
    if (closed) return [];
    try {
      while (pendingCursor !== undefined) {
        const entries = await readGroup(max, undefined, pendingCursor);
        if (entries.length === 0) {
          pendingCursor = undefined;
          break;
        }
        pendingCursor = entries.at(-1)![0].toString();
        const { records, deleted } = toRecords(entries, true);
        if (deleted.length > 0) await commands.xack(stream, group, ...deleted);
        if (records.length > 0) return records;
      }
      const claimed = await claimIdle(max);
      if (claimed.length > 0) return claimed;
      return toRecords(await readGroup(max, waitMs, '>'), false).records;
    } catch (error) {
      // Redis restarted without its data: the group is gone, so make it again (at the start position).
      if (isNoGroup(error) && !closed) await ensureGroup();
      throw error;
    }
  };

  return {
    arn: `arn:hearth:redis:::stream/${streamName}`,
    read,
    async ack(records) {
      if (records.length === 0) return;
      const ids = records.map((record) => record.sequence);
      await commands.xack(stream, group, ...ids);
      for (const id of ids) inFlight.delete(id);
    },
    async lagMs() {
      const now = Date.now();
      const [count, oldest] = (await commands.xpending(stream, group)) as [
        number,
        string | null,
        ...unknown[],
      ];
      if (count > 0 && oldest) return Math.max(0, now - entryMillis(oldest));
      const groups = (await commands.xinfo('GROUPS', stream)) as unknown[][];
      const info = groups.find((fields) => fields[fields.indexOf('name') + 1] === group);
      const lastDelivered = info?.[info.indexOf('last-delivered-id') + 1];
      if (typeof lastDelivered !== 'string') return 0;
      const [next] = await commands.xrange(stream, `(${lastDelivered}`, '+', 'COUNT', 1);
      return next ? Math.max(0, now - entryMillis(next[0])) : 0;
    },
    async close() {
      closed = true;
      // A blocked XREADGROUP ends with the connection; its entries stay pending for the next reader.
      blocking.disconnect();
      await commands.quit().catch(() => commands.disconnect());
    },
  };
}
