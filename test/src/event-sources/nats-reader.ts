// A reader in a process of its own, for the test that kills one mid-batch:
// `node nats-reader.js <url> <stream> <consumer> <count>` reads `count` records without
// acknowledging them, prints their sequences as one JSON line, and waits to be killed.
import { openNatsSource } from '@hearth/controller/event-sources/nats-source';

const [url, stream, consumer, count] = process.argv.slice(2);
const source = await openNatsSource({
  source: { url: url!, stream: stream! },
  consumer: consumer!,
  position: { startingPosition: 'TRIM_HORIZON' },
  ackWaitMs: 1000,
});
const sequences: string[] = [];
while (sequences.length < Number(count)) {
  for (const record of await source.read(Number(count) - sequences.length, 1000))
    sequences.push(record.sequence);
}
console.log(JSON.stringify({ sequences }));
setInterval(() => undefined, 60_000);
