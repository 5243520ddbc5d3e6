import { Readable } from 'node:stream';

/** A request body small enough to be sent again (a DPoP nonce retry) is kept whole up to this size. */
export const REPLAYABLE_BODY_BYTES = 1024 * 1024;

/**
 * Reads `body` up to `limit` bytes: a body that ends within it comes back whole (a Buffer that can be sent twice);
 * a longer one comes back as a stream that yields what was read and then the rest, so it still streams and is never
 * held in memory beyond `limit`. A failing body (its size limit crossed, the client gone) rejects.
 */
export function readReplayable(body: Readable, limit: number = REPLAYABLE_BODY_BYTES): Promise<Buffer | Readable> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      if (length <= limit) return;
      body.pause();
      cleanup();
      resolve(prefixed(chunks, body));
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  });
}

/** The chunks already read, then the rest of `body`, as one stream with backpressure. */
function prefixed(chunks: Buffer[], body: Readable): Readable {
  async function* all(): AsyncGenerator<Buffer> {
    yield* chunks;
    for await (const chunk of body) yield chunk as Buffer;
  }
  return Readable.from(all(), { objectMode: false });
}
