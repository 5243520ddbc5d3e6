/**
 * Fault injection, short form, behind Redis Sentinel: the primary is frozen until the Sentinels promote the
 * replica, then resumed, and takes the gateways' writes until it is demoted (those writes are discarded). The
 * run's invariants are asserted (test/faults/); see docs/fault-injection.md.
 */
import t from 'tap';
import { checkFaults } from './faults/short-form.js';

await checkFaults(t, ['failover']);
