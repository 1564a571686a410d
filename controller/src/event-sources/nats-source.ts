import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  AckPolicy,
  connect,
  createInbox,
  DeliverPolicy,
  Events,
  ReplayPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type Msg,
  type NatsConnection,
  type NatsError,
  type Subscription,
} from 'nats';
import type { Logger } from 'pino';
import type { NatsSource } from '@hearth/api';
import type { RecordSource, SourceRecord, StartingPosition } from './types.js';

/** The header a publisher sets to choose a record's partition key; the subject otherwise. */
export const PARTITION_KEY_HEADER = 'Hearth-Partition-Key';

/** JetStream's own default: long enough that a busy controller never loses a record it holds. */
export const DEFAULT_ACK_WAIT_MS = 30_000;

/**
 * The most records the consumer lets out unacknowledged, a bound on what a reader holds in memory.
 * The stream runner holds up to three batches per lane; a mapping that would hold more (batchSize
 * times parallelizationFactor above about 6,000) waits for acknowledgements and sends smaller
 * batches, nothing worse.
 */
export const DEFAULT_MAX_ACK_PENDING = 20_000;

/** A pull the server never answers (the consumer is gone, the connection dropped) counts as over after this. */
const PULL_GRACE_MS = 2_000;

const ERR_CONSUMER_NOT_FOUND = 10_014;
const ERR_STREAM_NOT_FOUND = 10_059;

export interface NatsSourceOptions {
  source: NatsSource;
  /** The durable consumer: `source.consumer ?? hearth-<mapping name>`. */
  consumer: string;
  position: StartingPosition;
  /** How long a record handed out may go unacknowledged before the server gives it to another reader. */
  ackWaitMs?: number;
  maxAckPending?: number;
  /** Defaults to source.stream. */
  streamName?: string;
  logger?: Logger;
}

/** A JetStream record; `redelivered` when a reader had it before and did not acknowledge it. */
export interface NatsRecord extends SourceRecord {
  redelivered: boolean;
}

/** What the ack subject of a delivered message says (JetStream's `$JS.ACK.` reply subject). */
export interface DeliveryMetadata {
  streamSequence: number;
  deliveryCount: number;
  /** When the message reached the stream, epoch ms. */
  storedAt: number;
}

/**
 * Reads `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>`, or
 * the newer form with a domain and account hash after `ACK` (and a token at the end).
 */
export function parseAckSubject(reply: string): DeliveryMetadata {
  const tokens = reply.split('.');
  if (tokens[0] !== '$JS' || tokens[1] !== 'ACK' || (tokens.length !== 9 && tokens.length < 11)) {
    throw new Error(`not a JetStream ack subject: ${reply}`);
  }
  const first = tokens.length === 9 ? 4 : 6;
  return {
    deliveryCount: Number(tokens[first]),
    streamSequence: Number(tokens[first + 1]),
    storedAt: Number(BigInt(tokens[first + 3]!) / 1_000_000n),
  };
}

/** The consumer settings that decide where a new durable starts. */
export function deliverPolicyFor(
  position: StartingPosition,
): Pick<ConsumerConfig, 'deliver_policy' | 'opt_start_time'> {
  switch (position.startingPosition) {
    case 'TRIM_HORIZON':
      return { deliver_policy: DeliverPolicy.All };
    case 'LATEST':
      return { deliver_policy: DeliverPolicy.New };
    case 'AT_TIMESTAMP':
      if (!position.startingPositionTimestamp)
        throw new Error('AT_TIMESTAMP needs startingPositionTimestamp');
      return {
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: new Date(position.startingPositionTimestamp).toISOString(),
      };
  }
}

/**
 * Records an earlier reader of the durable left pending: sequences up to `upTo` go out first, and
 * nothing newer until they are back. If they are not back by `until`, a live reader holds them
 * (two controllers reading one durable, or an old one not yet stopped): it keeps them alive, so
 * waiting longer would stall this reader for nothing, and order across two live readers is not
 * this one's to keep.
 */
interface Recovery {
  upTo: number;
  until: number;
  /** max_ack_pending is lowered to the pending count. */
  throttled: boolean;
  logged: boolean;
}

/** A delivered message as the source keeps it until acknowledged. */
interface Held {
  record: NatsRecord;
  /** The ack subject of the latest delivery: an ack or progress signal goes there. */
  reply: string;
}

/** One pull request: the server sends up to `batch` messages, then a status when it expires. */
interface Pull {
  batch: number;
  received: number;
  guard: NodeJS.Timeout;
}

