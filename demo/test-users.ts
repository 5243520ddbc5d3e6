/**
 * Synthetic people for the ID-porten look-alike. The identity numbers follow the
 * synthetic-number convention of Norwegian test environments (80 added to the month)
 * and carry valid mod-11 check digits, so they look real to software but can never
 * belong to a real person.
 */
export interface TestUser {
  /** Synthetic 11-digit personal identifier, sent as the `pid` claim. */
  pid: string;
  name: string;
  /** ID-porten `locale` claim: nb | nn | en | se. */
  locale: 'nb' | 'nn' | 'en' | 'se';
  /** Altinn party and user ids the Altinn look-alike hands out for this person. */
  altinnPartyId: number;
  altinnUserId: number;
}

export const TEST_USERS: readonly TestUser[] = Object.freeze([
  { pid: '01817010055', name: 'Kari Nordmann', locale: 'nb', altinnPartyId: 50001001, altinnUserId: 1001001 },
  { pid: '15888510025', name: 'Ola Nynorsk', locale: 'nn', altinnPartyId: 50001002, altinnUserId: 1001002 },
  { pid: '29919010094', name: 'Emma Example', locale: 'en', altinnPartyId: 50001003, altinnUserId: 1001003 },
]);

export function findTestUser(pid: string): TestUser | undefined {
  return TEST_USERS.find((user) => user.pid === pid);
}
