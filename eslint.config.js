// Lint for the server (src/), its tests (test/), the web catalog (web/) and
// the bench (bench/). Part of `npm test`. Type-aware rules run on the
// TypeScript sources: the ones that catch a promise nobody awaits or a
// stream error nobody hears are the bugs that take a server down.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test-output/**', 'serve_dir/**'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // Tests drive untyped JavaScript: sdc-clients, imgmanifest, and the
    // catalog page's globals inside page.evaluate().
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['web/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'module' },
  },
  {
    files: ['bench/**/*.js', 'scripts/**/*.js', 'eslint.config.js', 'ava.config.js'],
    languageOptions: { globals: globals.node, sourceType: 'module' },
  },
);