/**
 * Opens a JetStream durable pull consumer as a RecordSource.
 *
 * Ordering: one pull request is outstanding at a time, on one inbox subscription that lives as
 * long as the source, so a message the server sends after a read has returned is kept for the next
 * read rather than lost until its ack_wait runs out (which would let newer records overtake it).
 *
 * Records a reader took and never acknowledged: records a source holds get a progress signal
 * (`+WPI`) every third of ack_wait, so the server never hands them to anyone else while the
 * source lives; close() gives them back at once (`-NAK`). A reader that dies keeps them until
 * ack_wait runs out. Either way the next reader finds them pending when it opens, and until it has
 * them back it lowers the consumer's max_ack_pending to their number: the server sends
 * redeliveries before new messages, and with max_ack_pending reached it sends no new message at
 * all. Anything newer that still arrives meanwhile waits in the source until the old records have
 * been handed out; then max_ack_pending goes back up.
 */
export async function openNatsSource(options: NatsSourceOptions): Promise<RecordSource> {
  const stream = options.streamName ?? options.source.stream;
  const ackWaitMs = options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  const maxAckPending = options.maxAckPending ?? DEFAULT_MAX_ACK_PENDING;
  const connection = await connect({
    servers: options.source.url,
    name: `hearth:${options.consumer}`,
    maxReconnectAttempts: -1,
    // A mapping waits on its source: come back soon after the server does.
    reconnectTimeWait: 500,
  }).catch((error: Error) => {
    throw new Error(`could not connect to NATS at ${options.source.url}: ${error.message}`, { cause: error });
  });
  try {
    const manager = await connection.jetstreamManager();
    const info = await ensureConsumer(manager, stream, options, ackWaitMs, maxAckPending);
    return new NatsRecordSource(connection, manager, stream, options, info, ackWaitMs, maxAckPending);
  } catch (error) {
    await connection.close();
    throw error;
  }
}

/** Creates the durable, or brings an existing one's settings in line; its position stays. */
async function ensureConsumer(
  manager: JetStreamManager,
  stream: string,
  options: NatsSourceOptions,
  ackWaitMs: number,
  maxAckPending: number,
): Promise<ConsumerInfo> {
  const settings = {
    description: 'Hearth event source mapping',
    ack_wait: ackWaitMs * 1_000_000,
    max_ack_pending: maxAckPending,
    max_deliver: -1,
    ...(options.source.subject ? { filter_subject: options.source.subject } : {}),
  };
  let existing: ConsumerInfo | undefined;
  try {
    existing = await manager.consumers.info(stream, options.consumer);
  } catch (error) {
    const code = (error as NatsError).api_error?.err_code;
    if (code === ERR_STREAM_NOT_FOUND) {
      throw new Error(`JetStream stream ${stream} does not exist at ${options.source.url}`, { cause: error });
    }
    if (code !== ERR_CONSUMER_NOT_FOUND) throw error;
  }
  if (!existing) {
    return manager.consumers.add(stream, {
      durable_name: options.consumer,
      ack_policy: AckPolicy.Explicit,
      replay_policy: ReplayPolicy.Instant,
      ...deliverPolicyFor(options.position),
      ...settings,
    });
  }
  const config: Record<string, unknown> = { ...existing.config };
  if (config.filter_subject && !options.source.subject) {
    throw new Error(
      `consumer ${options.consumer} reads only ${String(config.filter_subject)} and the mapping names no subject: ` +
        'set source.nats.subject, delete the consumer, or name another one',
    );
  }
  // max_ack_pending too: a reader that died recovering may have left it lowered.
  if (Object.entries(settings).every(([key, value]) => config[key] === value)) return existing;
  return manager.consumers.update(stream, options.consumer, settings);
}

class NatsRecordSource implements RecordSource {
  readonly arn: string;
  /** Delivered and not yet handed out, by stream sequence. */
  private readonly waiting: Held[] = [];
  /** Handed out and not yet acknowledged, by stream sequence. */
  private readonly handedOut = new Map<string, Held>();
  private readonly subscription: Subscription;
  private readonly heartbeat: NodeJS.Timeout;
  private pull: Pull | undefined;
  private wake: (() => void) | undefined;
  /** Set while records an earlier reader left pending are not all back. */
  private recovery: Recovery | undefined;
  /** Ends the source: reads fail from now on. */
  private failure: Error | undefined;
  /** Ended the last pull early: the read waiting on it fails. */
  private pullError: Error | undefined;
  private closed = false;

  constructor(
    private readonly connection: NatsConnection,
    private readonly manager: JetStreamManager,
    private readonly stream: string,
    private readonly options: NatsSourceOptions,
    info: ConsumerInfo,
    ackWaitMs: number,
    private readonly maxAckPending: number,
  ) {
    this.arn = `arn:hearth:nats:::stream/${stream}`;
    if (info.num_ack_pending > 0) {
      this.recovery = {
        upTo: info.delivered.stream_seq,
        // A dead reader's records are due again one ack_wait after its last progress signal,
        // which was before now; pending past three is a live reader's (see Recovery).
        until: Date.now() + 3 * ackWaitMs,
        throttled: false,
        logged: false,
      };
    }
    this.subscription = connection.subscribe(createInbox(), {
      callback: (error, message) => (error ? this.fail(error) : this.receive(message)),
    });
    this.heartbeat = setInterval(() => this.keepHeld(), Math.max(100, Math.floor(ackWaitMs / 3)));
    void this.followReconnects();
  }

