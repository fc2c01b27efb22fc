// Enforces the dependency arrows (README "Layout"):
// http -> engines (secrets, transit, auth, audit) -> keys, store -> crypto; cli -> sdk only.
const engines = '^server/(secrets|transit|auth|audit)/';
module.exports = {
  forbidden: [
    // The composition root (server/vault.ts) and the process around it (server/main.ts) are the top.
    {
      name: 'nothing-imports-http',
      severity: 'error',
      from: { pathNot: ['^server/http/', '^server/(main|vault)\\.ts$'] },
      to: { path: '^server/http/' },
    },
    {
      name: 'composition-root-on-top',
      severity: 'error',
      from: { pathNot: ['^server/main\\.ts$', '^cli/app\\.ts$'] },
      to: { path: '^server/(main|vault)\\.ts$' },
    },
    {
      name: 'engines-not-upward',
      severity: 'error',
      from: { path: engines },
      to: { path: '^server/(http|main|replication)' },
    },
    {
      name: 'keys-store-below-engines',
      severity: 'error',
      from: { path: '^server/(keys|store)/' },
      to: { path: ['^server/(http|secrets|transit|auth|audit|replication)/', '^server/main'] },
    },
    {
      name: 'crypto-is-a-leaf',
      severity: 'error',
      from: { path: '^server/crypto/' },
      to: { path: '^server/(?!crypto/|errors\\.ts)' },
    },
    // Engines read and write through the storage barrier (server/store/barrier.ts), which seals
    // every value; the raw store and its replication-facing side (server/store/db.ts, the
    // migration) are for the key hierarchy below the barrier, replication, backup and main.ts.
    {
      name: 'engines-only-through-the-barrier',
      severity: 'error',
      from: { path: [engines, '^server/keys/byok\\.ts$'] },
      to: { path: '^server/store/(db|migrate)\\.ts$' },
    },
    {
      name: 'replication-never-sees-engines',
      severity: 'error',
      from: { path: '^server/replication/' },
      to: { path: ['^server/(http|secrets|transit|auth)/'] },
    },
    // sdk/wire is the contract shared by server, SDK and CLI: it imports zod and itself, nothing else
    // (no node built-in, no other sdk module), so either side may load it without pulling in the other.
    {
      name: 'wire-imports-nothing',
      severity: 'error',
      from: { path: '^sdk/wire/' },
      to: { pathNot: ['^sdk/wire/', '(^|/)node_modules/zod/'] },
    },
    { name: 'sdk-imports-no-server', severity: 'error', from: { path: '^sdk/' }, to: { path: '^(server|cli)/' } },
    // cli/app.ts (the full CLI behind cli/main.ts) is the one module that may start the server (`coffer server`).
    {
      name: 'cli-talks-through-sdk',
      severity: 'error',
      from: { path: '^cli/', pathNot: '^cli/app\\.ts$' },
      to: { path: '^server/' },
    },
    { name: 'server-imports-no-cli', severity: 'error', from: { path: '^server/' }, to: { path: '^cli/' } },
    // The dashboard (ui/, docs/ui.md) is a client of the public API: it may share the wire
    // contract's types and rules, never server, CLI or SDK code (no private way in).
    {
      name: 'ui-talks-only-the-wire',
      severity: 'error',
      from: { path: '^ui/' },
      to: { pathNot: ['^ui/', '^sdk/wire/', '(^|/)node_modules/(preact|zod)/'] },
    },
    // The GitHub Action (deploy/github-action) is bundled from the SDK alone: no server or CLI code in it.
    {
      name: 'action-is-built-from-the-sdk',
      severity: 'error',
      from: { path: '^deploy/github-action/' },
      to: { path: '^(server|cli)/' },
    },
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(dist|test)/' },
  },
};
