import eslintComments from '@eslint-community/eslint-plugin-eslint-comments/configs';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import prettier from 'eslint-config-prettier';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import noUnsanitized from 'eslint-plugin-no-unsanitized';
import security from 'eslint-plugin-security';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['node_modules/', 'data/', 'test-artifacts/', 'bench/out/', 'views/static/vendor/'] },
  // A disable comment that silences nothing is an error (R12: every suppression is deliberate).
  { linterOptions: { reportUnusedDisableDirectives: 'error', reportUnusedInlineConfigs: 'error' } },
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  { languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } } },
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  { files: ['**/*.js', '**/*.cjs'], extends: [tseslint.configs.disableTypeChecked] },
  {
    // The Node-version launcher is CommonJS so that an old Node can run it and say what is needed.
    files: ['scripts/**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: Object.fromEntries(['require', 'process', 'module', '__dirname'].map((name) => [name, 'readonly'])),
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Scripts served to the browser by the sign-in pages.
    files: ['views/static/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'fetch',
          'navigator',
          'location',
          'FormData',
          'URL',
          'URLSearchParams',
          'console',
          'PublicKeyCredential',
          'setTimeout',
          'clearTimeout',
          'AbortController',
          'HTMLFormElement',
          'HTMLInputElement',
          'HTMLButtonElement',
          'Event',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['test/**/*.ts', 'examples/**/*.ts', 'bench/**/*.ts'],
    // Tests talk to http://127.0.0.1 on purpose (openid-client marks allowInsecureRequests deprecated for that).
    rules: {
      '@typescript-eslint/no-unused-expressions': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-deprecated': 'off',
    },
  },
  {
    // SAST (R12, docs/security.md): security rules on the server code, as errors. Every
    // suppression names the rule and says why it is safe (eslint-comments/require-description).
    files: ['src/**/*.ts'],
    extends: [security.configs.recommended],
    rules: Object.fromEntries(Object.keys(security.configs.recommended.rules).map((rule) => [rule, 'error'])),
  },
  {
    // Layering (issue 18, README "Where things live"): imports flow routes/CLI → services → store →
    // shared/config, never back. The composition root (src/deps.ts, server.ts, main.ts, cli.ts)
    // may import every layer; src/auth/*.ts (the provider's wiring) may use the store. Type-only
    // imports count too: a layer that needs a lower layer's type takes it from that layer's owner.
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json'] })] },
    rules: { 'import-x/no-restricted-paths': ['error', { basePath: import.meta.dirname, zones: layerZones() }] },
  },
  {
    // The sign-in pages' browser scripts: no HTML from strings into the DOM.
    files: ['views/static/**/*.js'],
    extends: [noUnsanitized.configs.recommended],
  },
  {
    // Directive comments everywhere: described (`-- why`), scoped to named rules, never a blanket disable.
    extends: [eslintComments.recommended],
    rules: {
      '@eslint-community/eslint-comments/require-description': ['error', { ignore: [] }],
      '@eslint-community/eslint-comments/no-unlimited-disable': 'error',
      '@eslint-community/eslint-comments/disable-enable-pair': ['error', { allowWholeFile: false }],
      '@eslint-community/eslint-comments/no-restricted-disable': ['error', 'security/detect-eval-with-expression', 'no-unsanitized/*'],
    },
  },
  prettier,
);

/** The forbidden import directions, one zone per lower layer (paths relative to this file). */
function layerZones() {
  const root = ['src/deps.ts', 'src/server.ts', 'src/main.ts', 'src/cli.ts'];
  const edges = ['src/auth', 'src/api', 'src/cli', ...root];
  const why = 'Imports flow routes/CLI → services → store → shared/config (README "Where things live").';
  return [
    { target: ['src/shared', 'src/config'], from: ['src/store', 'src/services', ...edges], message: why },
    { target: 'src/store', from: ['src/services', ...edges], message: why },
    { target: 'src/services', from: edges, message: why },
    {
      target: ['src/auth/routes', 'src/api/routes', 'src/cli'],
      from: 'src/store',
      message: 'Routes and CLI commands reach storage through a service (README "Where things live").',
    },
  ];
}