  /** A pull dies with the connection it was sent on: a new one goes out at once after a reconnect. */
  private async followReconnects() {
    for await (const status of this.connection.status()) {
      if (status.type !== Events.Reconnect) continue;
      if (this.pull) this.endPull(this.pull);
      this.keepHeld();
    }
  }

  async read(max: number, waitMs: number): Promise<SourceRecord[]> {
    if (this.closed) throw new Error('the NATS source is closed');
    if (this.failure) throw this.failure;
    if (this.recovery) await this.checkRecovery(this.recovery);
    let records = this.take(max);
    if (records.length > 0) return records;
    if (!this.pull) this.startPull(max, waitMs);
    await this.arrival(waitMs);
    // A burst arrives over several socket reads: let the rest of it land.
    await nextTurn();
    records = this.take(max);
    const pullError = this.pullError;
    this.pullError = undefined;
    if (records.length === 0 && (this.failure ?? pullError)) throw this.failure ?? pullError;
    return records;
  }

  async ack(records: SourceRecord[]): Promise<void> {
    for (const record of records) {
      const held = this.handedOut.get(record.sequence);
      if (!held) continue;
      this.connection.publish(held.reply, '+ACK');
      this.handedOut.delete(record.sequence);
    }
    // Published acks are only buffered; a flush makes them reach the server before we go on.
    await this.connection.flush();
  }

  async lagMs(): Promise<number> {
    const info = await this.manager.consumers.info(this.stream, this.options.consumer);
    if (info.num_ack_pending === 0 && info.num_pending === 0) return 0;
    const held = [...this.handedOut.values(), ...this.waiting].map((h) => h.record.arrivedAt);
    // Pending that is not ours is an earlier reader's, at or above the ack floor. (A consumer that
    // started at LATEST and has acknowledged nothing yet still has its floor at 0: an overestimate.)
    const othersPending = info.num_ack_pending > held.length;
    if (othersPending) held.push(await this.storedAt(info.ack_floor.stream_seq + 1));
    else if (held.length === 0) held.push(await this.storedAt(info.delivered.stream_seq + 1));
    const oldest = Math.min(...held.filter((t) => Number.isFinite(t)));
    return Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    if (this.pull) clearTimeout(this.pull.guard);
    // Without our inbox the server drops the open pull, so nothing more comes our way; a
    // message already on its way waits out its ack_wait, and the next reader recovers it.
    this.subscription.unsubscribe();
    const unfinished = [...this.handedOut.values(), ...this.waiting].sort(bySequence);
    for (const held of unfinished) this.connection.publish(held.reply, '-NAK');
    this.handedOut.clear();
    this.waiting.length = 0;
    this.wake?.(); // a read waiting for records returns now, empty
    if (this.recovery?.throttled) {
      await this.manager.consumers
        .update(this.stream, this.options.consumer, { max_ack_pending: this.maxAckPending })
        .catch(() => undefined); // the next reader's open settles it as well
    }
    await this.connection.drain().catch(() => this.connection.close());
  }

  private startPull(batch: number, waitMs: number) {
    const expiresMs = Math.max(1, waitMs);
    const pull: Pull = {
      batch,
      received: 0,
      guard: setTimeout(() => this.endPull(pull), expiresMs + PULL_GRACE_MS),
    };
    this.pull = pull;
    this.connection.publish(
      `$JS.API.CONSUMER.MSG.NEXT.${this.stream}.${this.options.consumer}`,
      JSON.stringify({ batch, expires: expiresMs * 1_000_000 }),
      { reply: this.subscription.getSubject() },
    );
  }

  private endPull(pull: Pull) {
    clearTimeout(pull.guard);
    if (this.pull === pull) this.pull = undefined;
    this.wake?.();
  }

