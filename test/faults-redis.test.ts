/**
 * Fault injection, short form, on one Redis server: three gateway instances in processes of their own share it
 * while their sessions call an upstream through random instances, and an instance is SIGKILLed mid-refresh, Redis
 * is frozen, or its client connections are dropped. Each run's invariants are asserted (test/faults/); the long
 * form with a table of figures is `npm run faults`, see docs/fault-injection.md.
 */
import t from 'tap';
import { checkFaults } from './faults/short-form.js';

await checkFaults(t, ['none', 'drop', 'pause', 'kill']);
