/**
 * The suite registry: every suite `npm run bench` knows, in run order.
 * A new suite goes here (and out of pending.ts if it was a placeholder).
 */
import { Suite } from '../lib/suite';
import { codecSuite } from './codec';
import { pendingSuites } from './pending';

export const SUITES: readonly Suite[] = [codecSuite, ...pendingSuites];