  private receive(message: Msg) {
    const status = message.headers?.code;
    if (status) {
      const description = message.headers!.description;
      if (status === 409 && /deleted/i.test(description)) {
        this.fail(new Error(`consumer ${this.options.consumer} of stream ${this.stream} was deleted`));
      } else if (status !== 408) {
        // 408 is the pull's normal end; anything else (503: JetStream not answering, 409: the
        // pull refused) ends it early, and the read says so rather than come back empty at once.
        this.pullError = new Error(`JetStream answered the pull with ${status} ${description}`);
      }
      if (this.pull) this.endPull(this.pull);
      return;
    }
    const metadata = parseAckSubject(message.reply ?? '');
    const sequence = String(metadata.streamSequence);
    if (this.pull && ++this.pull.received >= this.pull.batch) this.endPull(this.pull);
    const redelivery =
      this.handedOut.get(sequence) ?? this.waiting.find((h) => h.record.sequence === sequence);
    if (redelivery) {
      // The server gave up on a record this source still holds (the process stalled past
      // ack_wait): keep the one copy, answer through the newest delivery.
      redelivery.reply = message.reply!;
      return;
    }
    const held: Held = {
      reply: message.reply!,
      record: {
        sequence,
        partitionKey: message.headers?.get(PARTITION_KEY_HEADER) || message.subject,
        data: Buffer.from(message.data),
        arrivedAt: metadata.storedAt,
        redelivered: metadata.deliveryCount > 1,
      },
    };
    const at = this.waiting.findIndex((h) => Number(h.record.sequence) > metadata.streamSequence);
    if (at === -1) this.waiting.push(held);
    else this.waiting.splice(at, 0, held);
    this.wake?.();
  }

  /** Hands out up to `max` waiting records in stream order (while recovering, only the old ones). */
  private take(max: number): NatsRecord[] {
    let count = 0;
    while (
      count < Math.min(max, this.waiting.length) &&
      (this.recovery === undefined || Number(this.waiting[count]!.record.sequence) <= this.recovery.upTo)
    ) {
      count++;
    }
    const taken = this.waiting.splice(0, count);
    for (const held of taken) this.handedOut.set(held.record.sequence, held);
    return taken.map((h) => h.record);
  }

  /** Ends recovery once every pending record of the consumer is one this source holds. */
  private async checkRecovery(recovery: Recovery) {
    const info = await this.manager.consumers.info(this.stream, this.options.consumer);
    const othersPending = info.num_ack_pending - (this.handedOut.size + this.waiting.length);
    const log = { consumer: this.options.consumer, stream: this.stream, pending: othersPending };
    if (othersPending > 0 && Date.now() < recovery.until) {
      if (!recovery.throttled) {
        // Redeliveries go out before new messages, and with max_ack_pending reached no new
        // message goes out at all: the old records come back first.
        await this.manager.consumers.update(this.stream, this.options.consumer, {
          max_ack_pending: info.num_ack_pending,
        });
        recovery.throttled = true;
      }
      if (!recovery.logged) {
        recovery.logged = true;
        this.options.logger?.info(log, 'waiting for records an earlier reader left unacknowledged');
      }
      return;
    }
    this.recovery = undefined;
    if (recovery.throttled) {
      await this.manager.consumers.update(this.stream, this.options.consumer, {
        max_ack_pending: this.maxAckPending,
      });
    }
    if (othersPending > 0) {
      this.options.logger?.warn(log, 'another reader of the consumer holds records; reading on beside it');
    } else if (recovery.logged) {
      this.options.logger?.info(log, 'the records an earlier reader left are back');
    }
  }

  /** Waits until a record can be handed out, the pull ends, or `waitMs` passes. */
  private arrival(waitMs: number): Promise<void> {
    return this.arrivalOf(
      () => this.closed || this.takeable() || this.pull === undefined || this.failure !== undefined,
      waitMs,
    );
  }

  private takeable(): boolean {
    const first = this.waiting[0];
    return (
      first !== undefined &&
      (this.recovery === undefined || Number(first.record.sequence) <= this.recovery.upTo)
    );
  }

  private arrivalOf(done: () => boolean, waitMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(finish, waitMs);
      this.wake = () => {
        if (done()) finish();
      };
    });
  }

  /** Tells the server the records this source holds are still being worked on. */
  private keepHeld() {
    for (const held of [...this.handedOut.values(), ...this.waiting])
      this.connection.publish(held.reply, '+WPI');
  }

  /** When the first message at or after `sequence` that this consumer reads reached the stream. */
  private async storedAt(sequence: number): Promise<number> {
    // The client's getMessage has no next_by_subj; the server's API (2.9+) does.
    const reply = await this.connection.request(
      `$JS.API.STREAM.MSG.GET.${this.stream}`,
      JSON.stringify({ seq: sequence, next_by_subj: this.options.source.subject ?? '>' }),
    );
    const answer = reply.json<{ message?: { time: string } }>();
    // No message: gone meanwhile (acknowledged, or removed by the stream's limits).
    return answer.message ? Date.parse(answer.message.time) : Number.NaN;
  }

  private fail(error: Error) {
    this.failure ??= error;
    this.wake?.();
  }
}

const bySequence = (a: Held, b: Held) => Number(a.record.sequence) - Number(b.record.sequence);
