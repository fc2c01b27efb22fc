// typescript-eslint's strict type-checked rules over the production code (server, cli, sdk, ui).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/**', 'deploy/github-action/dist/**', '**/*.mjs', '**/*.cjs'] },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Reported, not refused: each one is a claim the type system cannot check (README "Contributing").
      '@typescript-eslint/no-non-null-assertion': 'warn',
      // Numbers and booleans read fine in messages; objects, undefined and null do not.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // `return void res.json(...)` ends a handler on purpose; arrow shorthands may return void calls.
      '@typescript-eslint/no-confusing-void-expression': [
        'error',
        { ignoreArrowShorthand: true, ignoreVoidOperator: true },
      ],
      '@typescript-eslint/no-meaningless-void-operator': 'off',
      // Interface implementations are async for their callers even when this one needs no await.
      '@typescript-eslint/require-await': 'off',
      // Reported: most are defensive checks on values from outside the type system (res.locals, parsed input).
      '@typescript-eslint/no-unnecessary-condition': 'warn',
      '@typescript-eslint/use-unknown-in-catch-callback-variable': 'warn',
      '@typescript-eslint/no-base-to-string': 'warn',
      '@typescript-eslint/no-deprecated': 'warn',
      // Records are used as maps (JSON merge-patch removes keys): deleting a computed key is the point.
      '@typescript-eslint/no-dynamic-delete': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
);
