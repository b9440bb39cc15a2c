/** Dependency rules of Postroom (`npm run check`): dependencies point one way. */
module.exports = {
  forbidden: [
    {
      name: 'contracts-import-nothing-of-ours',
      comment: 'contracts/ is the shared language: it may use libraries, never our other code.',
      severity: 'error',
      from: { path: '^contracts/' },
      to: { path: '^(infra|producers|consumers|scripts|test)/|^main\\.ts$' },
    },
    {
      name: 'infra-knows-no-roles',
      comment: 'infra/ serves producers and consumers; it never imports them.',
      severity: 'error',
      from: { path: '^infra/', pathNot: '\\.test\\.ts$' },
      to: { path: '^(producers|consumers)/|^main\\.ts$' },
    },
    {
      name: 'producers-and-consumers-stay-apart',
      comment: 'Producers and consumers talk through events only.',
      severity: 'error',
      from: { path: '^(producers|consumers)/([^/]+)/' },
      to: { path: '^(producers|consumers)/', pathNot: '^$1/$2/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'production-code-uses-no-test-helpers',
      severity: 'error',
      from: { path: '^(infra|producers|consumers|contracts|scripts)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|node_modules)/' },
  },
};
