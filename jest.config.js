/**
 * Tests run from TypeScript sources through ts-jest (transpile only; `npm run
 * build` type-checks first). ts-jest rather than @swc/jest because swc's
 * per-platform binaries keep `npm ci` from accepting the lock file here.
 * e2e tests run the built binary.
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] },
  testTimeout: 120000,
  maxWorkers: 2,
};
