// Lint + format, after the Effect monorepo's own eslint.config.mjs (effect@3.22.1):
// eslint:recommended + typescript-eslint recommended, the @effect/dprint formatter rule with
// Effect's dprint options, and Effect's rule overrides. Left out from Effect's config:
// eslint-plugin-codegen (its generated barrel files), simple-import-sort (Effect loads it but
// turns it off), and @effect/no-import-from-barrel-package (see the note at the end).
import * as effectEslint from "@effect/eslint-plugin"
import js from "@eslint/js"
import importPlugin from "eslint-plugin-import"
import sortDestructureKeys from "eslint-plugin-sort-destructure-keys"
import { defineConfig } from "eslint/config"
import tseslint from "typescript-eslint"

export default defineConfig(
  {
    // src/gen is written by `buf generate` and must never be reformatted.
    ignores: ["dist/", "node_modules/", "coverage/", ".scratch/", "src/gen/**"]
  },
  {
    files: [
      "src/**/*.ts",
      "src/**/*.js",
      "test/**/*.ts",
      "bench/**/*.ts",
      "examples/**/*.ts",
      "vitest.config.ts",
      "eslint.config.mjs"
    ],
    extends: [js.configs.recommended, tseslint.configs.recommended, effectEslint.configs.dprint],
    plugins: {
      import: importPlugin,
      "sort-destructure-keys": sortDestructureKeys
    },
    languageOptions: {
      ecmaVersion: "latest",
      sourceType: "module"
    },
    rules: {
      // TypeScript checks undefined names, also in the checkJs'd src/**/*.js (typescript-eslint's
      // eslint-recommended config does this for .ts files only).
      "no-undef": "off",

      // As in Effect's config:
      "no-fallthrough": "off",
      "no-irregular-whitespace": "off",
      "object-shorthand": "error",
      "prefer-destructuring": "off",
      "sort-imports": "off",
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.property.name='push'] > SpreadElement.arguments",
          message: "Do not use spread arguments in Array.push"
        }
      ],
      "no-unused-vars": "off",
      "require-yield": "off",
      "prefer-rest-params": "off",
      "prefer-spread": "off",
      "import/first": "error",
      "import/newline-after-import": "error",
      "import/no-duplicates": "error",
      "sort-destructure-keys/sort-destructure-keys": "error",

      "@typescript-eslint/array-type": ["warn", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-unsafe-function-type": "off",
      "@typescript-eslint/no-wrapper-object-types": "off",
      "@typescript-eslint/consistent-type-imports": "warn",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/ban-ts-comment": "off",
      "@typescript-eslint/explicit-function-return-type": "off",
      "@typescript-eslint/explicit-module-boundary-types": "off",
      "@typescript-eslint/no-array-constructor": "off",
      "@typescript-eslint/no-use-before-define": "off",
      "@typescript-eslint/no-namespace": "off",

      "@effect/dprint": [
        "error",
        {
          config: {
            indentWidth: 2,
            lineWidth: 120,
            semiColons: "asi",
            quoteStyle: "alwaysDouble",
            trailingCommas: "never",
            operatorPosition: "maintain",
            "arrowFunction.useParentheses": "force"
          }
        }
      ]
    }
  },
  {
    files: ["src/**/*"],
    rules: {
      "no-console": "error",
      // A function longer than this is several parts that want names of their own.
      "max-lines-per-function": ["error", { max: 150 }]
    }
  }
  // @effect/no-import-from-barrel-package is not enabled: Effect uses it inside its monorepo
  // packages (against import cycles between its own modules). Here we are a consumer, `effect` is
  // `sideEffects: []` so bundlers drop what we don't use, and the rule cannot auto-fix imports of
  // more than one name (`import { Effect, Layer } from "effect"`), which is most of ours.
)
