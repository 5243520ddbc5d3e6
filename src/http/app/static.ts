/**
 * `app.static: DIR`: a built SPA served as it is. Real files with their ETag and a Cache-Control by name
 * (paths.ts); a page load (negotiation.ts: Sec-Fetch-Dest: document, or Accept: text/html without Fetch
 * metadata) of a path with no file gets index.html (client-side routing), whatever dots the path holds
 * (`/kunde/912.345.678`); any other request for a missing file is a plain 404. Nothing outside DIR is ever read: the path is checked before the file system is asked,
 * and the file found must still be inside DIR once symlinks are resolved.
 */
import { realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../../errors.js';
import { isPageLoad } from '../negotiation.js';
import { appPath, cacheControlFor } from './paths.js';

const INDEX = 'index.html';

export interface StaticApp {
  /** Answers a GET or HEAD for the app. */
  serve(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply>;
}

export function staticApp(dir: string): StaticApp {
  let root: Promise<string> | undefined;
  const realRoot = () => (root ??= realpath(dir));

  /** The file's path relative to the real root, when it is a regular file inside it. */
  const fileInside = async (segments: string[]): Promise<string | undefined> => {
    const base = await realRoot();
    let real: string;
    try {
      real = await realpath(join(base, ...segments));
      if (!(await stat(real)).isFile()) return undefined;
    } catch {
      return undefined;
    }
    const rel = relative(base, real);
    if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || rel.startsWith(sep)) return undefined;
    return rel;
  };

  const send = (reply: FastifyReply, rel: string, base: string): FastifyReply => {
    const name = rel.split(sep).at(-1) ?? rel;
    reply.header('cache-control', name === INDEX ? 'no-cache' : cacheControlFor(name));
    // send() percent-decodes the path it is given, so each segment goes in encoded.
    return reply.sendFile(rel.split(sep).map(encodeURIComponent).join('/'), base);
  };

  return {
    async serve(request, reply) {
      const path = appPath(request.raw.url ?? '/');
      if (path.kind === 'refused') throw notFound();
      const base = await realRoot();
      const segments = path.segments.length === 0 ? [INDEX] : path.segments;
      const file = await fileInside(segments);
      if (file !== undefined) return send(reply, file, base);
      // A folder with an index.html of its own (e.g. /docs/ → docs/index.html).
      const folderIndex = path.segments.length > 0 ? await fileInside([...path.segments, INDEX]) : undefined;
      if (folderIndex !== undefined) return send(reply, folderIndex, base);
      // History fallback: a page load of a client-side route gets the SPA's index.html.
      if (isPageLoad(request)) {
        const index = await fileInside([INDEX]);
        if (index !== undefined) return send(reply, index, base);
      }
      throw notFound();
    },
  };
}

function notFound(): GatewayError {
  return new GatewayError('route_not_found', 'No file of the app has this path.');
}
