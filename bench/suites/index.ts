/**
 * The suite registry: every suite `npm run bench` knows, in run order.
 * A new suite goes here.
 */
import { Suite } from '../lib/suite';
import { codecSuite } from './codec';
import { fullSuite } from './full';
import { imageSuite } from './image';
import { incrementalSuite } from './incremental';
import { scaleSuite } from './scale';
import { sshSuite } from './ssh';

export const SUITES: readonly Suite[] = [codecSuite, fullSuite, incrementalSuite, imageSuite, scaleSuite, sshSuite];
