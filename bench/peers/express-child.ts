/**
 * An Express peer as a team would hand-roll one: express-session with its MemoryStore, a CSRF header check, the
 * bearer from the session, http-proxy-middleware to the same upstream over a keep-alive agent. Its own process. The login is not what is
 * measured: `POST /bench/login` puts the access token the runner hands it into a new session (a real peer
 * would do that in its OIDC callback).
 */
import { randomBytes } from 'node:crypto';
import { Agent, type Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { serveCalls } from '../ipc.js';

declare module 'express-session' {
  interface SessionData {
    accessToken?: string;
  }
}

let server: Server | undefined;

function requireSession(req: Request, res: Response, next: NextFunction): void {
  if (!req.session.accessToken) {
    res.status(401).json({ error: 'not logged in' });
    return;
  }
  next();
}

function requireCsrfHeader(req: Request, res: Response, next: NextFunction): void {
  if (req.get('x-csrf') !== '1') {
    res.status(403).json({ error: 'missing X-CSRF header' });
    return;
  }
  next();
}

serveCalls({
  async start(opts: { upstreamOrigin: string }) {
    const app = express();
    app.disable('x-powered-by');
    app.use(
      session({
        name: 'sid',
        secret: randomBytes(32).toString('hex'),
        resave: false,
        saveUninitialized: false,
        rolling: true,
        cookie: { httpOnly: true, sameSite: 'lax', maxAge: 30 * 60 * 1000 },
      }),
    );
    app.post('/bench/login', express.json(), (req, res) => {
      req.session.accessToken = (req.body as { token: string }).token;
      res.status(204).end();
    });
    app.use(
      '/mva',
      requireSession,
      requireCsrfHeader,
      createProxyMiddleware<Request, Response>({
        target: opts.upstreamOrigin,
        changeOrigin: true,
        xfwd: true,
        // http-proxy opens a new upstream connection per request unless given an agent; any team would add this.
        agent: new Agent({ keepAlive: true }),
        on: {
          proxyReq: (proxyReq, req) => {
            proxyReq.removeHeader('cookie');
            proxyReq.setHeader('authorization', `Bearer ${req.session.accessToken}`);
          },
        },
      }),
    );
    await new Promise<void>((resolve) => {
      server = app.listen(0, '127.0.0.1', 2048, () => resolve());
    });
    const address = server!.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    return { url: `http://127.0.0.1:${address.port}`, pid: process.pid };
  },
  async close() {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  },
});
