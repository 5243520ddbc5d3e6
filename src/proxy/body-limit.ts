import { Transform, type Readable } from 'node:stream';

export class BodyTooLargeError extends Error {
  constructor(readonly limitBytes: number) {
    super(`request body exceeds ${limitBytes} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** True when a declared Content-Length is above the limit (checked before anything is read). */
export function declaresTooLarge(contentLength: string | undefined, limitBytes: number): boolean {
  return contentLength !== undefined && Number(contentLength) > limitBytes;
}

/**
 * Passes the request body through unchanged while counting it; past `limitBytes` the returned
 * stream fails with BodyTooLargeError. The source is unpiped, not destroyed: destroying a server
 * request destroys its socket, and the client should still get a 413 answer.
 * Nothing is buffered beyond the streams' normal high-water marks.
 */
export function limitBody(source: Readable, limitBytes: number, onExceeded: () => void): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen <= limitBytes) {
        callback(null, chunk);
        return;
      }
      source.unpipe(counter);
      onExceeded();
      callback(new BodyTooLargeError(limitBytes));
    },
  });
  source.on('error', (err) => counter.destroy(err));
  // The limit can be crossed while nobody reads the stream yet (the bearer is still being
  // resolved); onExceeded reports it, and a later reader finds the stream destroyed.
  counter.on('error', () => {});
  return source.pipe(counter);
}
