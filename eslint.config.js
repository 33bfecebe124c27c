import eslintComments from '@eslint-community/eslint-plugin-eslint-comments/configs';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import prettier from 'eslint-config-prettier';
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
        ['window', 'document', 'fetch', 'navigator', 'location', 'FormData', 'URL', 'URLSearchParams', 'console', 'PublicKeyCredential', 'setTimeout', 'clearTimeout', 'AbortController', 'HTMLFormElement', 'HTMLInputElement', 'HTMLButtonElement', 'Event'].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['test/**/*.ts', 'examples/**/*.ts', 'bench/**/*.ts'],
    // Tests talk to http://127.0.0.1 on purpose (openid-client marks allowInsecureRequests deprecated for that).
    rules: { '@typescript-eslint/no-unused-expressions': 'off', '@typescript-eslint/no-non-null-assertion': 'off', '@typescript-eslint/no-deprecated': 'off' },
  },
  {
    // SAST (R12, docs/security.md): security rules on the server code, as errors. Every
    // suppression names the rule and says why it is safe (eslint-comments/require-description).
    files: ['src/**/*.ts'],
    extends: [security.configs.recommended],
    rules: Object.fromEntries(Object.keys(security.configs.recommended.rules).map((rule) => [rule, 'error'])),
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
