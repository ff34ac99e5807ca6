// Nest 12 is ESM-only, so jest runs in native ESM mode (node --experimental-vm-modules).
// SWC strips types and emits the decorator metadata Nest's injector reads.
const swc = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
    keepClassNames: true,
  },
  module: { type: 'es6' },
  sourceMaps: 'inline',
};

export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/lib'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', swc] },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  setupFilesAfterEnv: ['<rootDir>/test/helpers/quiet-logs.ts'],
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  testTimeout: 60_000,
  maxWorkers: 2,
  // A worker leaves nothing open (no socket, timer or child after its last file), and its
  // 'exit' event fires within a millisecond of being asked to end; tearing the process down
  // after that (its VM contexts and module graphs) took 440-530 ms here, against jest's default
  // of 500 ms before it kills the worker and reports a leak. A real leak still shows: it keeps
  // the worker alive past this too.
  workerGracefulExitTimeout: 5_000,
};
