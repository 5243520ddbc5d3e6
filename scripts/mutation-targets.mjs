// The security core under mutation testing: which source files each target mutates and which test files
// hold them. A target's tests are the files that exercise its code directly; docs/mutation.md gives the
// scores and explains every surviving mutant.
export const targets = [
  { name: 'csrf', mutate: ['src/http/csrf.ts'], tests: ['test/csrf.test.ts'] },
  { name: 'return-to', mutate: ['src/http/return-to.ts'], tests: ['test/return-to-unit.test.ts'] },
  { name: 'path-safety', mutate: ['src/proxy/path-safety.ts'], tests: ['test/path-safety.test.ts'] },
  { name: 'cookies', mutate: ['src/session/cookies.ts'], tests: ['test/cookies.test.ts'] },
  { name: 'key-ring', mutate: ['src/session/key-ring.ts'], tests: ['test/key-ring.test.ts'] },
  { name: 'proxy-headers', mutate: ['src/proxy/headers.ts'], tests: ['test/proxy-headers.test.ts', 'test/proxy-headers-unit.test.ts'] },
  { name: 'routing-table', mutate: ['src/proxy/routing-table.ts'], tests: ['test/routing-table.test.ts'] },
  { name: 'bff-request', mutate: ['src/http/bff-request.ts'], tests: ['test/bff-request.test.ts'] },
  {
    name: 'tokens',
    mutate: ['src/tokens/refresh-policy.ts', 'src/tokens/resource-tokens.ts', 'src/tokens/kinds/*.ts'],
    tests: ['test/token-decisions.test.ts'],
  },
  {
    name: 'altinn-exchange',
    mutate: ['src/tokens/altinn-exchange.ts'],
    tests: ['test/altinn-exchange-answers.test.ts', 'test/altinn-exchange-dpop.test.ts'],
  },
  {
    name: 'idporten',
    mutate: ['src/idporten/id-token.ts', 'src/idporten/acr.ts', 'src/idporten/claims.ts'],
    tests: ['test/id-token.test.ts'],
  },
  { name: 'idporten-client', mutate: ['src/idporten/client.ts'], tests: ['test/idporten-client.test.ts', 'test/idporten-client-par.test.ts'] },
  { name: 'lifecycle', mutate: ['src/tokens/lifecycle.ts'], tests: ['test/lifecycle-unit.test.ts', 'test/lifecycle-end.test.ts', 'test/lifecycle-index.test.ts'] },
  { name: 'refresh', mutate: ['src/tokens/refresh.ts'], tests: ['test/refresh-unit.test.ts', 'test/refresh-claim-unit.test.ts', 'test/refresh-backlog-unit.test.ts'] },
  { name: 'revocation', mutate: ['src/tokens/revocation.ts'], tests: ['test/revocation-unit.test.ts'] },
  {
    name: 'logouts',
    mutate: ['src/tokens/pending-logouts.ts', 'src/tokens/session-data.ts', 'src/tokens/single-flight.ts'],
    tests: ['test/pending-logouts.test.ts', 'test/pending-logouts-rounds.test.ts', 'test/token-helpers-unit.test.ts'],
  },
  { name: 'logout-journal', mutate: ['src/tokens/logout-journal.ts'], tests: ['test/logout-journal.test.ts', 'test/logout-journal-replay.test.ts'] },
  {
    name: 'dpop',
    mutate: ['src/net/dpop.ts', 'src/net/dpop-nonces.ts', 'src/idporten/dpop.ts', 'src/idporten/errors.ts'],
    tests: ['test/dpop-proofs.test.ts', 'test/idporten-dpop-errors.test.ts'],
  },
  { name: 'provider', mutate: ['src/idporten/provider.ts'], tests: ['test/provider-unit.test.ts'] },
];
